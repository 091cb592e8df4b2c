"""The inputs of large-area prediction: an ortho (one file, a VRT or tiles) and DSM/DTM.

Whatever the ortho is delivered as, prediction sees one GDAL dataset on one pixel grid:
a folder or list of tiles becomes an in-memory VRT, after checking that every tile shares
the CRS, pixel size, pixel grid, band count and uint8 type (a tile off the grid would need
resampling, which would silently change pixels). Elevation is computed exactly as the IMG
patches were built (:class:`flair_pipeline.dataset.patches.Elevation`), so the model sees
at prediction time what it saw in training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from flair_pipeline.dataset.patches import Elevation
from flair_pipeline.errors import InputError
from flair_pipeline.geo.crs import same_crs
from flair_pipeline.geo.raster_vrt import (
    Product,
    build_vrt,
    check_north_up,
    inspect,
    raster_files,
)


def _open(path: Path) -> rasterio.DatasetReader:
    try:
        return rasterio.open(path)
    except (RasterioError, OSError) as exc:
        raise InputError(f"{path}: cannot open as a raster ({exc})") from None


def _tiles(image: Path | Sequence[Path]) -> list[Path]:
    if isinstance(image, (str, Path)):
        folder = Path(image)
        tiles = raster_files(folder)
        if not tiles:
            raise InputError(f"{folder}: no ortho tiles (*.tif, *.tiff, *.jp2, any case) here")
        return tiles
    return [Path(p) for p in image]


def mosaic_vrt(tiles: Sequence[Path]) -> str:
    """VRT XML assembling aligned tiles into one image; InputError naming a misfit tile.

    The same reader as the dataset build's (:func:`flair_pipeline.geo.raster_vrt.build_vrt`)
    with every band of the tiles kept and any common CRS accepted.
    """
    with _open(Path(tiles[0])) as src:
        count = src.count
    product = Product("ortho", list(tiles), {str(b): b for b in range(1, count + 1)})
    return build_vrt([product], [str(b) for b in range(1, count + 1)], lambert93=False).xml


class ImageSource:
    """An ortho as one dataset on one grid, read by pixel windows padded with zeros.

    Use as a context manager. `path` is what the user gave, for error messages.
    """

    def __init__(self, image: Path | Sequence[Path]) -> None:
        self._stack = contextlib.ExitStack()
        if not isinstance(image, (str, Path)):
            image = [Path(p) for p in image]
            if not image:
                raise InputError("no ortho tiles given")
        single = isinstance(image, (str, Path)) and not Path(image).is_dir()
        self.path = Path(image) if isinstance(image, (str, Path)) else image[0].parent
        if single:
            if not self.path.exists():
                raise InputError(f"{self.path}: image not found")
            check_north_up(inspect(self.path))
            self.src = self._stack.enter_context(_open(self.path))
        else:
            xml = mosaic_vrt(_tiles(image))
            mem = self._stack.enter_context(MemoryFile(xml.encode(), ext=".vrt"))
            self.src = self._stack.enter_context(mem.open())
        self.height, self.width = self.src.height, self.src.width
        self.transform, self.crs, self.count = self.src.transform, self.src.crs, self.src.count

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def check(self, bands: int) -> None:
        """InputError unless the image has at least `bands` uint8 bands."""
        if self.count < bands:
            raise InputError(
                f"{self.path}: {self.count} band(s), the model needs {bands} "
                "(R, G, B, NIR[, elevation]) in that order"
            )
        if set(self.src.dtypes[:bands]) != {"uint8"}:
            raise InputError(f"{self.path}: bands are {self.src.dtypes}, expected uint8")

    def read(self, row: int, col: int, height: int, width: int, bands: int) -> np.ndarray:
        """(bands, height, width) uint8; pixels outside the image are 0."""
        out = np.zeros((bands, height, width), dtype=np.uint8)
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + height, self.height), min(col + width, self.width)
        if r1 > r0 and c1 > c0:
            win = Window(c0, r0, c1 - c0, r1 - r0)
            try:
                block = self.src.read(list(range(1, bands + 1)), window=win)
            except RasterioError as exc:
                raise InputError(f"{self.path}: cannot read pixels at {win} ({exc})") from None
            out[:, r0 - row : r1 - row, c0 - col : c1 - col] = block
        return out

    def bounds_of(
        self, row: int, col: int, height: int, width: int
    ) -> tuple[float, float, float, float]:
        """Extent (left, bottom, right, top, in the image CRS) of a pixel window."""
        left, bottom, right, top = window_bounds(Window(col, row, width, height), self.transform)
        return (left, bottom, right, top)


class ElevationSource:
    """DSM − DTM on the image grid, encoded as in IMG patches (scaled, clipped uint8)."""

    def __init__(self, dsm: Path, dtm: Path, image: ImageSource, scale: float) -> None:
        box = image.bounds_of(0, 0, image.height, image.width)
        for p in (dsm, dtm):
            if not Path(p).is_file():
                raise InputError(f"{p}: surface model not found")
            with _open(Path(p)) as src:
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
        self._elev = Elevation(Path(dsm), Path(dtm), scale, crs=image.crs)

    def __enter__(self) -> ElevationSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self._elev.close()

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """(height, width) uint8 elevation band for a pixel window of the image."""
        return self._elev.patch(self.image.bounds_of(row, col, height, width), (height, width))
