"""The inputs of large-area prediction: an ortho (one file, a VRT or tiles) and DSM/DTM.

Whatever the ortho is delivered as, prediction sees one GDAL dataset on one pixel grid:
a folder or list of tiles becomes an in-memory VRT, after checking that every tile shares
the CRS, pixel size, pixel grid, band count and uint8 type (a tile off the grid would need
resampling, which would silently change pixels). Elevation is computed exactly as the IMG
patches were built (:class:`flair_pipeline.dataset.patch_writers.Elevation`), so the model sees
at prediction time what it saw in training.

No data is read from the ortho's own declaration (issue 29): a GDAL nodata value, a
per-dataset mask band (internal or ``.msk``) or an alpha band all mark pixels where the
ortho holds nothing, and :meth:`ImageSource.read_valid` gives that mask on any pixel window
(rasterio's ``dataset_mask``, which covers all three, per tile for a folder or list of
tiles, where pixels no tile covers are void too). The map is nodata there.

One exception, recorded as a decision line: GDAL marks band 4 of every 4-band uint8
GeoTIFF as alpha unless its writer said otherwise (``PHOTOMETRIC=RGB`` is GDAL's default
for 3 or 4 bytes per pixel), so an R, G, B, NIR ortho reads as RGBA. Band 4 is then read
as NIR, the project's band order, and not as a mask. An alpha band among the other
channels a model reads is refused (it is no channel); one after them is the mask.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NodataShadowWarning, RasterioError
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds
from rasterio.windows import bounds as window_bounds

from flair_pipeline.dataset.patch_writers import Elevation
from flair_pipeline.errors import InputError
from flair_pipeline.geo.crs import same_crs
from flair_pipeline.geo.raster_vrt import (
    ORTHO_SUFFIXES,
    Product,
    TileFacts,
    build_vrt,
    check_north_up,
    inspect,
    is_raster_name,
    raster_files,
    raster_locations,
)
from flair_pipeline.geo.surface import SurfaceInput
from flair_pipeline.storage import gdal_env, gdal_options, gdal_path, is_remote

#: Tiles kept open at once to read their masks (a folder may hold thousands of tiles).
_OPEN_TILES = 32


def _alpha_band(src: rasterio.DatasetReader) -> int | None:
    """The first band whose colour interpretation is alpha, or None.

    GDAL itself takes an alpha band as the mask only for 2- and 4-band files; a 5-band
    R, G, B, NIR + alpha ortho declares its mask just as explicitly.

    Args:
        src: An open raster.

    Returns:
        The 1-based band index, or None.
    """
    return next((i for i, c in enumerate(src.colorinterp, 1) if c == ColorInterp.alpha), None)


@dataclass(frozen=True)
class MaskMode:
    """Which declarations of a raster mark its no data; a pixel is void when any does.

    Attributes:
        dataset: its per-dataset mask band (internal or ``.msk``): 0 is void.
        nodata: its nodata values: void where every band holds its nodata.
        alpha: its alpha band after the model's channels: 0 is void.
    """

    dataset: bool = False
    nodata: bool = False
    alpha: int | None = None

    @property
    def all_valid(self) -> bool:
        """Whether no pixel can be void."""
        return not (self.dataset or self.nodata or self.alpha)


def mask_mode(
    src: rasterio.DatasetReader, path: Path | str, channels: int
) -> tuple[MaskMode, str | None]:
    """How a raster's no data is read, for a model reading its first `channels` bands.

    Args:
        src: The open raster.
        path: Its path, for messages.
        channels: Bands the model reads as data (R, G, B, NIR[, elevation]).

    Returns:
        (mode, decision): decision is the line to record when band 4 of a 4-band file,
        flagged alpha by GDAL's RGBA default, is read as NIR (else None).

    Raises:
        InputError: An alpha band among the channels, other than that default.
    """
    alpha, decision = _alpha_band(src), None
    if alpha is not None and alpha <= channels:
        if not (alpha == 4 and src.count == 4):
            raise InputError(
                f"{path}: band {alpha} is declared alpha (the image's mask of no data), but "
                f"the model reads bands 1..{channels} as R, G, B, NIR[, elevation]; give the "
                "elevation with --dsm/--dtm, or rewrite the file without the alpha flag "
                "(gdal_translate -co PHOTOMETRIC=MINISBLACK -co ALPHA=NO)"
            )
        alpha, decision = (
            None,
            (
                f"{path}: band 4 is flagged alpha in the file's header (GDAL's default for "
                "4-band uint8 GeoTIFFs); read as NIR, the project's band order, not as a mask "
                "of no data"
            ),
        )
    flags = src.mask_flag_enums
    dataset = MaskFlags.per_dataset in flags[0] and MaskFlags.alpha not in flags[0]
    nodata = any(MaskFlags.nodata in f for f in flags)
    return MaskMode(dataset, nodata, alpha), decision


def read_valid_of(src: rasterio.DatasetReader, mode: MaskMode, win: Window) -> np.ndarray:
    """(h, w) bool, True where `src` holds data in `win`, by its :class:`MaskMode`.

    Args:
        src: An open raster.
        mode: How `src` declares its voids.
        win: The window read.

    Returns:
        bool (h, w).

    Raises:
        InputError: GDAL cannot read the mask.
    """
    out = np.ones((int(win.height), int(win.width)), dtype=bool)
    try:
        with warnings.catch_warnings():  # nodata "shadowing" GDAL's RGBA alpha: decided above
            warnings.simplefilter("ignore", NodataShadowWarning)
            if mode.dataset:
                out &= src.read_masks(1, window=win) > 0
            if mode.nodata:
                out &= (src.read_masks(window=win) > 0).any(axis=0)
        if mode.alpha:
            out &= src.read(mode.alpha, window=win) > 0
    except RasterioError as exc:
        raise InputError(f"{src.name}: cannot read its mask at {win} ({exc})") from None
    return out


def _open(path: Path | str, name: Path | str | None = None) -> rasterio.DatasetReader:
    if is_remote(path):  # GDAL's options are per thread: the endpoint, no folder listing
        with rasterio.Env(**gdal_options()):
            return _open_local(gdal_path(str(path)), name or path)
    return _open_local(path, name)


def _open_local(path: Path | str, name: Path | str | None = None) -> rasterio.DatasetReader:
    try:
        return rasterio.open(path)
    except (RasterioError, OSError) as exc:
        raise InputError(
            f"{name or path}: cannot open as a raster ({exc}); a URL must be readable by "
            "GDAL in place (HTTP range requests, or s3:// at AWS_ENDPOINT_URL with its keys)"
            if name is not None
            else f"{path}: cannot open as a raster ({exc})"
        ) from None


def is_folder_url(image: Path | str | Sequence[Path]) -> bool:
    """Whether `image` is a URL of a folder of tiles rather than of one raster.

    Args:
        image: What the user gave as the ortho.

    Returns:
        True for a remote location (``s3://``, ``https://``, ``/vsis3/``, ``/vsicurl/``)
        whose last part is not a raster's name (``.tif``, ``.tiff``, ``.jp2``, ``.vrt``).
    """
    if not isinstance(image, str) or not is_remote(image):
        return False
    name = image.rstrip("/").rsplit("/", 1)[-1]
    return not is_raster_name(name, (*ORTHO_SUFFIXES, ".vrt"))


def _tiles(image: Path | str | Sequence[Path]) -> list[Path | str]:
    if is_folder_url(image):  # listed once with fsspec, each tile read in place
        url = str(image).rstrip("/")
        found = raster_locations(url.removeprefix("/vsicurl/"))
        if not found:
            raise InputError(f"{url}: no ortho tiles (*.tif, *.tiff, *.jp2, any case) there")
        return found
    if isinstance(image, (str, Path)):
        folder = Path(image)
        tiles = raster_files(folder)
        if not tiles:
            raise InputError(f"{folder}: no ortho tiles (*.tif, *.tiff, *.jp2, any case) here")
        return list(tiles)
    return [Path(p) for p in image]


def mosaic_vrt(tiles: Sequence[Path | str]) -> str:
    """VRT XML assembling aligned tiles into one image.

    The same reader as the dataset build's (:func:`flair_pipeline.geo.raster_vrt.build_vrt`)
    with every band of the tiles kept and any common CRS accepted.

    Args:
        tiles: The tiles (GeoTIFF, JPEG 2000, …), all bands kept: local paths, or GDAL
            paths read in place (``/vsis3/…``).

    Returns:
        The VRT document as text.

    Raises:
        InputError: A tile that does not fit the others (CRS, resolution, bands, grid),
            naming it.
    """
    with _open(tiles[0]) as src:
        count = src.count
    product = Product("ortho", list(tiles), {str(b): b for b in range(1, count + 1)})
    return build_vrt([product], [str(b) for b in range(1, count + 1)], lambert93=False).xml


class ImageSource:
    """An ortho as one dataset on one grid, read by pixel windows padded with zeros.

    Use as a context manager. `path` is what the user gave, for error messages.
    :meth:`read` may be called from any number of threads (the prefetchers): each thread
    reads through its own GDAL handle, opened on its first read (a GDAL dataset is not
    thread-safe); :meth:`read_valid` is for one other thread (the writer).
    """

    def __init__(self, image: Path | str | Sequence[Path]) -> None:
        self._stack = contextlib.ExitStack()
        folder_url = is_folder_url(image)
        remote = is_remote(image) if isinstance(image, (str, Path)) and not folder_url else False
        if not isinstance(image, (str, Path)):
            image = [Path(p) for p in image]
            if not image:
                raise InputError("no ortho tiles given")
        single = remote or (
            isinstance(image, (str, Path)) and not folder_url and not Path(image).is_dir()
        )
        #: what the user gave, for messages (a URL stays a string: a Path collapses its //)
        self.path: Path | str = (
            str(image).rstrip("/")
            if remote or folder_url
            else (Path(image) if isinstance(image, (str, Path)) else image[0].parent)
        )
        self._tiles: list[TileFacts] = []
        self._tile_srcs: OrderedDict[Path | str, rasterio.DatasetReader] = OrderedDict()
        self._mask_src: rasterio.DatasetReader | None = None
        self._local = threading.local()  # each reading thread's own handle on the image
        self._handles: list[rasterio.DatasetReader] = []
        self._handles_lock = threading.Lock()
        if remote:  # read in place: GDAL fetches the header and the windows read only
            self._stack.enter_context(rasterio.Env(**gdal_options()))
            self.src = self._stack.enter_context(_open(gdal_path(str(self.path)), self.path))
            tr = self.src.transform
            if tr.b != 0 or tr.d != 0 or tr.a <= 0 or tr.e >= 0:
                raise InputError(
                    f"{self.path}: geotransform {tuple(tr)[:6]} is not north-up (rotated or "
                    "flipped); warp it to a north-up grid first (gdalwarp -t_srs EPSG:2154)"
                )
        elif single:
            self.path = Path(self.path)
            if not self.path.exists():
                raise InputError(f"{self.path}: image not found")
            check_north_up(inspect(self.path))
            self.src = self._stack.enter_context(_open(self.path))
        else:
            tiles = _tiles(image)
            xml = mosaic_vrt(tiles)
            mem = self._stack.enter_context(MemoryFile(xml.encode(), ext=".vrt"))
            self.src = self._stack.enter_context(mem.open())
            self._tiles = [inspect(t) for t in tiles]  # a URL's: GDAL's cache answers
            self._stack.callback(self._close_tiles)
        self._stack.callback(self._close_handles)
        self.height, self.width = self.src.height, self.src.width
        self.transform, self.crs, self.count = self.src.transform, self.src.crs, self.src.count
        self._modes: dict[Path | str, MaskMode] = {}  # mask_mode of each file, set by check()
        #: whether any pixel may be void (a mask, nodata or gaps between tiles), by check()
        self.may_have_voids = False
        #: lines recorded with the map: how a doubtful declaration of the image was read
        self.decisions: list[str] = []

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def check(self, bands: int) -> None:
        """InputError unless the image has at least `bands` uint8 bands.

        Args:
            bands: Bands the model reads (R, G, B, NIR[, elevation]).

        Raises:
            InputError: Fewer bands, or bands not uint8, naming the file.
        """
        if self.count < bands:
            raise InputError(
                f"{self.path}: {self.count} band(s), the model needs {bands} "
                "(R, G, B, NIR[, elevation]) in that order"
            )
        if set(self.src.dtypes[:bands]) != {"uint8"}:
            raise InputError(f"{self.path}: bands are {self.src.dtypes}, expected uint8")
        self._modes = {}
        files: list[Path | str] = [t.path for t in self._tiles] or [self.path]
        for f in files:
            with gdal_env([f]), self._open_again() if f == self.path else _open(f) as one:
                mode, decision = mask_mode(one, f, bands)
            self._modes[f] = mode
            if decision and not self.decisions:  # once: tiles share one band layout
                self.decisions.append(decision)
        if self._tiles:
            covered = sum(t.width * t.height for t in self._tiles)
            gaps = covered < self.width * self.height
            self.may_have_voids = gaps or any(not m.all_valid for m in self._modes.values())
        else:
            self.may_have_voids = not self._modes[self.path].all_valid
            if self.may_have_voids and self._mask_src is None:
                # a second handle: the writer thread reads the masks, the reader the pixels
                self._mask_src = self._stack.enter_context(self._open_again())

    def read_valid(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """(height, width) bool: True where the ortho holds data, False where it is void.

        Void is what the ortho declares: a nodata value (a pixel is void when every band
        holds it), a per-dataset mask band or an alpha band (0 = void), as rasterio's
        ``dataset_mask`` reads them; for a folder or list of tiles, each tile's own mask,
        and pixels no tile covers (and pixels outside the image) are void.

        Args:
            row: Top row of the window, image pixels (may be negative).
            col: Left column (may be negative).
            height: Window height, pixels.
            width: Window width, pixels.

        Returns:
            bool (height, width).
        """
        with gdal_env([self.path]):  # tiles read in place: GDAL's options in this thread
            return self._read_valid(row, col, height, width)

    def _read_valid(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """:meth:`read_valid` (GDAL's options already set for a URL).

        Returns:
            bool (height, width).
        """
        out = np.zeros((height, width), dtype=bool)
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + height, self.height), min(col + width, self.width)
        if r1 <= r0 or c1 <= c0:
            return out
        if not self.may_have_voids:
            out[r0 - row : r1 - row, c0 - col : c1 - col] = True
            return out
        if self._mask_src is not None:  # one file: its own mask
            win = Window(c0, r0, c1 - c0, r1 - r0)
            out[r0 - row : r1 - row, c0 - col : c1 - col] = read_valid_of(
                self._mask_src, self._modes[self.path], win
            )
            return out
        for t in self._tiles:  # tiles: each one's mask where it lies; gaps stay void
            tr = round((t.transform.f - self.transform.f) / self.transform.e)
            tc = round((t.transform.c - self.transform.c) / self.transform.a)
            a0, b0 = max(r0, tr), max(c0, tc)
            a1, b1 = min(r1, tr + t.height), min(c1, tc + t.width)
            if a1 > a0 and b1 > b0:
                win = Window(b0 - tc, a0 - tr, b1 - b0, a1 - a0)
                mode = self._modes[t.path]
                src = self.src if mode.all_valid else self._tile(t)
                out[a0 - row : a1 - row, b0 - col : b1 - col] |= read_valid_of(src, mode, win)
        return out

    def read(self, row: int, col: int, height: int, width: int, bands: int) -> np.ndarray:
        """(bands, height, width) uint8; pixels outside the image are 0.

        Args:
            row: Top row of the window, image pixels (may be negative).
            col: Left column (may be negative).
            height: Window height, pixels.
            width: Window width, pixels.
            bands: Bands read, from the first.

        Returns:
            uint8 (bands, height, width).

        Raises:
            InputError: GDAL cannot decode the window, naming the file and the window.
        """
        out = np.zeros((bands, height, width), dtype=np.uint8)
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + height, self.height), min(col + width, self.width)
        if r1 > r0 and c1 > c0:
            win = Window(c0, r0, c1 - c0, r1 - r0)
            try:
                with gdal_env([self.path]):  # a VRT of URLs opens its tiles as it reads
                    block = self._reader().read(list(range(1, bands + 1)), window=win)
            except RasterioError as exc:
                raise InputError(f"{self.path}: cannot read pixels at {win} ({exc})") from None
            out[:, r0 - row : r1 - row, c0 - col : c1 - col] = block
        return out

    def _reader(self) -> rasterio.DatasetReader:
        """This thread's own handle on the image (opened on its first read).

        Returns:
            An open dataset on the same file (or in-memory VRT) as :attr:`src`.
        """
        src: rasterio.DatasetReader | None = getattr(self._local, "src", None)
        if src is None:
            src = self._open_again()
            with self._handles_lock:
                self._handles.append(src)
            self._local.src = src
        return src

    def _open_again(self) -> rasterio.DatasetReader:
        """A new handle on the image (a URL read in place with the storage's options).

        Returns:
            An open dataset on the same file, URL or in-memory VRT as :attr:`src`.
        """
        if isinstance(self.path, str):  # remote: GDAL options are per thread
            with rasterio.Env(**gdal_options()):
                return _open_local(self.src.name, self.path)
        return _open_local(self.src.name)

    def _close_handles(self) -> None:
        with self._handles_lock:
            for src in self._handles:
                src.close()
            self._handles.clear()

    def _tile(self, t: TileFacts) -> rasterio.DatasetReader:
        """An open handle on a tile, for its mask (the least recently used is closed).

        Args:
            t: A tile of the image.

        Returns:
            Its open dataset (kept open for the next windows).
        """
        src = self._tile_srcs.pop(t.path, None) or _open(t.path)
        self._tile_srcs[t.path] = src
        while len(self._tile_srcs) > _OPEN_TILES:
            self._tile_srcs.popitem(last=False)[1].close()
        return src

    def _close_tiles(self) -> None:
        for src in self._tile_srcs.values():
            src.close()
        self._tile_srcs.clear()

    def bounds_of(
        self, row: int, col: int, height: int, width: int
    ) -> tuple[float, float, float, float]:
        """Extent (left, bottom, right, top, in the image CRS) of a pixel window.

        Args:
            row: Top row, image pixels.
            col: Left column.
            height: Window height, pixels.
            width: Window width, pixels.

        Returns:
            (left, bottom, right, top).
        """
        left, bottom, right, top = window_bounds(Window(col, row, width, height), self.transform)
        return (left, bottom, right, top)


class ElevationSource:
    """DSM − DTM on the image grid, encoded as in IMG patches (scaled, clipped uint8)."""

    def __init__(self, dsm: Path | str, dtm: Path | str, image: ImageSource, scale: float) -> None:
        box = image.bounds_of(0, 0, image.height, image.width)
        for p in (dsm, dtm):
            if not is_remote(p) and not Path(p).is_file():
                raise InputError(f"{p}: surface model not found")
            with _open(p if is_remote(p) else Path(p)) as src:
                b, (rx, ry), note = tuple(src.bounds), src.res, ""
                if not same_crs(src.crs, image.crs) and src.crs and image.crs:
                    # reprojected on the fly by Elevation: compare extents in the image's CRS
                    b = transform_bounds(src.crs, image.crs, *b, densify_pts=21)
                    rx = ry = 0.0
                    note = f" (reprojected from {src.crs.to_string()})"
                if (
                    b[0] > box[0] + rx
                    or b[1] > box[1] + ry
                    or b[2] < box[2] - rx
                    or b[3] < box[3] - ry
                ):
                    raise InputError(
                        f"{p}: extent {tuple(round(v, 3) for v in b)}{note} does not cover the "
                        f"image {image.path} ({tuple(round(v, 3) for v in box)})"
                    )
        self.image = image
        # a URL stays a string (a Path collapses its //): Elevation reads it in place
        dsm_in, dtm_in = (SurfaceInput((str(p),)) if is_remote(p) else Path(p) for p in (dsm, dtm))
        self._args = (dsm_in, dtm_in, scale)
        self._elev = Elevation(*self._args, crs=image.crs)  # checks them once, here
        self._local = threading.local()  # each reading thread's own DSM/DTM handles
        self._others: list[Elevation] = []
        self._lock = threading.Lock()
        self._claimed = False  # the checked reader went to a thread

    def __enter__(self) -> ElevationSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self._elev.close()
        with self._lock:
            for e in self._others:
                e.close()
            self._others.clear()

    def _mine(self) -> Elevation:
        """This thread's own DSM/DTM reader (GDAL handles are not thread-safe).

        Returns:
            The first thread's checked reader, or a fresh one for each other thread.
        """
        elev: Elevation | None = getattr(self._local, "elev", None)
        if elev is None:
            with self._lock:
                if not self._claimed:
                    self._claimed, elev = True, self._elev
                else:
                    elev = Elevation(*self._args, crs=self.image.crs)
                    self._others.append(elev)
            self._local.elev = elev
        return elev

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """(height, width) uint8 elevation band for a pixel window of the image.

        Args:
            row: Top row, image pixels.
            col: Left column.
            height: Window height, pixels.
            width: Window width, pixels.

        Returns:
            uint8 (height, width): (DSM − DTM) × scale, rounded and clipped to 0..255.
        """
        return self._mine().patch(self.image.bounds_of(row, col, height, width), (height, width))

    def read_direct(self, row: int, col: int, height: int, width: int) -> np.ndarray | None:
        """The elevation of a pixel window when it is one direct read, else None.

        Direct: the DSM and DTM are on the image's CRS and their pixels under the window
        (one pixel of margin, for the bilinear kernel) lie inside both rasters and hold no
        nodata or NaN. Then :meth:`read` of the window, and of any window inside it, is a
        bilinear resampled read whose pixels do not depend on the window's extent, so a
        large window read once gives each small window's values bit for bit
        (:class:`flair_pipeline.evaluation.predict_elevation.ElevationRows`). Otherwise
        (GDAL's warper, whose result depends on the extent warped) None: read the small
        windows one by one.

        Args:
            row: Top row, image pixels.
            col: Left column.
            height: Window height, pixels.
            width: Window width, pixels.

        Returns:
            uint8 (height, width) as :meth:`read` gives it, or None.
        """
        elev = self._mine()
        bounds = self.image.bounds_of(row, col, height, width)
        for src in (elev.dsm, elev.dtm):
            if not (src.crs and self.image.crs and same_crs(src.crs, self.image.crs)):
                return None
            win = from_bounds(*bounds, transform=src.transform)
            c0, r0 = int(np.floor(win.col_off)) - 1, int(np.floor(win.row_off)) - 1
            c1 = int(np.ceil(win.col_off + win.width)) + 1
            r1 = int(np.ceil(win.row_off + win.height)) + 1
            if c0 < 0 or r0 < 0 or c1 > src.width or r1 > src.height:
                return None
            native = src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
            void = ~np.isfinite(native)
            if src.nodata is not None:
                void |= native == src.nodata
            if void.any():
                return None
        return elev.patch(bounds, (height, width))
