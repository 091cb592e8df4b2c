"""Build one domain of the dataset: its sources record, patch grid, IMG, MSK and metadata.

One plain function per step, each returning a frozen report (:mod:`flair_pipeline.reports`),
and :func:`build_domain_patches` running them in order. The Dagster assets
(``defs/assets/sources.py``, ``defs/assets/dataset.py``) call one step each and the CLI's
``flair-pipeline build-domain`` calls :func:`build_domain_patches`, so both write the same
bytes. Per-patch failures are isolated (a corrupt tile under a patch skips that patch and
names it, :mod:`flair_pipeline.dataset.patches`); a step's check (``has_patches``,
``img_format``, ``msk_codes``, ``img_msk_pairs``) lists its problems in the report, and
:func:`build_domain_patches` stops at the first failed check as Dagster's blocking checks do.
Every file is in EPSG:2154 (Lambert-93) on the 0.2 m grid of ``sampling.resolution``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from fsspec.implementations.local import LocalFileSystem

from flair_pipeline.config import PipelineConfig
from flair_pipeline.dataset import metadata as md
from flair_pipeline.dataset.generation import recover
from flair_pipeline.dataset.layout import DatasetLayout, RawLayout
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.patches import (
    BuildReport,
    Elevation,
    build_aerial_patches,
    build_label_masks,
    unlabelled_fraction,
)
from flair_pipeline.dataset.sampling import read_patch_grid, sample_patches, write_patch_grid
from flair_pipeline.domains import DomainId
from flair_pipeline.errors import InputError, StageCheckError
from flair_pipeline.io import remove_stale_temps
from flair_pipeline.reports import JSON, MetadataKind, StageReport
from flair_pipeline.sources import domain_inputs
from flair_pipeline.sources.domain_spec import DomainInputs, resolve

# --- sources -------------------------------------------------------------------------------


def domain_input_files(raw: RawLayout, domain: str) -> list[Path]:
    """The files a domain needs, in fingerprint order.

    Same listing as the sensor's (:mod:`flair_pipeline.sources.domain_inputs`), so the
    fingerprint recorded here equals the one in the sensor's run keys.

    Args:
        raw: The raw data root.
        domain: A domain id such as ``D006_2020``.

    Returns:
        Absolute paths of every input file of the domain.

    Raises:
        DomainIdError: `domain` is not a domain id.
        InputError: The domain folder or a required input is missing (named).
    """
    DomainId.parse(domain)
    folder = raw.domain(domain)
    if not folder.is_dir():
        raise InputError(f"{folder}: domain folder not found")
    scan = domain_inputs.scan_domain(LocalFileSystem(), os.path.abspath(raw.root), domain)
    if scan.missing:
        first = scan.missing[0]
        if first == "ortho/*.tif":
            raise InputError(f"{raw.ortho_dir(domain)}: no orthophoto tiles (*.tif)")
        raise InputError(f"{folder / first}: required input missing")
    return [Path(f) for f in scan.files]


def fingerprint(files: list[Path], root: Path) -> str:
    """sha256 over relative names and contents: changes iff an input changes.

    Args:
        files: The domain's input files (:func:`domain_input_files`).
        root: The domain folder the names are taken relative to.

    Returns:
        The hex digest (64 characters).
    """
    return domain_inputs.fingerprint(
        LocalFileSystem(), [str(f) for f in files], os.path.abspath(root)
    )


@dataclass(frozen=True)
class SourcesReport(StageReport):
    """A domain's raw inputs, checked and fingerprinted (``metadata/sources/<domain>.json``)."""

    domain: str
    fingerprint: str
    ortho_tiles: int
    inputs: str  # "domain.yaml" or "raw layout"
    label_polygons: int
    repaired_geometries: int
    input_bytes: int
    camera: str
    flight_date: str

    def as_metadata(self) -> dict[str, JSON]:
        """Fingerprint, tile and polygon counts, input size (MB), camera and flight date."""
        return {
            "fingerprint": self.fingerprint,
            "ortho_tiles": self.ortho_tiles,
            "inputs": self.inputs,
            "label_polygons": self.label_polygons,
            "repaired_geometries": self.repaired_geometries,
            "input_mb": round(self.input_bytes / 1e6, 2),
            "camera": self.camera,
            "flight_date": self.flight_date,
        }


def record_domain_sources(domain: str, raw: RawLayout, dataset: DatasetLayout) -> SourcesReport:
    """Check a domain's raw inputs (presence, domain.json, label codes) and record them.

    Writes ``metadata/sources/<domain>.json``: the fingerprint, the input files (relative),
    their total size in bytes and the validated domain facts.

    Args:
        domain: A domain id such as ``D006_2020``.
        raw: The raw data root.
        dataset: The dataset root written to.

    Returns:
        The :class:`SourcesReport`.

    Raises:
        InputError: A missing input, an invalid domain.json or bad label codes (named).
    """
    from flair_pipeline.dataset.rasterize import read_labels

    files = domain_input_files(raw, domain)
    inputs = resolve(raw.domain(domain))  # validates domain.json (or the spec's facts)
    labels = read_labels(inputs.labels, mapping=inputs.mapping)
    info = inputs.info
    fp = fingerprint(files, raw.domain(domain))
    record = {
        "domain": domain,
        "fingerprint": fp,
        "files": [str(f.relative_to(raw.domain(domain))) for f in files],
        "bytes": sum(f.stat().st_size for f in files),
        "info": info,
    }
    md.write_json(record, dataset.sources_record(domain))
    ortho = inputs.ortho
    tiles = len(files) - 4 if isinstance(ortho, Path) else sum(len(p.files) for p in ortho)
    return SourcesReport(
        domain=domain,
        fingerprint=fp,
        ortho_tiles=tiles,
        inputs="domain.yaml" if inputs.spec else "raw layout",
        label_polygons=len(labels),
        repaired_geometries=int(labels.attrs.get("repaired", 0)),
        input_bytes=int(record["bytes"]),  # type: ignore[call-overload]
        camera=str(info.get("camera", "")),
        flight_date=str(info.get("date", "")),
    )


# --- patch grid ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GridReport(StageReport):
    """The patch grid of a domain (``metadata/patch_grid/<domain>.gpkg``); check has_patches."""

    metadata_kinds: ClassVar[Mapping[str, MetadataKind]] = {"path": "path"}

    domain: str
    path: str
    patches: int
    zones: int
    candidates: int
    rejected: dict[str, int]
    strategy: str
    unreadable_tiles: tuple[str, ...] = ()
    skipped_patches: tuple[str, ...] = ()  # "<patch id>: <why>", first 50
    warnings: tuple[str, ...] = ()

    @property
    def problems(self) -> tuple[str, ...]:  # type: ignore[override]
        """``has_patches``: a grid without any patch."""
        return () if self.patches else (f"{self.domain}: no patch kept",)

    def as_metadata(self) -> dict[str, JSON]:
        """Patch, zone and candidate counts, rejections by reason, strategy, lost tiles."""
        return {
            "patches": self.patches,
            "zones": self.zones,
            "candidates": self.candidates,
            "rejected": dict(self.rejected),
            "strategy": self.strategy,
            "unreadable_tiles": list(self.unreadable_tiles),
            "skipped_patches": list(self.skipped_patches),
            "path": self.path,
        }

    def check_metadata(self) -> dict[str, JSON]:
        """``{"patches": n}``."""
        return {"patches": self.patches}


def sample_domain_grid(
    domain: str,
    raw: RawLayout,
    dataset: DatasetLayout,
    cfg: PipelineConfig,
    *,
    skip_bad_patches: bool = True,
) -> GridReport:
    """Sample a domain's patch footprints and write its patch grid (GeoPackage, EPSG:2154).

    Args:
        domain: A domain id such as ``D006_2020``.
        raw: The raw data root.
        dataset: The dataset root written to.
        cfg: The configuration (``sampling`` is used).
        skip_bad_patches: Skip the candidates under an unreadable ortho tile and name
            them (default); false: an unreadable tile fails the step (no grid written).

    Returns:
        The :class:`GridReport`; one warning per unreadable ortho tile, naming the patches
        it costs.

    Raises:
        InputError: A missing or unusable input (named); with `skip_bad_patches` false,
            an unreadable ortho tile.
    """
    from flair_pipeline.dataset.rasterize import read_labels

    path = dataset.patch_grid(domain)
    remove_stale_temps(path)
    inputs = resolve(raw.domain(domain))
    labels = read_labels(inputs.labels, mapping=inputs.mapping)
    with Mosaic(inputs.ortho) as mosaic:
        grid, report = sample_patches(domain, mosaic, labels, cfg.sampling)
        broken = [str(p) for p in mosaic.broken]
    warnings = []
    for tile in broken:  # a truncated download: name it and what it costs (issue 15)
        lost = [e.split(": ", 1)[0] for e in report.unreadable if tile in e]
        warnings.append(
            f"{tile}: unreadable tile, {len(lost)} patch(es) lost "
            f"({', '.join(lost[:10])}{' …' if len(lost) > 10 else ''}); replace the file"
        )
    if warnings and not skip_bad_patches:
        raise InputError(warnings[0])
    write_patch_grid(grid, path)
    return GridReport(
        domain=domain,
        path=str(path),
        patches=len(grid),
        zones=int(grid["zone"].nunique()) if len(grid) else 0,
        candidates=report.candidates,
        rejected=dict(report.rejected),
        strategy=cfg.sampling.strategy,
        unreadable_tiles=tuple(broken),
        skipped_patches=tuple(report.unreadable[:50]),
        warnings=tuple(warnings),
    )


# --- IMG and MSK ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PatchFilesReport(StageReport):
    """IMG or MSK files of a domain: written, skipped (with why), decisions; the check's list."""

    written: int
    skipped: tuple[tuple[str, str], ...]  # (patch id, reason)
    decisions: tuple[str, ...]
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """No problem, and at least one file written."""
        return not self.problems and self.written > 0

    def as_metadata(self) -> dict[str, JSON]:
        """Written and skipped counts, the first 50 skipped patches, decisions."""
        return BuildReport(self.written, list(self.skipped), list(self.decisions)).as_metadata()


def _files_report(report: BuildReport, problems: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "written": report.written,
        "skipped": tuple(report.skipped),
        "decisions": tuple(report.decisions),
        "problems": tuple(problems),
        "warnings": tuple(f"skipped patch {p}: {why}" for p, why in report.skipped),
        **extra,
    }


@dataclass(frozen=True)
class ImagesReport(PatchFilesReport):
    """IMG files of a domain; check img_format (5 bands, patch_size², uint8, EPSG:2154)."""

    def check_metadata(self) -> dict[str, JSON]:
        """The first 20 problems and how many files were checked."""
        return {"problems": list(self.problems[:20]), "checked": self.written}


def build_domain_images(
    domain: str,
    raw: RawLayout,
    dataset: DatasetLayout,
    cfg: PipelineConfig,
    *,
    skip_bad_patches: bool = True,
) -> ImagesReport:
    """Write ``IMG_<id>.tif`` (5 bands uint8: R, G, B, NIR, elevation) of every grid patch.

    Reads the patch grid :func:`sample_domain_grid` wrote; ``aerial/<domain>`` is replaced
    as one generation. Each written file is then checked (band count, size, dtype, CRS).

    Args:
        domain: A domain id such as ``D006_2020``.
        raw: The raw data root.
        dataset: The dataset root (read: patch grid; written: ``aerial/<domain>``).
        cfg: The configuration (``sampling``, ``dataset.compression``).
        skip_bad_patches: Skip a patch that cannot be built (a void DSM under it, an
            unreadable tile) and name it (default); false: it fails the step.

    Returns:
        The :class:`ImagesReport` (one warning per skipped patch).

    Raises:
        InputError: A missing or unusable input (named); with `skip_bad_patches` false,
            the first bad patch (nothing swapped in).
        StorageError: A file could not be written (nothing swapped in).
    """
    grid = read_patch_grid(dataset.patch_grid(domain))
    inputs = resolve(raw.domain(domain))
    size = cfg.sampling.patch_size
    report = build_aerial_patches(
        grid, inputs.ortho, inputs.dsm, inputs.dtm, dataset, size,
        cfg.sampling.elevation_scale, cfg.dataset.compression, isolate=skip_bad_patches,
    )  # fmt: skip
    skipped = {p for p, _ in report.skipped}
    bad = []
    for row in grid.itertuples():
        if row.patch_id in skipped:
            continue
        path = dataset.img(row.domain, row.zone, row.patch_id)
        with rasterio.open(path) as src:
            if (src.count, src.width, src.height) != (5, size, size) or src.dtypes[0] != "uint8":
                bad.append(
                    f"{path.name}: {src.count} bands {src.width}x{src.height} {src.dtypes[0]}"
                )
            elif src.crs is None or src.crs.to_epsg() != 2154:
                bad.append(f"{path.name}: CRS {src.crs}")
    return ImagesReport(**_files_report(report, bad))


@dataclass(frozen=True)
class MasksReport(PatchFilesReport):
    """MSK files of a domain and their pixel counts; check msk_codes (codes 0..19, tolerance)."""

    pixels_per_code: dict[str, int] = field(default_factory=dict)
    unlabelled_pixels: int = 0
    unlabelled_tolerance: float = 0.0

    def as_metadata(self) -> dict[str, JSON]:
        """The file counts, pixels per FLAIR code (1..19), unlabelled pixels and tolerance."""
        return {
            **super().as_metadata(),
            "pixels_per_code": dict(self.pixels_per_code),
            "unlabelled_pixels": self.unlabelled_pixels,
            "unlabelled_tolerance": self.unlabelled_tolerance,
        }


def build_domain_masks(
    domain: str,
    raw: RawLayout,
    dataset: DatasetLayout,
    cfg: PipelineConfig,
    *,
    skip_bad_patches: bool = True,
) -> MasksReport:
    """Write ``MSK_<id>.tif`` (uint8 FLAIR codes, 0 = unlabelled) of every grid patch.

    Reads the patch grid; ``labels/<domain>`` is replaced as one generation. Each written
    mask is then checked: codes within 0..19 and at most ``sampling.max_nodata_fraction``
    unlabelled (the sampler's tolerance).

    Args:
        domain: A domain id such as ``D006_2020``.
        raw: The raw data root.
        dataset: The dataset root (read: patch grid; written: ``labels/<domain>``).
        cfg: The configuration (``sampling``, ``dataset.compression``).
        skip_bad_patches: Skip a patch over the unlabelled tolerance and name it
            (default); false: it fails the step.

    Returns:
        The :class:`MasksReport` (one warning per skipped patch).

    Raises:
        InputError: A missing or unusable label file (named); with `skip_bad_patches`
            false, the first bad patch (nothing swapped in).
        StorageError: A file could not be written (nothing swapped in).
    """
    grid = read_patch_grid(dataset.patch_grid(domain))
    inputs = resolve(raw.domain(domain))
    tolerance = cfg.sampling.max_nodata_fraction
    report = build_label_masks(
        grid, inputs.labels, dataset, cfg.sampling.patch_size, cfg.sampling.resolution,
        mapping=inputs.mapping, max_unlabelled=tolerance, compression=cfg.dataset.compression,
        isolate=skip_bad_patches,
    )  # fmt: skip
    skipped = {p for p, _ in report.skipped}
    bad, counts = [], np.zeros(20, np.int64)
    for row in grid.itertuples():
        if row.patch_id in skipped:
            continue
        with rasterio.open(dataset.msk(row.domain, row.zone, row.patch_id)) as src:
            m = src.read(1)
        counts += np.bincount(m.ravel(), minlength=20)[:20]
        # 0 = unlabelled, allowed up to the sampler's tolerance (the same number)
        unknown = sorted(set(np.unique(m).tolist()) - set(range(0, 20)))
        if unknown:
            bad.append(f"MSK_{row.patch_id}: codes {unknown}")
        elif unlabelled_fraction(m) > tolerance:
            bad.append(f"MSK_{row.patch_id}: {100 * unlabelled_fraction(m):.2f} % unlabelled")
    return MasksReport(
        **_files_report(report, bad),
        pixels_per_code={str(c): int(counts[c]) for c in range(1, 20) if counts[c]},
        unlabelled_pixels=int(counts[0]),
        unlabelled_tolerance=tolerance,
    )


# --- metadata ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetadataReport(StageReport):
    """A domain's aerial metadata and class shares (``metadata/domains/<domain>.json``);
    check img_msk_pairs (every kept IMG has a MSK on the same grid)."""

    metadata_kinds: ClassVar[Mapping[str, MetadataKind]] = {
        "class_shares": "md", "class_chart": "md", "preview": "md",
    }  # fmt: skip

    domain: str
    path: str
    patches: int
    zones: int
    skipped: tuple[str, ...]  # "<patch id>: no IMG|MSK"
    class_shares: dict[str, float]  # % of each of the 13 training classes
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: up to 3 (IMG 5×H×W uint8, MSK H×W uint8, title) for the preview figure
    previews: tuple[tuple[np.ndarray, np.ndarray, str], ...] = field(
        default=(), compare=False, repr=False
    )

    @property
    def passed(self) -> bool:
        """No IMG/MSK pair on different grids, and at least one pair."""
        return not self.problems and self.patches > 0

    def as_metadata(self) -> dict[str, JSON]:
        """Counts, the class-share table and chart, a preview of 3 patches (Markdown)."""
        from flair_pipeline.plots import class_share_chart, markdown_image, patch_preview

        shares = self.class_shares
        table = pd.DataFrame(
            {"class": list(shares), "share_%": [round(v, 2) for v in shares.values()]}
        )
        meta: dict[str, JSON] = {
            "patches": self.patches,
            "skipped": list(self.skipped[:50]),
            "zones": self.zones,
            "class_shares": table.to_markdown(index=False),
            "class_chart": markdown_image(class_share_chart(shares, self.domain), "classes"),
        }
        if self.previews:
            png = patch_preview(*zip(*self.previews, strict=True))
            meta["preview"] = markdown_image(png, "preview")
        return meta


def _label_decisions(inputs: DomainInputs) -> list[str]:
    """ "labels …: CRS … reprojected on the fly" when the label file is not in Lambert-93."""
    from flair_pipeline.dataset.crs import is_lambert93
    from flair_pipeline.dataset.label_mapping import label_crs

    crs = label_crs(inputs.labels)
    if crs is None or is_lambert93(crs):
        return []
    name = rasterio.crs.CRS.from_user_input(crs).to_string()
    return [f"labels {inputs.labels}: CRS {name} reprojected on the fly to EPSG:2154"]


def write_domain_metadata(
    domain: str, raw: RawLayout, dataset: DatasetLayout, cfg: PipelineConfig
) -> MetadataReport:
    """Pair each grid patch's IMG and MSK and write the domain's metadata JSON.

    First finishes or undoes an interrupted generation swap of ``aerial/<domain>`` and
    ``labels/<domain>`` (each action is a warning). The JSON holds FLAIR's aerial metadata
    per kept patch (centroid x/y in m, EPSG:2154; z = terrain altitude in m; camera, date,
    time), the class shares (%), the problems, the skipped patches and the decisions.

    Args:
        domain: A domain id such as ``D006_2020``.
        raw: The raw data root.
        dataset: The dataset root (read: grid, IMG, MSK; written: the domain's JSON).
        cfg: The configuration (``sampling.elevation_scale``).

    Returns:
        The :class:`MetadataReport`.

    Raises:
        InputError: A missing or unusable input (named), a DTM void under a centroid.
    """
    grid = read_patch_grid(dataset.patch_grid(domain))
    warnings: list[str] = []
    for kind in ("aerial", "labels"):  # a swap killed half-way: back to one generation
        warnings += recover(dataset.root, kind, domain)
    remove_stale_temps(dataset.domain_metadata(domain))
    inputs = resolve(raw.domain(domain))
    pairs, problems, missing, previews = [], [], [], []
    for row in grid.itertuples():
        img, msk = (
            dataset.img(row.domain, row.zone, row.patch_id),
            dataset.msk(row.domain, row.zone, row.patch_id),
        )
        if not (img.is_file() and msk.is_file()):  # skipped upstream and reported there
            missing.append(f"{row.patch_id}: no {'IMG' if not img.is_file() else 'MSK'}")
            continue
        with rasterio.open(img) as a, rasterio.open(msk) as b:
            if (a.transform, a.shape, a.crs) != (b.transform, b.shape, b.crs):
                problems.append(f"{row.patch_id}: IMG and MSK grids differ")
                continue
            if len(previews) < 3:
                previews.append((a.read(), b.read(1), f"IMG_{row.patch_id} ({row.zone})"))
        pairs.append(row.patch_id)
    kept: gpd.GeoDataFrame = grid[grid["patch_id"].isin(pairs)]
    elevation = Elevation(inputs.dsm, inputs.dtm, cfg.sampling.elevation_scale)
    try:
        ground = {
            r.patch_id: elevation.ground(r.x_centroid, r.y_centroid, r.geometry.bounds)
            for r in kept.itertuples()
        }
    finally:
        elevation.close()
    shares = md.class_distribution(kept)
    path = md.write_json(
        {
            "domain": domain,
            "patches": md.aerial_metadata(kept, inputs.info, ground),
            "class_distribution": shares,
            "problems": problems,
            "skipped": missing,
            "decisions": [*elevation.decisions, *_label_decisions(inputs)],
        },
        dataset.domain_metadata(domain),
    )
    return MetadataReport(
        domain=domain,
        path=str(path),
        patches=len(kept),
        zones=int(kept["zone"].nunique()) if len(kept) else 0,
        skipped=tuple(missing),
        class_shares=shares,
        problems=tuple(problems),
        warnings=tuple(warnings),
        previews=tuple(previews),
    )


# --- the whole domain ----------------------------------------------------------------------


@dataclass(frozen=True)
class DomainBuildReport(StageReport):
    """Every step of one domain's build, in order."""

    sources: SourcesReport
    grid: GridReport
    images: ImagesReport
    masks: MasksReport
    metadata: MetadataReport

    @property
    def warnings(self) -> tuple[str, ...]:  # type: ignore[override]
        """Every step's warnings, in build order."""
        return tuple(w for step in self.steps().values() for w in step.warnings)

    def steps(self) -> dict[str, StageReport]:
        """The step reports keyed by their Dagster asset name."""
        return {
            "domain_sources": self.sources,
            "patch_grid": self.grid,
            "aerial_patches": self.images,
            "label_masks": self.masks,
            "dataset_metadata": self.metadata,
        }

    def as_metadata(self) -> dict[str, JSON]:
        """Every step's figures by asset name; the metadata step's as numbers, no figures."""
        out: dict[str, JSON] = {
            n: s.as_metadata() for n, s in self.steps().items() if n != "dataset_metadata"
        }
        m = self.metadata
        out["dataset_metadata"] = {
            "patches": m.patches,
            "skipped": list(m.skipped[:50]),
            "zones": m.zones,
            "class_shares": dict(m.class_shares),
            "problems": list(m.problems),
            "path": m.path,
        }
        return out


#: The check each step runs, as Dagster's blocking asset checks name them.
CHECKS = {
    "patch_grid": "has_patches",
    "aerial_patches": "img_format",
    "label_masks": "msk_codes",
    "dataset_metadata": "img_msk_pairs",
}


def _require(domain: str, step: str, report: StageReport) -> None:
    if not report.passed:
        shown = "; ".join(report.problems[:3]) or "nothing written"
        more = f" and {len(report.problems) - 3} more" if len(report.problems) > 3 else ""
        raise StageCheckError(f"{domain}: {step} check {CHECKS[step]} failed ({shown}{more})")


def build_domain_patches(
    domain: str,
    raw: RawLayout,
    dataset: DatasetLayout,
    cfg: PipelineConfig,
    *,
    skip_bad_patches: bool = True,
) -> DomainBuildReport:
    """Build one domain as the dataset assets do: sources record, grid, IMG, MSK, metadata.

    The steps run in the assets' order; a failed check stops the build before the next
    step, as a blocking asset check stops its downstream assets. The files written are
    byte-identical to the assets' (tests/dataset/test_build.py).

    Args:
        domain: A domain id such as ``D006_2020``.
        raw: The raw data root (``domains/<domain>/``).
        dataset: The dataset root written to (FLAIR release layout).
        cfg: The configuration (``sampling``, ``dataset``).
        skip_bad_patches: Per-patch failure isolation (eo-learn's, rslearn's): a patch
            that cannot be built is skipped and named in its step's report (default, as
            the assets do); false: the first one stops the build with its reason.

    Returns:
        The :class:`DomainBuildReport` of every step.

    Raises:
        InputError: A missing or unusable input (named); with `skip_bad_patches` false,
            the first bad patch or unreadable tile.
        StageCheckError: A step's check failed (its first problems named).
        StorageError: A file could not be written.
    """
    sources = record_domain_sources(domain, raw, dataset)
    isolate = {"skip_bad_patches": skip_bad_patches}
    grid = sample_domain_grid(domain, raw, dataset, cfg, **isolate)
    _require(domain, "patch_grid", grid)
    images = build_domain_images(domain, raw, dataset, cfg, **isolate)
    _require(domain, "aerial_patches", images)
    masks = build_domain_masks(domain, raw, dataset, cfg, **isolate)
    _require(domain, "label_masks", masks)
    metadata = write_domain_metadata(domain, raw, dataset, cfg)
    _require(domain, "dataset_metadata", metadata)
    return DomainBuildReport(sources, grid, images, masks, metadata)
