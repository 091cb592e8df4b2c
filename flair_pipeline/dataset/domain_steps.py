"""The per-patch steps of a domain's build: patch grid, IMG and MSK, each with its check.

Steps of :mod:`flair_pipeline.dataset.build`, one function per asset (``patch_grid``,
``aerial_patches``, ``label_masks``). Per-patch failures are isolated by default (a
corrupt tile or a void DSM under a patch skips that patch and names it,
:mod:`flair_pipeline.dataset.patch_writers`); ``skip_bad_patches=False`` makes the first one fail
the step. Every file is in EPSG:2154 (Lambert-93) on the grid of ``sampling.resolution``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import rasterio

from flair_pipeline.dataset.areas import read_areas_layer
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.domain_lock import holds
from flair_pipeline.dataset.mosaic import Mosaic, mosaic_options
from flair_pipeline.dataset.patch_writers import (
    BuildReport,
    build_aerial_patches,
    build_label_masks,
    unlabelled_fraction,
)
from flair_pipeline.dataset.sampling import sample_patches, write_patch_grid
from flair_pipeline.errors import InputError
from flair_pipeline.io import remove_stale_temps
from flair_pipeline.progress import Progress
from flair_pipeline.reports import JSON, MetadataKind, StageReport


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
    decisions: tuple[str, ...] = ()  # e.g. an ortho resampled to sampling.resolution
    areas: dict[str, JSON] = field(default_factory=dict)  # AreaChoice.as_metadata()
    candidates_read: int = 0  # read at full resolution (the others lack every product's tiles)
    #: ``sampling.coverage_read`` resolved (full, overview) and the candidates it decided
    #: at reduced resolution (dataset/coarse_coverage.py)
    coverage_read: str = "full"
    candidates_coarse: int = 0

    @property
    def problems(self) -> tuple[str, ...]:  # type: ignore[override]
        """``has_patches``: a grid without any patch."""
        return () if self.patches else (f"{self.domain}: no patch kept",)

    def as_metadata(self) -> dict[str, JSON]:
        """Patch, zone and candidate counts, rejections by reason, strategy, lost tiles.

        Returns:
            A JSON-serialisable dict: ``patches``, ``zones``, ``candidates``,
            ``candidates_read`` (read at full resolution; ints), ``coverage_read``
            (``full`` or ``overview``) and ``candidates_coarse`` (decided at reduced
            resolution, int),
            ``rejected`` (reason -> count), ``strategy``, ``unreadable_tiles``,
            ``skipped_patches`` and ``decisions`` (lists of str), ``areas`` (how the areas
            were chosen and which, :meth:`~flair_pipeline.dataset.areas.AreaChoice.as_metadata`)
            and ``path`` (the grid).
        """
        return {
            "patches": self.patches,
            "zones": self.zones,
            "candidates": self.candidates,
            "candidates_read": self.candidates_read,
            "coverage_read": self.coverage_read,
            "candidates_coarse": self.candidates_coarse,
            "rejected": dict(self.rejected),
            "strategy": self.strategy,
            "unreadable_tiles": list(self.unreadable_tiles),
            "skipped_patches": list(self.skipped_patches),
            "decisions": list(self.decisions),
            "areas": dict(self.areas),
            "path": self.path,
        }

    def check_metadata(self) -> dict[str, JSON]:
        """``{"patches": n}``.

        Returns:
            The count of patches kept, the figure the ``has_patches`` check shows.
        """
        return {"patches": self.patches}


@holds("patch_grid")
def sample_domain_grid(ctx: DomainContext, *, skip_bad_patches: bool = True) -> GridReport:
    """Sample a domain's patch footprints and write its patch grid (GeoPackage, EPSG:2154).

    Holds the domain's ``patch_grid`` lock while it runs (another build of it waits,
    :mod:`~flair_pipeline.dataset.domain_lock`).

    Args:
        ctx: The domain's build (its inputs and label layer; ``sampling`` is used); the
            grid written is kept in it for the later steps.
        skip_bad_patches: Skip the candidates under an unreadable ortho tile and name
            them (default); false: an unreadable tile fails the step (no grid written).

    The areas come first (:mod:`~flair_pipeline.dataset.areas`: ``sampling.area_strategy``
    up to ``sampling.areas_per_domain``, or the polygons of ``sampling.areas_layer``); the
    areas chosen are in the report and, unless the whole mosaic is sampled, in the grid's
    ``areas`` layer.

    Returns:
        The :class:`GridReport`; one warning per unreadable ortho tile, naming the patches
        it costs, and one per kind of area of the user's layer that lays no patch.

    Raises:
        InputError: A missing or unusable input (named); with `skip_bad_patches` false,
            an unreadable ortho tile; an areas layer that is unreadable, not in Lambert-93
            or lays no patch on the mosaic.
    """
    domain, cfg = ctx.domain, ctx.cfg
    path = ctx.dataset.patch_grid(domain)
    remove_stale_temps(path)
    inputs = ctx.inputs
    user = None
    if cfg.sampling.areas_layer is not None:  # the user's areas replace the strategy
        user = read_areas_layer(cfg.sampling.areas_layer.replace("{domain}", domain))
    with Mosaic(inputs.ortho, **mosaic_options(cfg.sampling)) as mosaic:
        grid, report = sample_patches(
            domain, mosaic, None, cfg.sampling, user, scorer=ctx.score_cells
        )
        broken = [str(p) for p in mosaic.broken]
        decisions = tuple(mosaic.vrt.decisions)
        band_names = {
            n: [mosaic.vrt.band_names[b] for b in bs] for n, bs in mosaic.vrt.product_bands.items()
        }
    warnings = []
    for name, lost in report.product_missing.items():  # e.g. IRC not delivered over a tile
        warnings.append(
            f"ortho product {name} does not cover {len(lost)} candidate patch(es) the other "
            f"products cover ({', '.join(lost[:10])}{' …' if len(lost) > 10 else ''}): "
            f"rejected, never built with an empty {'/'.join(band_names[name])}; deliver its "
            "missing tiles"
        )
    for tile in broken:  # a truncated download: name it and what it costs (issue 15)
        lost = [e.split(": ", 1)[0] for e in report.unreadable if tile in e]
        warnings.append(
            f"{tile}: unreadable tile, {len(lost)} patch(es) lost "
            f"({', '.join(lost[:10])}{' …' if len(lost) > 10 else ''}); replace the file"
        )
    if warnings and not skip_bad_patches:
        raise InputError(warnings[0])
    choice, mode = report.areas, report.coverage
    assert choice is not None and mode is not None  # sample_patches always sets them
    if mode.line is not None:  # how the candidates' coverage was read
        decisions = (*decisions, mode.line)
    if choice.strategy == "layer":  # areas of the user's layer off this mosaic: a warning
        warnings += choice.lines
    else:  # a budget above the valid areas: the whole mosaic, said
        decisions = (*decisions, *choice.lines)
    write_patch_grid(grid, path, choice)
    ctx.keep_grid(grid)
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
        decisions=decisions,
        areas=choice.as_metadata(),
        candidates_read=report.read,
        coverage_read=mode.name,
        candidates_coarse=report.coarse,
    )


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
        """Written and skipped counts, the first 50 skipped patches (with why), decisions.

        Returns:
            A JSON-serialisable dict: ``written`` and ``skipped`` (ints),
            ``skipped_patches`` ("<patch id>: <why>", at most 50) and ``decisions``.
        """
        return {
            "written": self.written,
            "skipped": len(self.skipped),
            "skipped_patches": [f"{p}: {why}" for p, why in self.skipped[:50]],
            "decisions": list(self.decisions),
        }


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
        """The first 20 problems and how many files were checked.

        Returns:
            ``problems`` (at most 20 "<file>: <what is wrong>" lines) and ``checked``
            (the count of IMG files written and checked).
        """
        return {"problems": list(self.problems[:20]), "checked": self.written}


@holds("aerial_patches")
def build_domain_images(
    ctx: DomainContext, *, skip_bad_patches: bool = True, progress: Progress | None = None
) -> ImagesReport:
    """Write ``IMG_<id>.tif`` (5 bands uint8: R, G, B, NIR, elevation) of every grid patch.

    Reads the patch grid :func:`sample_domain_grid` wrote; ``aerial/<domain>`` is replaced
    as one generation. Each written file is then checked (band count, size, dtype, CRS).
    A patch whose exact nodata share exceeds ``sampling.max_nodata_fraction`` (the grid's
    check was a coarse estimate, :mod:`~flair_pipeline.dataset.coarse_coverage`) is
    skipped and named, never written.
    Holds the domain's ``aerial_patches`` lock while it runs (another build of it waits,
    :mod:`~flair_pipeline.dataset.domain_lock`).

    Args:
        ctx: The domain's build (its patch grid and inputs; ``sampling``,
            ``dataset.compression``); writes ``aerial/<domain>``.
        skip_bad_patches: Skip a patch that cannot be built (a void DSM under it, an
            unreadable tile) and name it (default); false: it fails the step.
        progress: Where to show the count of patches written (``<domain> IMG``), or None.

    Returns:
        The :class:`ImagesReport` (one warning per skipped patch).

    Raises:
        InputError: A missing or unusable input (named); with `skip_bad_patches` false,
            the first bad patch (nothing swapped in).
        StorageError: A file could not be written (nothing swapped in).
    """
    cfg, dataset, grid, inputs = ctx.cfg, ctx.dataset, ctx.grid, ctx.inputs
    size = cfg.sampling.patch_size
    report = build_aerial_patches(
        grid,
        inputs.ortho,
        inputs.dsm,
        inputs.dtm,
        dataset,
        size,
        cfg.sampling.elevation_scale,
        cfg.dataset.compression,
        isolate=skip_bad_patches,
        **mosaic_options(cfg.sampling),
        progress=progress,
        workers=cfg.dataset.area_workers,
        max_nodata=cfg.sampling.max_nodata_fraction,
    )
    skipped = {p for p, _ in report.skipped}
    bad = []
    row: Any  # a patch grid row (pandas' itertuples are untyped)
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
        """The file counts, pixels per FLAIR code (1..19), unlabelled pixels and tolerance.

        Returns:
            :meth:`PatchFilesReport.as_metadata`'s dict plus ``pixels_per_code`` (code as
            str -> pixel count), ``unlabelled_pixels`` (code 0, int) and
            ``unlabelled_tolerance`` (``sampling.max_nodata_fraction``, a fraction).
        """
        return {
            **super().as_metadata(),
            "pixels_per_code": dict(self.pixels_per_code),
            "unlabelled_pixels": self.unlabelled_pixels,
            "unlabelled_tolerance": self.unlabelled_tolerance,
        }


@holds("label_masks")
def build_domain_masks(
    ctx: DomainContext, *, skip_bad_patches: bool = True, progress: Progress | None = None
) -> MasksReport:
    """Write ``MSK_<id>.tif`` (uint8 FLAIR codes, 0 = unlabelled) of every grid patch.

    Reads the patch grid; ``labels/<domain>`` is replaced as one generation. Each written
    mask is then checked: codes within 0..19 and at most ``sampling.max_nodata_fraction``
    unlabelled (the sampler's tolerance). Holds the domain's ``label_masks`` lock while it
    runs (another build of it waits, :mod:`~flair_pipeline.dataset.domain_lock`).

    Args:
        ctx: The domain's build (its patch grid, inputs and label layer; ``sampling``,
            ``dataset.compression``); writes ``labels/<domain>``.
        skip_bad_patches: Skip a patch over the unlabelled tolerance and name it
            (default); false: it fails the step.
        progress: Where to show the count of patches written (``<domain> MSK``), or None.

    Returns:
        The :class:`MasksReport` (one warning per skipped patch).

    Raises:
        InputError: A missing or unusable label file (named); with `skip_bad_patches`
            false, the first bad patch (nothing swapped in).
        StorageError: A file could not be written (nothing swapped in).
    """
    cfg, dataset, grid, inputs = ctx.cfg, ctx.dataset, ctx.grid, ctx.inputs
    tolerance = cfg.sampling.max_nodata_fraction
    report = build_label_masks(
        grid,
        inputs.labels,
        dataset,
        cfg.sampling.patch_size,
        cfg.sampling.resolution,
        mapping=inputs.mapping,
        layer=inputs.labels_layer,
        max_unlabelled=tolerance,
        compression=cfg.dataset.compression,
        isolate=skip_bad_patches,
        labels=ctx.kept_labels,  # read by extent: the patches kept, or the mosaic
        progress=progress,
        workers=cfg.dataset.area_workers,
    )
    skipped = {p for p, _ in report.skipped}
    bad, counts = [], np.zeros(20, np.int64)
    row: Any  # a patch grid row (pandas' itertuples are untyped)
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
