"""Per-patch products: IMG (R, G, B, NIR, elevation) and MSK (label codes).

Each patch is read, computed and written on its own, so one bad patch (a corrupt tile under
it, say) is reported and skipped while the rest of the domain is built (eo-learn's per-item
failure isolation) — but a storage failure (full disk, I/O error: :class:`StorageError`)
is never a skipped patch, it fails the whole build. Files are written under a temporary
name, checked and renamed (:mod:`flair_pipeline.io`), and a domain's IMG (or MSK) folder
is built aside and swapped in as one generation (:mod:`flair_pipeline.dataset.generation`):
a kill leaves the old patches or the new ones, never a mix. Elevation is DSM − DTM resampled bilinearly onto the patch's 0.2 m grid, scaled
by ``sampling.elevation_scale`` (default 5: one grey level per 0.2 m, 51 m at 255) and
clipped to uint8 — FLAIR's own encoding of the elevation band.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import from_bounds

from flair_pipeline.dataset.generation import new_generation
from flair_pipeline.dataset.layout import DatasetLayout
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.errors import FlairPipelineError, InputError, StorageError
from flair_pipeline.io import write_geotiff
from flair_pipeline.nomenclature import colormap

IMG_BANDS = ("red", "green", "blue", "nir", "elevation")
#: deflate level of IMG files: level 1 encodes ~5x faster than GDAL's default 6 for files
#: ~10 % larger (bench/build_dataset.py); every GeoTIFF reader still opens them.
IMG_ZLEVEL = 1
CRS = "EPSG:2154"


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
        except StorageError:
            raise  # disk full / I/O error: fail the step, keep the live generation
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
) -> BuildReport:
    """Write IMG_<id>.tif (5 bands uint8) for every patch of `grid`, as one new generation.

    ``aerial/<domain>`` is replaced as a whole (patches of an older grid disappear).
    Raises DiskFullError / StorageError (nothing swapped in) on a storage failure.
    """
    report = BuildReport()
    elevation = Elevation(dsm, dtm, elevation_scale)
    try:
        with Mosaic(ortho_dir) as mosaic, _generation(layout, "aerial", grid) as stage:
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
                    stage.img(row.domain, row.zone, row.patch_id),
                    img,
                    from_origin(b[0], b[3], res, res),
                    CRS,
                    descriptions=IMG_BANDS,
                    zlevel=IMG_ZLEVEL,
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
    max_unlabelled: float = 1.0,
) -> BuildReport:
    """Write MSK_<id>.tif (uint8 codes, FLAIR colours) for every patch of `grid`.

    Pixels whose centre no polygon covers are written as 0 ("unlabelled", a departure from
    the FLAIR release, which has none; docs/data-format.md), ignored by loss and metric. A
    patch with more than `max_unlabelled` (the sampler's ``sampling.max_nodata_fraction``)
    of its pixels unlabelled is skipped and named in the report, never written.
    ``labels/<domain>`` is replaced as one new generation; DiskFullError / StorageError on
    a storage failure (nothing swapped in).
    """
    from flair_pipeline.dataset.rasterize import LabelIndex

    index = LabelIndex.from_file(labels_path)
    cmap = colormap()
    report = BuildReport()
    with _generation(layout, "labels", grid) as stage:

        def work(row) -> None:
            b = _bounds(row)
            transform = from_origin(b[0], b[3], res, res)
            msk = index.mask(transform, (patch_size, patch_size))
            unlabelled = unlabelled_fraction(msk)
            if unlabelled > max_unlabelled:
                raise InputError(
                    f"{labels_path}: {100 * unlabelled:.2f} % of patch {row.patch_id} is "
                    f"unlabelled (tolerance {100 * max_unlabelled:g} %): patch skipped; "
                    "fill the gap in the labels to keep it"
                )
            write_geotiff(
                stage.msk(row.domain, row.zone, row.patch_id),
                msk,
                transform,
                CRS,
                colormap=cmap,
                descriptions=("label",),
            )

        _each_patch(grid, work, report)
    return report


def unlabelled_fraction(msk: np.ndarray) -> float:
    """Share of pixels holding 0 (no polygon covers their centre) in a MSK array."""
    return float(np.count_nonzero(msk == 0)) / max(msk.size, 1)


@contextlib.contextmanager
def _generation(
    layout: DatasetLayout, kind: str, grid: gpd.GeoDataFrame
) -> Iterator[DatasetLayout]:
    """A staging layout for the grid's domain; swapped in as ``<kind>/<domain>`` on success."""
    domains = sorted(set(grid["domain"])) if len(grid) else []
    if len(domains) != 1:  # an empty grid or several domains: write in place
        yield layout
        return
    with new_generation(layout.root, kind, domains[0]) as stage:
        yield DatasetLayout(stage)
