"""Seamless reads from an orthophoto mosaic delivered as many tiles, of one or more products.

A patch may straddle two or four tiles; it must come out as if the mosaic were one image.
The tiles are assembled by the project's one VRT reader
(:func:`flair_pipeline.geo.raster_vrt.build_vrt`), which checks them first: one CRS
(Lambert-93 in any spelling), north-up, one pixel size and grid, uint8 unless rescaled, and
every band of R, G, B, NIR present, and (given ``resolution``) the pixel size the patches
are cut at, unless a ``resampling`` method is given — each refusal is one line naming the
tile. A rescaled product's nodata is found on its source values, before scaling (see
:meth:`Mosaic.read`).

A pixel is covered when **every** product has data there: some tile of the product over
it, not its nodata value on every band of its files (IRC's NIR at 255 alone is
saturation), not masked by its per-dataset mask (an internal or ``.msk`` mask band, or an
alpha band at 0). RVB over a place where IRC is missing is not covered: its NIR would be
made up.

A product given as one mosaic VRT (a département's dalles, ``gdalbuildvrt`` or the
``departement`` synthetic world) is read through it, but its coverage is its dalles'
footprints, read from the VRT's XML without opening a dalle
(:mod:`flair_pipeline.geo.vrt_index`): a hole between dalles is no data.

Tiles may live where GDAL reads them in place: `source` a folder URL (``s3://…``,
``https://…``, listed once with fsspec) or products whose files are URLs or ``/vsis3/`` /
``/vsicurl/`` paths; every open and read then runs with
:func:`flair_pipeline.storage.gdal_env`, fetching the headers and the blocks read only.

A corrupt tile does not sink the domain: the patches it touches fail with
:class:`TileReadError` and the caller skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.io import MemoryFile
from rasterio.windows import Window

from flair_pipeline.config import SamplingConfig
from flair_pipeline.errors import InputError
from flair_pipeline.geo.raster_vrt import (
    Location,
    Product,
    RasterVRT,
    build_vrt,
    default_product,
    raster_locations,
    uses_mask,
)
from flair_pipeline.geo.vrt_index import vrt_sources
from flair_pipeline.storage import gdal_env, is_url

Bounds = tuple[float, float, float, float]


class TileReadError(InputError):
    """A tile could not be read; the patches it touches are skipped and reported."""


@dataclass(frozen=True)
class TileInfo:
    """What is known of a tile without reading pixels."""

    path: Location
    bounds: Bounds
    count: int


class Mosaic:
    """Tiles read as one R, G, B, NIR image. Use as a context manager.

    `source` is a folder of 4-band tiles (the raw layout; ``*.tif``, ``*.TIF``,
    ``*.jp2``… in any case) or the products of a domain spec (e.g. BD ORTHO RVB + IRC).
    `resolution` (``sampling.resolution``), when given, is the pixel size every tile must
    have; a tile at another one is refused (InputError naming it and its pixel size) or,
    with `resampling` (``sampling.ortho_resampling``), read through GDAL's warper onto
    that grid (the decision is in ``vrt.decisions``). JPEG 2000 tiles are decoded with
    `decode_threads` threads (``sampling.jp2_decode_threads``; None: the CPUs this process
    may run on), GDAL's ``GDAL_NUM_THREADS`` and ``OPJ_NUM_THREADS`` around each read; the
    number is in ``vrt.decisions`` (docs/performance.md, "JPEG 2000 dalles").
    """

    def __init__(
        self,
        source: str | Path | Sequence[Product],
        expected_crs: str = "EPSG:2154",
        *,
        resolution: float | None = None,
        resampling: str | None = None,
        decode_threads: int | None = None,
    ) -> None:
        self.folder: Location
        if isinstance(source, (str, Path)):
            self.folder = str(source).rstrip("/") if is_url(source) else Path(source)
            remote = isinstance(self.folder, str)
            paths = raster_locations(self.folder) if remote or Path(self.folder).is_dir() else []
            if not paths:
                raise InputError(
                    f"{self.folder}: no mosaic tiles (*.tif, *.tiff, *.jp2, any case) found"
                )
            products: Sequence[Product] = [default_product(paths)]
        else:
            products = list(source)
            first = products[0].files[0] if products[0].files else ""
            self.folder = (
                str(first).rsplit("/", 1)[0]
                if is_url(first) or str(first).startswith("/vsi")
                else Path(first).parent
            )
        if expected_crs != "EPSG:2154":
            raise ValueError("the dataset build reads Lambert-93 (EPSG:2154) orthos only")
        self.products = {p.name: p for p in products}
        self._where = [f for p in products for f in p.files]  # remote: GDAL options around reads
        self.vrt = build_vrt(
            products,
            lambert93=True,
            skip_unreadable=True,
            resolution=resolution,
            resampling=resampling,
            product_bands=True,
        )
        self.broken: dict[Location, str] = self.vrt.broken
        _dalle_footprints(self.vrt, products)
        self.tiles = [TileInfo(t.path, t.bounds, t.count) for t in self.vrt.tiles]
        self._threads: str | None = None
        files = [Path(f) for p in self.products.values() for f in p.files]
        jp2 = [f for f in files if f.suffix.lower() in _JP2_SUFFIXES] or [
            Path(t.path) for t in self.tiles if Path(t.path).suffix.lower() in _JP2_SUFFIXES
        ]  # a product given as one mosaic VRT: its dalles (from the VRT's XML)
        if jp2:
            n = decode_threads or len(os.sched_getaffinity(0))
            self._threads = str(n)
            # the setting, not the machine's CPU count: the record stays the same anywhere
            how = str(decode_threads) if decode_threads else "auto (the CPUs of the process)"
            self.vrt.decisions.append(
                f"ortho: {len(jp2)} JPEG 2000 tile(s) (first: {jp2[0].name}) decoded by GDAL's "
                f"OpenJPEG with sampling.jp2_decode_threads {how} thread(s) (GDAL_NUM_THREADS)"
            )
        self.res: float | None = self.vrt.res
        self._bounds_cache: dict[str, np.ndarray] = {}
        self.count: int | None = len(self.vrt.band_names)
        self.nodata: tuple[float | None, ...] = self.vrt.nodata
        self._scaled = any(s is not None for s in self.vrt.scales)
        self._mem = MemoryFile(self.vrt.xml.encode(), ext=".vrt")
        self._mask_mem = (
            MemoryFile(self.vrt.mask_xml.encode(), ext=".vrt") if self.vrt.mask_xml else None
        )
        with gdal_env(self._where):
            self._src = self._mem.open()
            self._mask_src = self._mask_mem.open() if self._mask_mem is not None else None

    def __enter__(self) -> Mosaic:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the VRT datasets, their in-memory files and the resampled views."""
        self._src.close()
        self._mem.close()
        if self._mask_src is not None and self._mask_mem is not None:
            self._mask_src.close()
            self._mask_mem.close()
        self.vrt.close()

    @property
    def bounds(self) -> Bounds:
        """Bounding box of all readable tiles."""
        return self.vrt.bounds

    def tiles_touching(self, bounds: Bounds) -> list[TileInfo]:
        """Tiles whose extent overlaps `bounds` (x0, y0, x1, y1, metres, the mosaic's CRS).

        Args:
            bounds: (left, bottom, right, top) in the mosaic's CRS.

        Returns:
            The tiles whose bounds intersect `bounds` with a non-zero area, in mosaic order.
        """
        return [t for t in self.tiles if _overlaps(t.bounds, bounds)]

    def broken_touching(self, bounds: Bounds) -> list[Location]:
        """Unreadable tiles that would have covered part of `bounds`.

        Their extent is unknown, so it is taken from the IGN name (``dd-yyyy-xmin-ymax-…``,
        :func:`named_corner`: kilometres as IGN writes them, or metres) and the size of the
        readable tiles; a tile with another name touches everything.

        Args:
            bounds: (left, bottom, right, top), Lambert-93 m.

        Returns:
            The unreadable tiles' paths.
        """
        t = self.tiles[0].bounds
        size = (t[2] - t[0], t[3] - t[1])
        return [p for p in self.broken if _named_bounds_touch(p, size, bounds)]

    def read(self, bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (4, H, W) uint8 of `bounds` and a bool mask of pixels every product covers.

        See :meth:`read_products`; the mask is the AND of its per-product masks.

        Args:
            bounds: (left, bottom, right, top), Lambert-93 m.

        Returns:
            (pixels (4, H, W) uint8 R, G, B, NIR; bool (H, W) mask).
        """
        out, valid = self.read_products(bounds)
        return out, np.logical_and.reduce(list(valid.values()))

    def read_products(self, bounds: Bounds) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Pixels (4, H, W) uint8 of `bounds` and, per product, a bool mask of its data.

        A product has data at a pixel when one of its tiles covers it, its per-dataset mask
        (mask band, or alpha) is not 0 there, and not every band of its files holds its nodata
        value (a black or white roof pixel is data). A rescaled product's nodata is
        compared on its source values, before scaling, and its pixels there are 0 (like
        pixels outside every tile), never the scaled nodata; a valid value that scales to 0
        stays data. Pixels a mask hides are 0 in the bands of its product.

        Args:
            bounds: (left, bottom, right, top), Lambert-93 m.

        Returns:
            (pixels (4, H, W) uint8 R, G, B, NIR; product name -> bool (H, W) mask).

        Raises:
            TileReadError: A touching tile fails to decode, naming it.
        """
        assert self.count is not None
        w, h, c0, r0, window = self._window(bounds)
        out = np.zeros((self.count, h, w), dtype=np.uint8)
        valid = {name: np.zeros((h, w), dtype=bool) for name in self.vrt.product_bands}
        if window is None:
            return out, valid
        cc0, rr0 = int(window.col_off), int(window.row_off)
        cc1, rr1 = cc0 + int(window.width), rr0 + int(window.height)
        masks = None
        out = np.zeros((self._src.count, h, w), dtype=np.uint8)  # + the products' other bands
        try:
            with self._decoding():
                block = self._src.read(window=window, out_dtype="float32" if self._scaled else None)
                if self._mask_src is not None:
                    masks = np.zeros((self.count, h, w), dtype=np.uint8)
                    masks[:, rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = self._mask_src.read(
                        window=window
                    )
        except rasterio.errors.RasterioIOError as exc:
            raise TileReadError(f"{self._culprit(bounds)}: cannot decode pixels ({exc})") from None
        inner = np.s_[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0]
        blank = np.zeros(out.shape, dtype=bool)
        if self._scaled:  # rescaled bands are Float32 with NaN at the source's nodata
            blank[:, inner[0], inner[1]] = np.isnan(block)
            block = np.floor(np.clip(np.where(np.isnan(block), 0.0, block), 0.0, 255.0) + 0.5)
        out[:, inner[0], inner[1]] = block
        for name, bands in self.vrt.product_bands.items():
            valid[name] = self._product_data(name, bands, bounds, out, blank, masks)
        return out[: self.count], valid

    def _window(self, bounds: Bounds) -> tuple[int, int, int, int, Window | None]:
        """`bounds` on the mosaic's pixel grid, and the part of it inside the mosaic.

        Args:
            bounds: (left, bottom, right, top), Lambert-93 m.

        Returns:
            (width, height in full pixels; column, row of its top-left corner, which may
            lie outside the mosaic; the window of the mosaic it covers, None when none).
        """
        res = self.res
        assert res is not None
        x0, y0, x1, y1 = bounds
        left, _, _, top = self.vrt.bounds
        w, h = round((x1 - x0) / res), round((y1 - y0) / res)
        c0, r0 = round((x0 - left) / res), round((top - y1) / res)
        cc0, rr0 = max(c0, 0), max(r0, 0)
        cc1, rr1 = min(c0 + w, self.vrt.width), min(r0 + h, self.vrt.height)
        if cc1 <= cc0 or rr1 <= rr0:
            return w, h, c0, r0, None
        return w, h, c0, r0, Window(cc0, rr0, cc1 - cc0, rr1 - rr0)

    def read_coverage(self, bounds: Bounds, decimation: int) -> dict[str, np.ndarray]:
        """Per product, where it has data in `bounds`, on a grid `decimation` times coarser.

        The coarse pixels of :meth:`read_products`'s coverage: a window of ``n × n`` full
        pixels is read as ``ceil(n / decimation)`` pixels a side (rasterio's ``out_shape``,
        nearest: GDAL takes the coarsest fitting JPEG 2000 resolution level, GeoTIFF
        overview or VRT implicit overview, else subsamples), masks and alpha included, and
        a coarse pixel has data as a full one does (under a tile's footprint, not masked,
        not every band at its nodata). An estimate: a nodata edge may be misplaced by one
        coarse pixel, and nodata pixels scattered between the samples are not seen
        (:mod:`~flair_pipeline.dataset.coarse_coverage`, the exact check on the kept
        patches).

        Args:
            bounds: (left, bottom, right, top), Lambert-93 m.
            decimation: Full pixels per coarse pixel along a side (>= 1).

        Returns:
            Product name -> bool (ceil(H / decimation), ceil(W / decimation)) mask.

        Raises:
            TileReadError: A touching tile fails to decode, naming it.
        """
        assert self.count is not None and self.res is not None
        w, h, c0, r0, window = self._window(bounds)
        cw, ch = -(-w // decimation), -(-h // decimation)
        valid = {name: np.zeros((ch, cw), dtype=bool) for name in self.vrt.product_bands}
        if window is None:
            return valid
        cc0, rr0 = int(window.col_off), int(window.row_off)
        cc1, rr1 = cc0 + int(window.width), rr0 + int(window.height)
        # the part of the cell inside the mosaic, on the coarse grid (a partial coarse
        # pixel at the mosaic's edge is read whole: within the one-pixel margin)
        k0, q0 = (cc0 - c0) // decimation, (rr0 - r0) // decimation
        k1, q1 = -(-(cc1 - c0) // decimation), -(-(rr1 - r0) // decimation)
        inner = np.s_[q0:q1, k0:k1]
        shape = (q1 - q0, k1 - k0)
        out = np.zeros((self._src.count, ch, cw), dtype=np.uint8)
        masks = None
        try:
            with self._decoding():
                block = self._src.read(
                    window=window,
                    out_shape=(self._src.count, *shape),
                    out_dtype="float32" if self._scaled else None,
                )
                if self._mask_src is not None:
                    masks = np.zeros((self.count, ch, cw), dtype=np.uint8)
                    masks[:, inner[0], inner[1]] = self._mask_src.read(
                        window=window, out_shape=(self._mask_src.count, *shape)
                    )
        except rasterio.errors.RasterioIOError as exc:
            raise TileReadError(f"{self._culprit(bounds)}: cannot decode pixels ({exc})") from None
        blank = np.zeros(out.shape, dtype=bool)
        if self._scaled:
            blank[:, inner[0], inner[1]] = np.isnan(block)
            block = np.floor(np.clip(np.where(np.isnan(block), 0.0, block), 0.0, 255.0) + 0.5)
        out[:, inner[0], inner[1]] = block
        for name, bands in self.vrt.product_bands.items():
            valid[name] = self._product_data(
                name, bands, bounds, out, blank, masks, res=self.res * decimation
            )
        return valid

    @contextmanager
    def _decoding(self) -> Iterator[None]:
        """GDAL's JPEG 2000 decoding threads for the reads of the block, when tiles are JP2.

        Yields:
            Nothing; the block runs with the threads set.
        """
        with gdal_env(self._where):
            if self._threads is None:
                yield
                return
            with rasterio.Env(GDAL_NUM_THREADS=self._threads, OPJ_NUM_THREADS=self._threads):
                yield

    def _product_data(
        self,
        name: str,
        bands: tuple[int, ...],
        bounds: Bounds,
        out: np.ndarray,
        blank: np.ndarray,
        masks: np.ndarray | None,
        res: float | None = None,
    ) -> np.ndarray:
        """Where product `name` has data in `bounds`; zeroes the pixels its masks hide.

        Args:
            name: The product.
            bands: Its band indices in `out`.
            bounds: (left, bottom, right, top), Lambert-93 m.
            out: The pixels read (4, H, W), modified in place.
            blank: Where every band of `out` is 0.
            masks: Per-band dataset masks (4, H, W), or None when no tile has one.
            res: The pixel size of `out` (None: the mosaic's; a coarse read's is larger).

        Returns:
            bool (H, W): where the product has data.
        """
        plain = np.zeros(out.shape[1:], dtype=bool)  # under a tile without a mask
        masked = np.zeros(out.shape[1:], dtype=bool)  # under a tile with one
        prod = self.products[name]
        tiles = self.vrt.product_tiles[name]
        near = _overlapping(self._tile_bounds(name), bounds)
        for t in (tiles[i] for i in near):
            _fill(masked if uses_mask(prod, t) else plain, t.bounds, bounds, res or self.res)
        ok = plain
        if masks is not None and masked.any():
            seen = (masks[list(bands)] > 0).any(axis=0)
            ok = plain | (masked & seen)
            for b in bands:  # what a mask hides is no pixel value: 0, as outside every tile
                out[b][masked & (masks[b] == 0)] = 0
        nodata = [self.nodata[b] for b in bands]
        if all(v is not None for v in nodata):  # every band of its files holds its nodata
            void = np.ones(out.shape[1:], dtype=bool)
            scaled = self.vrt.scales[bands[0]] is not None
            for b in (*bands, *self.vrt.product_extra.get(name, ())):
                void &= blank[b] if scaled else out[b] == nodata[0]
            ok = ok & ~void
        return ok

    def _tile_bounds(self, name: str) -> np.ndarray:
        """(n, 4) bounds of product `name`'s tiles (cached: a département has thousands).

        Args:
            name: The product.

        Returns:
            float (n, 4) left, bottom, right, top, in ``product_tiles`` order.
        """
        if name not in self._bounds_cache:
            tiles = self.vrt.product_tiles[name]
            self._bounds_cache[name] = np.asarray([t.bounds for t in tiles], float).reshape(-1, 4)
        return self._bounds_cache[name]

    def _culprit(self, bounds: Bounds) -> Location:
        """The touching tile that fails to decode on its own, or the mosaic's folder.

        Args:
            bounds: The bounds whose read failed.

        Returns:
            The first touching tile that fails alone, else the mosaic's folder.
        """
        for t in self.tiles_touching(bounds):
            try:
                with gdal_env([t.path]), rasterio.open(t.path) as src:
                    src.read()
            except rasterio.errors.RasterioError:
                return t.path
        return self.folder


def mosaic_options(cfg: SamplingConfig) -> dict[str, Any]:
    """The :class:`Mosaic` keywords of the dataset build: the pixel size and its resampling.

    Args:
        cfg: The ``sampling`` section (``resolution``, ``ortho_resampling``).

    Returns:
        ``{"resolution": …, "resampling": None or a GDAL method, "decode_threads": …}``
        (resampling None: refuse a tile at another pixel size; decode_threads None: the
        CPUs of this process).
    """
    method = cfg.ortho_resampling
    return {
        "resolution": cfg.resolution,
        "resampling": None if method == "refuse" else method,
        "decode_threads": cfg.jp2_decode_threads,
    }


#: JPEG 2000 file suffixes (lower case): the tiles GDAL's OpenJPEG driver decodes.
_JP2_SUFFIXES = {".jp2", ".j2k", ".jpx"}

#: Lambert-93 northings run from 6000 to 7200 km: a tile name's y under this is in km.
_KM_NAME_MAX_Y = 100_000.0


def named_corner(path: Location) -> tuple[float, float] | None:
    """The upper-left corner (x, y in metres, EPSG:2154) an IGN tile name gives, or None.

    IGN names its dalles ``<dept>-<year>-<xmin>-<ymax>-LA93-…`` with the corner in
    kilometres (BD ORTHO ``49-2022-0405-6700-LA93-0M20-E080.jp2``: x 405 km, y 6700 km;
    ``../shared/real-samples/ign/SOURCES.md``); the synthetic world writes metres
    (``33-2021-0500000-6400000-LA93-0M20.tif``). Lambert-93 y is 6 000–7 200 km, so a y
    below 100 000 is read as kilometres.

    Args:
        path: A tile file.

    Returns:
        (x, y) in metres, or None when the name does not follow the pattern.
    """
    parts = Path(path).stem.split("-")
    try:
        x, y = float(parts[2]), float(parts[3])
    except (IndexError, ValueError):
        return None
    scale = 1000.0 if y < _KM_NAME_MAX_Y else 1.0
    return x * scale, y * scale


def _dalle_footprints(vrt: RasterVRT, products: Sequence[Product]) -> None:
    """Replace, in `vrt`, a product given as one mosaic VRT by its dalles' footprints.

    A product whose only file is a ``.vrt`` placing several sources (a département's
    dalles, :mod:`flair_pipeline.geo.vrt_index`) is read through that VRT, but its
    coverage is the union of its sources' footprints, taken from the XML (no dalle is
    opened): a hole between dalles is no data, and the areas' coverage sees the dalles.

    Args:
        vrt: The mosaic's VRT (``tiles`` and ``product_tiles`` updated in place).
        products: The products it was built from.
    """
    for prod in products:
        files = list(prod.files)
        if len(files) != 1 or Path(files[0]).suffix.lower() != ".vrt":
            continue
        if prod.name not in vrt.product_tiles or not vrt.product_tiles[prod.name]:
            continue
        dalles = vrt_sources(Path(files[0]))
        if len(dalles) < 2:
            continue
        whole = vrt.product_tiles[prod.name][0]
        vrt.product_tiles[prod.name] = [
            replace(d, crs=whole.crs, count=whole.count, nodata=whole.nodata) for d in dalles
        ]
    vrt.tiles = [t for ts in vrt.product_tiles.values() for t in ts]


def _overlapping(tb: np.ndarray, b: Bounds) -> np.ndarray:
    """Indices of the rows of `tb` (n, 4 bounds) overlapping `b` with a non-zero area.

    Args:
        tb: Bounds, one row per tile.
        b: (left, bottom, right, top).

    Returns:
        The indices, ascending.
    """
    hit = (tb[:, 0] < b[2]) & (tb[:, 2] > b[0]) & (tb[:, 1] < b[3]) & (tb[:, 3] > b[1])
    return np.flatnonzero(hit)


def _overlaps(a: Bounds, b: Bounds) -> bool:
    return a[0] < b[2] and a[2] > b[0] and a[1] < b[3] and a[3] > b[1]


def _fill(target: np.ndarray, tile: Bounds, bounds: Bounds, res: float | None) -> None:
    """Set True the pixels of `target` (the grid of `bounds`) inside `tile`."""
    assert res is not None
    x0, _, _, y1 = bounds
    tc0, tr0 = round((tile[0] - x0) / res), round((y1 - tile[3]) / res)
    tc1, tr1 = round((tile[2] - x0) / res), round((y1 - tile[1]) / res)
    target[max(tr0, 0) : max(tr1, 0), max(tc0, 0) : max(tc1, 0)] = True


def _named_bounds_touch(path: Location, size: tuple[float, float], bounds: Bounds) -> bool:
    corner = named_corner(path)
    if corner is None:  # an extent we cannot know: it may touch anything
        return True
    xmin, ymax = corner
    return (
        xmin < bounds[2]
        and xmin + size[0] > bounds[0]
        and ymax > bounds[1]
        and ymax - size[1] < bounds[3]
    )
