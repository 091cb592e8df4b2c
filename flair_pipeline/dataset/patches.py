"""Per-patch products: IMG (R, G, B, NIR, elevation) and MSK (label codes).

Each patch is read, computed and written on its own, so one bad patch (a corrupt tile under
it, say) is reported and skipped while the rest of the domain is built (eo-learn's per-item
failure isolation). Files are written under a temporary name and renamed, never half
written. Elevation is DSM − DTM resampled bilinearly onto the patch's 0.2 m grid, scaled
by ``sampling.elevation_scale`` (default 5: one grey level per 0.2 m, 51 m at 255) and
clipped to uint8 — FLAIR's own encoding of the elevation band.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import from_bounds

from flair_pipeline.dataset.layout import DatasetLayout
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.errors import FlairPipelineError, InputError
from flair_pipeline.io import write_geotiff
from flair_pipeline.nomenclature import colormap

IMG_BANDS = ("red", "green", "blue", "nir", "elevation")
#: deflate ZLEVEL / zstd ZSTD_LEVEL of IMG files: level 1 encodes ~5x (deflate, vs 6) and ~3x
#: (zstd, vs 9) faster than GDAL's defaults for ~10 % larger files (bench/build_dataset.py,
#: bench/compression.py); every GeoTIFF reader still opens them.
IMG_ZLEVEL = 1
#: `dataset.compression` values (GDAL COMPRESS) and the default: the FLAIR release's own.
COMPRESSIONS = ("none", "deflate", "zstd", "lzw")
DEFAULT_COMPRESSION = "zstd"
CRS = "EPSG:2154"


def compression_options(name: str, *, zlevel: int | None = None) -> dict[str, object]:
    """GDAL creation options of `dataset.compression` `name` (PREDICTOR=2 unless none).

    `zlevel` sets deflate's ZLEVEL or zstd's ZSTD_LEVEL (IMG: 1, see IMG_ZLEVEL; GDAL's
    default ZSTD_LEVEL 9 writes a demo IMG ~3x slower for ~10 % fewer bytes,
    docs/performance.md). Raises ValueError for a name outside COMPRESSIONS.
    """
    if name not in COMPRESSIONS:
        raise ValueError(f"dataset.compression {name!r}: expected one of {COMPRESSIONS}")
    if name == "none":
        return {"compress": "none"}
    opts: dict[str, object] = {"compress": name, "predictor": 2}
    if zlevel is not None and name in ("deflate", "zstd"):
        opts["zlevel" if name == "deflate" else "zstd_level"] = zlevel
    return opts


@dataclass
class BuildReport:
    """Outcome of building one kind of per-patch file for a domain."""

    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (patch id, reason)

    def as_metadata(self) -> dict[str, object]:
        return {
            "written": self.written,
            "skipped": len(self.skipped),
            "skipped_patches": [f"{p}: {r}" for p, r in self.skipped][:50],
        }


def _bounds(row) -> tuple[float, float, float, float]:
    return tuple(row.geometry.bounds)  # type: ignore[return-value]


class Elevation:
    """DSM and DTM of a domain, opened once, resampled per patch."""

    def __init__(self, dsm: Path, dtm: Path, scale: float) -> None:
        for p in (dsm, dtm):
            if not p.is_file():
                raise InputError(f"{p}: surface model not found")
        self.dsm = rasterio.open(dsm)
        self.dtm = rasterio.open(dtm)
        self.scale = scale

    def close(self) -> None:
        self.dsm.close()
        self.dtm.close()

    def _read(self, src, bounds, shape) -> np.ndarray:
        win = from_bounds(*bounds, transform=src.transform)
        # boundless reads go through a warped VRT (~5 ms each): only when really needed
        inside = (win.col_off >= 0 and win.row_off >= 0 and win.col_off + win.width <= src.width
                  and win.row_off + win.height <= src.height)  # fmt: skip
        if inside:
            return src.read(1, window=win, out_shape=shape, resampling=Resampling.bilinear).astype(
                np.float32
            )
        return src.read(
            1,
            window=win,
            out_shape=shape,
            resampling=Resampling.bilinear,
            boundless=True,
            fill_value=0,
        ).astype(np.float32)

    def patch(self, bounds, shape) -> np.ndarray:
        """uint8 elevation above ground on the patch grid."""
        h = self._read(self.dsm, bounds, shape) - self._read(self.dtm, bounds, shape)
        return np.clip(np.round(h * self.scale), 0, 255).astype(np.uint8)

    def ground(self, x: float, y: float) -> float:
        """Terrain altitude at a point (FLAIR's patch_centroid_z)."""
        return float(next(self.dtm.sample([(x, y)]))[0])


def _each_patch(
    grid: gpd.GeoDataFrame, work: Callable[[object], None], report: BuildReport
) -> BuildReport:
    for row in grid.itertuples():
        try:
            work(row)
            report.written += 1
        except (FlairPipelineError, rasterio.errors.RasterioError, OSError, ValueError) as exc:
            report.skipped.append((row.patch_id, str(exc)))
    return report


def build_aerial_patches(
    grid: gpd.GeoDataFrame,
    ortho_dir: Path,
    dsm: Path,
    dtm: Path,
    layout: DatasetLayout,
    patch_size: int,
    elevation_scale: float,
    compression: str = DEFAULT_COMPRESSION,
) -> BuildReport:
    """Write IMG_<id>.tif (5 bands uint8, `compression`) for every patch of `grid`."""
    codec = compression_options(compression, zlevel=IMG_ZLEVEL)
    report = BuildReport()
    elevation = Elevation(dsm, dtm, elevation_scale)
    try:
        with Mosaic(ortho_dir) as mosaic:
            res = mosaic.res

            def work(row) -> None:
                b = _bounds(row)
                broken = mosaic.broken_touching(b)
                if broken:
                    raise InputError(f"{broken[0]}: unreadable mosaic tile under the patch")
                rgbn, _ = mosaic.read(b)
                if rgbn.shape[1:] != (patch_size, patch_size):
                    raise InputError(f"window read as {rgbn.shape[1:]}, expected {patch_size}²")
                elev = elevation.patch(b, rgbn.shape[1:])
                img = np.concatenate([rgbn, elev[None]], axis=0)
                write_geotiff(
                    layout.img(row.domain, row.zone, row.patch_id),
                    img,
                    from_origin(b[0], b[3], res, res),
                    CRS,
                    descriptions=IMG_BANDS,
                    **codec,
                )

            _each_patch(grid, work, report)
    finally:
        elevation.close()
    return report


def build_label_masks(
    grid: gpd.GeoDataFrame,
    labels_path: Path,
    layout: DatasetLayout,
    patch_size: int,
    res: float,
    compression: str = DEFAULT_COMPRESSION,
) -> BuildReport:
    """Write MSK_<id>.tif (uint8 codes 1..19, FLAIR colours, `compression`) for every patch."""
    codec = compression_options(compression)
    from flair_pipeline.dataset.rasterize import LabelIndex

    index = LabelIndex.from_file(labels_path)
    cmap = colormap()
    report = BuildReport()

    def work(row) -> None:
        b = _bounds(row)
        transform = from_origin(b[0], b[3], res, res)
        msk = index.mask(transform, (patch_size, patch_size))
        write_geotiff(
            layout.msk(row.domain, row.zone, row.patch_id),
            msk,
            transform,
            CRS,
            colormap=cmap,
            descriptions=("label",),
            **codec,
        )

    return _each_patch(grid, work, report)
