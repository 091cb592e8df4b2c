"""Seamless reads from an orthophoto mosaic delivered as many GeoTIFF tiles.

A patch may straddle two or four tiles; it must come out as if the mosaic were one image.
Tiles are opened once per domain and checked to share one CRS, one pixel size and one
pixel grid (a tile on another grid would need resampling, which would silently change the
pixels, so it is refused with an error naming it). A corrupt tile does not sink the domain:
the patches it touches fail with :class:`TileReadError` and the caller skips them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from flair_pipeline.errors import InputError

Bounds = tuple[float, float, float, float]


class TileReadError(InputError):
    """A tile could not be read; the patches it touches are skipped and reported."""


@dataclass(frozen=True)
class TileInfo:
    """What is known of a tile without reading pixels."""

    path: Path
    bounds: Bounds
    count: int


class Mosaic:
    """A folder of aligned tiles read as one image. Use as a context manager."""

    def __init__(self, folder: str | Path, expected_crs: str = "EPSG:2154") -> None:
        self.folder = Path(folder)
        paths = sorted(self.folder.glob("*.tif")) + sorted(self.folder.glob("*.tiff"))
        if not paths:
            raise InputError(f"{self.folder}: no mosaic tiles (*.tif) found")
        self.tiles: list[TileInfo] = []
        self.broken: dict[Path, str] = {}
        self._open: dict[Path, rasterio.io.DatasetReader] = {}
        self.res: float | None = None
        self.origin: tuple[float, float] | None = None
        self.count: int | None = None
        self.nodata: float | None = None
        for p in paths:
            try:
                src = rasterio.open(p)
            except rasterio.errors.RasterioIOError as exc:
                self.broken[p] = f"unreadable ({exc})"
                continue
            self._check(p, src, expected_crs)
            self._open[p] = src
            self.tiles.append(TileInfo(p, tuple(src.bounds), src.count))
        if not self.tiles:
            raise InputError(f"{self.folder}: none of the {len(paths)} tiles could be opened")

    def _check(self, path: Path, src: rasterio.io.DatasetReader, expected_crs: str) -> None:
        if src.crs is None or src.crs != rasterio.crs.CRS.from_user_input(expected_crs):
            raise InputError(
                f"{path}: mosaic tile has CRS {src.crs}, expected {expected_crs}; "
                "reproject the tile to the mosaic's CRS first (e.g. gdalwarp -t_srs)"
            )
        rx, ry = src.res
        if self.res is None:
            self.res, self.origin, self.count = rx, (src.bounds.left, src.bounds.top), src.count
            self.nodata = src.nodata
        if abs(rx - self.res) > 1e-6 * self.res or abs(ry - self.res) > 1e-6 * self.res:
            raise InputError(
                f"{path}: pixel size {rx:g} x {ry:g} m differs from the mosaic's {self.res:g} m"
            )
        ox, oy = self.origin  # type: ignore[misc]
        off = ((src.bounds.left - ox) / self.res, (oy - src.bounds.top) / self.res)
        if any(abs(o - round(o)) > 1e-3 for o in off):
            raise InputError(f"{path}: tile is not on the mosaic's pixel grid (offset {off})")
        if src.count != self.count:
            raise InputError(f"{path}: {src.count} bands, other tiles have {self.count}")

    def __enter__(self) -> Mosaic:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for src in self._open.values():
            src.close()
        self._open.clear()

    @property
    def bounds(self) -> Bounds:
        """Bounding box of all readable tiles."""
        b = np.array([t.bounds for t in self.tiles])
        return (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())

    def tiles_touching(self, bounds: Bounds) -> list[TileInfo]:
        x0, y0, x1, y1 = bounds
        return [t for t in self.tiles
                if t.bounds[0] < x1 and t.bounds[2] > x0 and t.bounds[1] < y1 and t.bounds[3] > y0]  # fmt: skip

    def broken_touching(self, bounds: Bounds) -> list[Path]:
        """Unreadable tiles that would have covered part of `bounds`.

        Their extent is unknown, so it is taken from the IGN name (``dd-yyyy-xmin-ymax-…``)
        and the size of the readable tiles; a tile with another name touches everything.
        """
        t = self.tiles[0].bounds
        size = (t[2] - t[0], t[3] - t[1])
        return [p for p in self.broken if _named_bounds_touch(p, size, bounds)]

    def read(self, bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (bands, H, W) of `bounds` and a bool mask of pixels covered by some tile.

        Raises TileReadError naming the tile if a touching tile fails to decode.
        """
        res = self.res
        assert res is not None and self.count is not None
        x0, y0, x1, y1 = bounds
        w, h = round((x1 - x0) / res), round((y1 - y0) / res)
        out = np.zeros((self.count, h, w), dtype=np.uint8)
        covered = np.zeros((h, w), dtype=bool)
        for t in self.tiles_touching(bounds):
            src = self._open[t.path]
            ix0, iy0 = max(x0, t.bounds[0]), max(y0, t.bounds[1])
            ix1, iy1 = min(x1, t.bounds[2]), min(y1, t.bounds[3])
            col = round((ix0 - t.bounds[0]) / res)
            row = round((t.bounds[3] - iy1) / res)
            cw, ch = round((ix1 - ix0) / res), round((iy1 - iy0) / res)
            dc, dr = round((ix0 - x0) / res), round((y1 - iy1) / res)
            if cw <= 0 or ch <= 0:
                continue
            try:
                block = src.read(window=Window(col, row, cw, ch))
            except rasterio.errors.RasterioIOError as exc:
                raise TileReadError(f"{t.path}: cannot decode pixels ({exc})") from None
            out[:, dr : dr + ch, dc : dc + cw] = block
            if self.nodata is None:
                covered[dr : dr + ch, dc : dc + cw] = True
            else:  # nodata only where every band holds it (a black roof pixel is data)
                covered[dr : dr + ch, dc : dc + cw] = (block != self.nodata).any(axis=0)
        return out, covered


def _named_bounds_touch(path: Path, size: tuple[float, float], bounds: Bounds) -> bool:
    parts = path.stem.split("-")
    try:
        xmin, ymax = float(parts[2]), float(parts[3])
    except (IndexError, ValueError):
        return True
    return (
        xmin < bounds[2]
        and xmin + size[0] > bounds[0]
        and ymax > bounds[1]
        and ymax - size[1] < bounds[3]
    )
