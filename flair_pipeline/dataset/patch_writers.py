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
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from rasterio.warp import reproject
from rasterio.windows import Window, from_bounds

from flair_pipeline.dataset.area_groups import area_groups, run_area_groups
from flair_pipeline.dataset.coarse_coverage import exact_check
from flair_pipeline.dataset.generation import new_generation
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.errors import FlairPipelineError, InputError, StorageError
from flair_pipeline.geo.crs import normalize_crs, same_crs
from flair_pipeline.geo.label_mapping import LabelMapping
from flair_pipeline.geo.raster_vrt import Product, build_vrt
from flair_pipeline.geo.surface import SurfaceInput
from flair_pipeline.io import write_geotiff
from flair_pipeline.layout import AERIAL, LABELS, DatasetLayout
from flair_pipeline.nomenclature import colormap
from flair_pipeline.progress import Progress, task
from flair_pipeline.storage import gdal_env, is_remote

IMG_BANDS = ("red", "green", "blue", "nir", "elevation")
#: deflate ZLEVEL / zstd ZSTD_LEVEL of IMG files: level 1 encodes ~5x (deflate, vs 6) and ~3x
#: (zstd, vs 9) faster than GDAL's defaults for ~10 % larger files (bench/build_dataset.py,
#: bench/compression.py); every GeoTIFF reader still opens them.
IMG_ZLEVEL = 1
#: `dataset.compression` values (GDAL COMPRESS) and the default: the FLAIR release's own.
COMPRESSIONS = ("none", "deflate", "zstd", "lzw")
DEFAULT_COMPRESSION = "zstd"
CRS = "EPSG:2154"
#: (left, bottom, right, top) in metres of the patch's CRS.
Bounds = tuple[float, float, float, float]


def compression_options(name: str, *, zlevel: int | None = None) -> dict[str, Any]:
    """GDAL creation options of `dataset.compression` `name` (PREDICTOR=2 unless none).

    `zlevel` sets deflate's ZLEVEL or zstd's ZSTD_LEVEL (IMG: 1, see IMG_ZLEVEL; GDAL's
    default ZSTD_LEVEL 9 writes a demo IMG ~3x slower for ~10 % fewer bytes,
    docs/performance.md).

    Args:
        name: One of ``COMPRESSIONS``.
        zlevel: Deflate or zstd level, or None for GDAL's default.

    Returns:
        ``COMPRESS``, ``PREDICTOR`` and the level, as GDAL creation options.

    Raises:
        ValueError: `name` is not in ``COMPRESSIONS``.
    """
    if name not in COMPRESSIONS:
        raise ValueError(f"dataset.compression {name!r}: expected one of {COMPRESSIONS}")
    if name == "none":
        return {"compress": "none"}
    opts: dict[str, Any] = {"compress": name, "predictor": 2}
    if zlevel is not None and name in ("deflate", "zstd"):
        opts["zlevel" if name == "deflate" else "zstd_level"] = zlevel
    return opts


@dataclass
class BuildReport:
    """Outcome of building one kind of per-patch file for a domain."""

    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (patch id, reason)
    decisions: list[str] = field(default_factory=list)  # e.g. "dsm …: reprojected on the fly"


def _bounds(row: Any) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = row.geometry.bounds
    return (minx, miny, maxx, maxy)


#: A patch whose elevation is void (DSM or DTM nodata, or outside them) over more than this
#: share of its pixels is skipped and reported rather than written with a made-up band.
MAX_VOID_SHARE = 0.5


class _Surface:
    """One surface model opened once; heights on any Lambert-93 grid, NaN where void."""

    def __init__(self, source: Path | SurfaceInput, role: str, target: Any = CRS) -> None:
        src_in = source if isinstance(source, SurfaceInput) else SurfaceInput((Path(source),))
        for p in src_in.files:
            if not is_remote(p) and not Path(p).is_file():
                raise InputError(f"{p}: surface model ({role}) not found")
        self.role, self.name = role, src_in.name
        product = Product(role, list(src_in.files), {role: 1}, crs=src_in.crs)
        vrt = build_vrt([product], [role], lambert93=False, any_dtype=True)
        self._mem: MemoryFile | None = None
        if len(vrt.tiles) == 1 and vrt.tiles[0].crs is not None and src_in.crs is None:
            # one self-describing file: read it directly (a VRT's resampled reads are ~4x
            # slower, bench/build_dataset.py); the checks above still ran on its header
            with gdal_env(src_in.files):
                self.src = rasterio.open(vrt.tiles[0].path)
        else:
            self._mem = MemoryFile(vrt.xml.encode(), ext=".vrt")
            with gdal_env(src_in.files):
                self.src = self._mem.open()
        self._files = src_in.files
        self.nodata = vrt.nodata[0]
        self.target = normalize_crs(target)
        self.lambert93 = same_crs(vrt.crs, self.target)  # on the target's CRS: no warp
        if not self.lambert93 and (self.target is None or vrt.crs is None):
            self.close()
            raise InputError(
                f"{self.name}: {role} CRS {vrt.crs} and the image's {target} cannot be "
                "matched; give both a CRS"
            )
        self.crs = vrt.crs
        self.decision = (
            None
            if self.lambert93
            else f"{role} {self.name}: CRS {vrt.crs} reprojected on the fly to "
            f"{self.target} (bilinear, nodata-aware)"  # str(CRS) is CRS.to_string()
        )

    def close(self) -> None:
        """Close the surface model and its in-memory VRT, if any."""
        self.src.close()
        if self._mem is not None:
            self._mem.close()

    def heights(self, bounds: Bounds, shape: tuple[int, int]) -> np.ndarray:
        """float32 heights on the north-up grid `bounds`/`shape` (target CRS); NaN where void.

        Voids are the source's nodata and everything outside it. The fast path (same CRS, no
        void in the window) is a resampled windowed read; otherwise GDAL's warper, which
        leaves voids out of the bilinear kernel rather than averaging -9999 into heights.

        Args:
            bounds: (left, bottom, right, top) in the target CRS (EPSG:2154).
            shape: (height, width) in pixels.

        Returns:
            float32 (height, width) heights in metres, NaN where void.
        """
        with gdal_env(self._files):  # remote files: GDAL's S3 endpoint, no listing
            return self._heights(bounds, shape)

    def _heights(self, bounds: Bounds, shape: tuple[int, int]) -> np.ndarray:
        """:meth:`heights`, GDAL's options set.

        Args:
            bounds: (left, bottom, right, top) in the target CRS.
            shape: (height, width) in pixels.

        Returns:
            float32 (height, width) heights in metres, NaN where void.
        """
        if self.lambert93:
            win = from_bounds(*bounds, transform=self.src.transform)
            c0, r0 = int(np.floor(win.col_off)) - 1, int(np.floor(win.row_off)) - 1
            c1 = int(np.ceil(win.col_off + win.width)) + 1
            r1 = int(np.ceil(win.row_off + win.height)) + 1
            inside = c0 >= 0 and r0 >= 0 and c1 <= self.src.width and r1 <= self.src.height
            if inside:
                native = self.src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
                if (
                    self.nodata is None
                    or not ((native == self.nodata) | ~np.isfinite(native)).any()
                ):
                    read: np.ndarray = self.src.read(
                        1, window=win, out_shape=shape, resampling=Resampling.bilinear
                    ).astype(np.float32)
                    return read
        out = np.full(shape, np.nan, dtype=np.float32)
        h, w = shape
        reproject(
            rasterio.band(self.src, 1),
            out,
            src_nodata=self.nodata,
            dst_transform=from_origin(
                bounds[0], bounds[3], (bounds[2] - bounds[0]) / w, (bounds[3] - bounds[1]) / h
            ),
            dst_crs=self.target,
            dst_nodata=np.nan,
            resampling=Resampling.bilinear,
        )
        if self.nodata is not None:
            out[out == self.nodata] = np.nan
        return out


class Elevation:
    """DSM and DTM of a domain, opened once, resampled per patch onto its 0.2 m grid.

    Each may be one file or tiles (:class:`SurfaceInput`), in any CRS (reprojected on the
    fly to `crs`, the patches' CRS, EPSG:2154 by default; the fact is in :attr:`decisions`), on any grid (LiDAR HD's half-pixel offset
    included). Voids never become heights: where the DSM or the DTM is void, the height
    above ground is 0 (ground level), and a patch void over more than
    :data:`MAX_VOID_SHARE` of its pixels raises :class:`VoidElevationError`.
    """

    def __init__(
        self, dsm: Path | SurfaceInput, dtm: Path | SurfaceInput, scale: float, crs: Any = CRS
    ) -> None:
        self._dsm = _Surface(dsm, "dsm", crs)
        try:
            self._dtm = _Surface(dtm, "dtm", crs)
        except Exception:
            self._dsm.close()
            raise
        self.dsm, self.dtm = self._dsm.src, self._dtm.src
        self.scale = scale
        self.decisions = [d for d in (self._dsm.decision, self._dtm.decision) if d]

    def close(self) -> None:
        """Close the DSM and DTM datasets."""
        self._dsm.close()
        self._dtm.close()

    def patch(self, bounds: Bounds, shape: tuple[int, int]) -> np.ndarray:
        """uint8 elevation above ground on the patch grid (0 where void).

        Args:
            bounds: The patch's (left, bottom, right, top), EPSG:2154.
            shape: (height, width) in pixels.

        Returns:
            uint8 (height, width): (DSM − DTM) × scale, rounded and clipped to 0..255.

        Raises:
            VoidElevationError: More than MAX_VOID_SHARE of the patch is void.
        """
        h = self._dsm.heights(bounds, shape) - self._dtm.heights(bounds, shape)
        void = np.isnan(h)
        share = np.count_nonzero(void) / void.size
        if share > MAX_VOID_SHARE:
            raise VoidElevationError(
                f"elevation void over {share:.0%} of the patch (DSM/DTM nodata or no coverage "
                f"in {self._dsm.name} / {self._dtm.name}); patch skipped"
            )
        if share:
            h[void] = 0.0
        height: np.ndarray = np.clip(np.round(h * self.scale), 0, 255).astype(np.uint8)
        return height

    def ground(self, x: float, y: float, bounds: Bounds | None = None) -> float:
        """Terrain altitude (m) at a point, FLAIR's patch_centroid_z; never a nodata value.

        The DTM pixel under the point (nearest, as before); when it is void, the mean of the
        valid DTM over `bounds` (the patch).

        Args:
            x: Easting, EPSG:2154 m.
            y: Northing, EPSG:2154 m.
            bounds: The patch's bounds, for the fallback mean, or None.

        Returns:
            The altitude in metres.

        Raises:
            VoidElevationError: Neither the pixel nor the patch has a valid DTM value.
        """
        if self._dtm.lambert93:
            z = float(next(self._dtm.src.sample([(x, y)]))[0])
            valid = np.isfinite(z) and (self._dtm.nodata is None or z != self._dtm.nodata)
        else:  # one 0.2 m pixel centred on the point, reprojected
            z = float(self._dtm.heights((x - 0.1, y - 0.1, x + 0.1, y + 0.1), (1, 1))[0, 0])
            valid = bool(np.isfinite(z))
        if valid:
            return z
        if bounds is not None:
            v = self._dtm.heights(bounds, (32, 32))
            if np.isfinite(v).any():
                return float(np.nanmean(v))
        raise VoidElevationError(f"{self._dtm.name}: DTM void at ({x:.2f}, {y:.2f}) and around it")


class VoidElevationError(InputError):
    """A patch whose DSM/DTM is mostly void: skipped and reported, never filled with nodata."""


def _each_patch(
    grid: gpd.GeoDataFrame,
    work: Callable[[object], None],
    report: BuildReport,
    isolate: bool = True,
    progress: tuple[Progress | None, str] = (None, ""),
) -> BuildReport:
    domains = sorted(set(grid["domain"])) if len(grid) else []
    label = f"{' '.join(domains[:1]) or 'patches'} {progress[1]}".strip()
    with task(progress[0], label, len(grid), "patches") as counter:
        for row in grid.itertuples():
            try:
                work(row)
                report.written += 1
            except StorageError:
                raise  # disk full / I/O error: fail the step, keep the live generation
            except (FlairPipelineError, rasterio.errors.RasterioError, OSError, ValueError) as exc:
                if not isolate:  # the first bad patch fails the step (nothing swapped in)
                    raise InputError(f"patch {row.patch_id}: {exc}") from exc
                report.skipped.append((str(row.patch_id), str(exc)))
            counter.advance()  # a skipped patch is finished too
    return report


@dataclass(frozen=True)
class _ImageJob:
    """What one group of areas needs to write its IMG (picklable: sent to workers)."""

    ortho_dir: Path | Sequence[Product]
    dsm: Path | SurfaceInput
    dtm: Path | SurfaceInput
    stage: Path  # the dataset root written to (the generation's staging root)
    patch_size: int
    elevation_scale: float
    codec: dict[str, Any]
    isolate: bool
    resolution: float | None
    resampling: str | None
    decode_threads: int | None = None
    max_nodata: float | None = None  # the exact nodata check's tolerance; None: no check


class NodataShareError(InputError):
    """A kept patch whose exact nodata share exceeds the tolerance: skipped and named."""


def _images_of(
    job: _ImageJob, grid: gpd.GeoDataFrame, progress: Progress | None = None
) -> BuildReport:
    """Write the IMG of `grid`'s patches under ``job.stage`` (one group of areas).

    Returns:
        Patches written and skipped (with reasons), and the decisions taken.
    """
    report = BuildReport()
    elevation = Elevation(job.dsm, job.dtm, job.elevation_scale)
    report.decisions.extend(elevation.decisions)
    stage, size = DatasetLayout(job.stage), job.patch_size
    try:
        with Mosaic(
            job.ortho_dir,
            resolution=job.resolution,
            resampling=job.resampling,
            decode_threads=job.decode_threads,
        ) as mosaic:
            res = mosaic.res
            report.decisions.extend(mosaic.vrt.decisions)  # rescale, resampling, alpha

            def work(row: Any) -> None:
                b = _bounds(row)
                broken = mosaic.broken_touching(b)
                if broken:
                    raise InputError(f"{broken[0]}: unreadable mosaic tile under the patch")
                rgbn, valid = mosaic.read(b)
                if rgbn.shape[1:] != (size, size):
                    raise InputError(f"window read as {rgbn.shape[1:]}, expected {size}²")
                if job.max_nodata is not None:  # the exact check (the grid's may be coarse)
                    why = exact_check(
                        valid,
                        tolerance=job.max_nodata,
                        estimate=getattr(row, "valid_fraction", None),
                        decimation=int(getattr(row, "coverage_decimation", 1)),
                    )
                    if why is not None:
                        raise NodataShareError(why)
                elev = elevation.patch(b, rgbn.shape[1:])
                img = np.concatenate([rgbn, elev[None]], axis=0)
                write_geotiff(
                    stage.img(row.domain, row.zone, row.patch_id),
                    img,
                    from_origin(b[0], b[3], res, res),
                    CRS,
                    descriptions=IMG_BANDS,
                    **job.codec,
                )

            _each_patch(grid, work, report, job.isolate, (progress, "IMG"))
    finally:
        elevation.close()
    return report


def _by_groups(
    write: Callable[[gpd.GeoDataFrame], BuildReport],
    grid: gpd.GeoDataFrame,
    workers: int,
    kind: str,
    progress: Progress | None,
) -> BuildReport:
    """`write` over `grid`'s area groups (:mod:`~flair_pipeline.dataset.area_groups`), merged.

    Returns:
        The groups' reports as one: written summed, skipped patches in grid order,
        decisions once each in order.
    """
    groups = area_groups(grid, workers)
    domain = str(grid["domain"].iloc[0]) if len(grid) else "patches"
    with task(progress, f"{domain} {kind} ({len(groups)} area groups)", len(grid)) as counter:
        reports = run_area_groups(write, groups, workers, f"{domain}-{kind}")
        counter.advance(len(grid))
    order = {str(p): i for i, p in enumerate(grid["patch_id"])}
    return BuildReport(
        written=sum(r.written for r in reports),
        skipped=sorted((s for r in reports for s in r.skipped), key=lambda s: order[s[0]]),
        decisions=list(dict.fromkeys(d for r in reports for d in r.decisions)),
    )


def build_aerial_patches(
    grid: gpd.GeoDataFrame,
    ortho_dir: Path | Sequence[Product],
    dsm: Path | SurfaceInput,
    dtm: Path | SurfaceInput,
    layout: DatasetLayout,
    patch_size: int,
    elevation_scale: float,
    compression: str = DEFAULT_COMPRESSION,
    isolate: bool = True,
    *,
    resolution: float | None = None,
    resampling: str | None = None,
    decode_threads: int | None = None,
    progress: Progress | None = None,
    workers: int = 1,
    max_nodata: float | None = None,
) -> BuildReport:
    """Write the IMG of every patch of `grid`, as one new generation.

    Write IMG_<id>.tif (5 bands uint8, `compression`) for every patch of `grid`, as one
    new generation.

    ``aerial/<domain>`` is replaced as a whole (patches of an older grid disappear).
    `resolution`, `resampling` and `decode_threads` are the :class:`Mosaic`'s
    (``sampling.resolution``, ``sampling.ortho_resampling``,
    ``sampling.jp2_decode_threads``): a tile at another pixel size is refused before any
    file is written, or resampled (the decision is in the report). Pixels a tile's mask
    or alpha band hides are 0. `progress` counts the patches (``<domain> IMG``). Raises DiskFullError / StorageError (nothing swapped in) on a storage failure; with
    `isolate` false, InputError at the first bad patch (else it is skipped and reported).
    `workers` (``dataset.area_workers``) above 1 writes groups of areas in parallel
    (:mod:`~flair_pipeline.dataset.area_groups`), the same bytes. `max_nodata`
    (``sampling.max_nodata_fraction``), when given, skips and names a patch whose exact
    nodata share (every product, as the grid step's full read) exceeds it: a grid whose
    coverage was read at reduced resolution (:mod:`~flair_pipeline.dataset.coarse_coverage`)
    may keep one; a patch a full read kept passes again.

    Returns:
        Patches written and skipped (with reasons), and the decisions taken.
    """
    codec = compression_options(compression, zlevel=IMG_ZLEVEL)
    # the inputs are refused (a uint16 ortho, a DSM in another CRS…) before a generation is
    # staged, from their headers: nothing is written for a domain whose inputs are wrong
    Elevation(dsm, dtm, elevation_scale).close()
    with Mosaic(ortho_dir, resolution=resolution, resampling=resampling):
        pass
    with _generation(layout, AERIAL.all_domains().rel, grid) as stage:
        job = _ImageJob(
            ortho_dir, dsm, dtm, stage.root, patch_size, elevation_scale, codec, isolate,
            resolution, resampling, decode_threads, max_nodata,
        )  # fmt: skip
        if workers <= 1:
            return _images_of(job, grid, progress)
        return _by_groups(functools.partial(_images_of, job), grid, workers, "IMG", progress)


@dataclass(frozen=True)
class _MaskJob:
    """What one group of areas needs to write its MSK (picklable: sent to workers)."""

    labels: gpd.GeoDataFrame
    labels_path: Path | str  # a URL: read in place
    stage: Path
    patch_size: int
    res: float
    max_unlabelled: float
    codec: dict[str, Any]
    isolate: bool


def _masks_of(
    job: _MaskJob, grid: gpd.GeoDataFrame, progress: Progress | None = None
) -> BuildReport:
    """Write the MSK of `grid`'s patches under ``job.stage`` (one group of areas).

    Returns:
        Patches written and skipped (with reasons).
    """
    from flair_pipeline.dataset.rasterize import LabelIndex

    index = LabelIndex(job.labels, source=str(job.labels_path))
    cmap, stage, size, res = colormap(), DatasetLayout(job.stage), job.patch_size, job.res
    report = BuildReport()

    def work(row: Any) -> None:
        b = _bounds(row)
        transform = from_origin(b[0], b[3], res, res)
        msk = index.mask(transform, (size, size), CRS)
        unlabelled = unlabelled_fraction(msk)
        if unlabelled > job.max_unlabelled:
            raise InputError(
                f"{job.labels_path}: {100 * unlabelled:.2f} % of patch {row.patch_id} is "
                f"unlabelled (tolerance {100 * job.max_unlabelled:g} %): patch skipped; "
                "fill the gap in the labels to keep it"
            )
        write_geotiff(
            stage.msk(row.domain, row.zone, row.patch_id),
            msk,
            transform,
            CRS,
            colormap=cmap,
            descriptions=("label",),
            **job.codec,
        )

    return _each_patch(grid, work, report, job.isolate, (progress, "MSK"))


def build_label_masks(
    grid: gpd.GeoDataFrame,
    labels_path: Path | str,
    layout: DatasetLayout,
    patch_size: int,
    res: float,
    mapping: LabelMapping | None = None,
    max_unlabelled: float = 1.0,
    compression: str = DEFAULT_COMPRESSION,
    isolate: bool = True,
    labels: gpd.GeoDataFrame | None = None,
    layer: str | None = None,
    progress: Progress | None = None,
    workers: int = 1,
) -> BuildReport:
    """Write MSK_<id>.tif (uint8 codes, FLAIR colours, `compression`) for every patch of `grid`.

    Labels in another CRS than the patches' EPSG:2154 are reprojected on the fly (the fact
    is in the report's decisions); `mapping` turns another nomenclature into FLAIR codes.

    Pixels whose centre no polygon covers are written as 0 ("unlabelled", a departure from
    the FLAIR release, which has none; docs/data-format.md), ignored by loss and metric. A
    patch with more than `max_unlabelled` (the sampler's ``sampling.max_nodata_fraction``)
    of its pixels unlabelled is skipped and named in the report, never written.
    ``labels/<domain>`` is replaced as one new generation; DiskFullError / StorageError on
    a storage failure (nothing swapped in); with `isolate` false, InputError at the first
    bad patch instead of skipping it. `labels`, when given, is `labels_path` already read
    by :func:`~flair_pipeline.dataset.rasterize.read_labels` (with `layer` and `mapping`);
    `layer` names the layer of a multi-layer label file (the domain's ``labels_layer``).
    `progress` counts the patches (``<domain> MSK``). `workers` (``dataset.area_workers``)
    above 1 writes groups of areas in parallel (:mod:`~flair_pipeline.dataset.area_groups`),
    the same bytes.

    Returns:
        Patches written and skipped (with reasons), and the decisions taken.
    """
    from flair_pipeline.dataset.rasterize import read_labels

    codec = compression_options(compression)
    if labels is None:
        labels = read_labels(labels_path, layer, mapping)
    decisions = []
    if labels.attrs.get("layer_decision"):  # several layers, `labels` read by default
        decisions.append(str(labels.attrs["layer_decision"]))
    crs = normalize_crs(labels.crs)
    if not same_crs(crs, CRS):
        decisions.append(
            f"labels {labels_path}: CRS {crs.to_string() if crs else None} "
            "reprojected on the fly to EPSG:2154"
        )
    with _generation(layout, LABELS.all_domains().rel, grid) as stage:
        job = _MaskJob(
            labels, labels_path, stage.root, patch_size, res, max_unlabelled, codec, isolate
        )
        if workers <= 1:
            report = _masks_of(job, grid, progress)
        else:
            report = _by_groups(functools.partial(_masks_of, job), grid, workers, "MSK", progress)
    report.decisions[:0] = decisions
    return report


def unlabelled_fraction(msk: np.ndarray) -> float:
    """Share of pixels holding 0 (no polygon covers their centre) in a MSK array.

    Args:
        msk: A MSK array of FLAIR codes.

    Returns:
        The share in 0..1 (0 for an empty array).
    """
    return float(np.count_nonzero(msk == 0)) / max(msk.size, 1)


@contextlib.contextmanager
def _generation(
    layout: DatasetLayout, kind: str, grid: gpd.GeoDataFrame
) -> Iterator[DatasetLayout]:
    """A staging layout for the grid's domain; swapped in as ``<kind>/<domain>`` on success.

    Args:
        layout: The live dataset layout.
        kind: ``aerial`` or ``labels``.
        grid: The patch grid written.

    Yields:
        The layout to write to: a staging one for a one-domain grid, else `layout` itself.
    """
    domains = sorted(set(grid["domain"])) if len(grid) else []
    if len(domains) != 1:  # an empty grid or several domains: write in place
        yield layout
        return
    with new_generation(layout.root, kind, domains[0]) as stage:
        yield DatasetLayout(stage)
