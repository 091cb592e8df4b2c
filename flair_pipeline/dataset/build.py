"""Build one domain of the dataset: its sources record, patch grid, IMG, MSK and metadata.

One plain function per step, each returning a frozen report (:mod:`flair_pipeline.reports`):
:mod:`~flair_pipeline.dataset.sources_record`, :mod:`~flair_pipeline.dataset.domain_steps`
(grid, IMG, MSK), :mod:`~flair_pipeline.dataset.metadata_step`; and here
:func:`build_domain_patches` running them in order. Each step takes one
:class:`~flair_pipeline.dataset.domain_context.DomainContext` (the domain, its roots, the
configuration, its inputs resolved and labels read on first use). The Dagster assets
(``defs/assets/sources.py``, ``defs/assets/dataset.py``) open one and call one step each;
the CLI's ``flair-pipeline build-domain`` opens one and calls :func:`build_domain_patches`,
so both write the same bytes. Per-patch failures are isolated (a corrupt tile under a patch skips that patch and
names it, :mod:`flair_pipeline.dataset.patch_writers`); a step's check (``has_patches``,
``img_format``, ``msk_codes``, ``img_msk_pairs``) lists its problems in the report, and
:func:`build_domain_patches` stops at the first failed check as Dagster's blocking checks do.
Every file is in EPSG:2154 (Lambert-93) on the 0.2 m grid of ``sampling.resolution``.
"""

from __future__ import annotations

from dataclasses import dataclass

from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.domain_lock import STAGES, holds
from flair_pipeline.dataset.domain_steps import (
    GridReport,
    ImagesReport,
    MasksReport,
    build_domain_images,
    build_domain_masks,
    sample_domain_grid,
)
from flair_pipeline.dataset.metadata_step import MetadataReport, write_domain_metadata
from flair_pipeline.dataset.sources_record import SourcesReport, record_domain_sources
from flair_pipeline.errors import StageCheckError
from flair_pipeline.progress import Progress
from flair_pipeline.reports import JSON, StageReport

__all__ = [
    "DomainBuildReport",
    "DomainContext",
    "build_domain_images",
    "build_domain_masks",
    "build_domain_patches",
    "record_domain_sources",
    "sample_domain_grid",
    "write_domain_metadata",
]


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
        """The step reports keyed by their Dagster asset name.

        Returns:
            The five reports, in build order, keyed ``domain_sources``, ``patch_grid``,
            ``aerial_patches``, ``label_masks`` and ``dataset_metadata``.
        """
        return {
            "domain_sources": self.sources,
            "patch_grid": self.grid,
            "aerial_patches": self.images,
            "label_masks": self.masks,
            "dataset_metadata": self.metadata,
        }

    def as_metadata(self) -> dict[str, JSON]:
        """Every step's figures by asset name; the metadata step's with its problems and path.

        Returns:
            A JSON-serialisable dict: each asset name maps to that step's ``as_metadata()``;
            ``dataset_metadata`` also carries ``problems`` (list of str) and ``path``.
        """
        out: dict[str, JSON] = {
            n: s.as_metadata() for n, s in self.steps().items() if n != "dataset_metadata"
        }
        m = self.metadata
        out["dataset_metadata"] = {
            **m.as_metadata(),
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


@holds(*STAGES)  # the whole build is one: no other build's step between two of ours
def build_domain_patches(
    ctx: DomainContext,
    *,
    skip_bad_patches: bool = True,
    progress: Progress | None = None,
) -> DomainBuildReport:
    """Build one domain as the dataset assets do: sources record, grid, IMG, MSK, metadata.

    The steps run in the assets' order; a failed check stops the build before the next
    step, as a blocking asset check stops its downstream assets. The files written are
    byte-identical to the assets' (tests/dataset/test_build.py). Holds every step's lock of
    the domain for the whole build (:mod:`~flair_pipeline.dataset.domain_lock`): another
    build of the domain, from any front door, waits for it or is waited for.

    Args:
        ctx: The domain's build (:meth:`DomainContext.open`): every step shares it, so the
            inputs are resolved, the labels read and the patch grid kept once.
        skip_bad_patches: Per-patch failure isolation (eo-learn's, rslearn's): a patch
            that cannot be built is skipped and named in its step's report (default, as
            the assets do); false: the first one stops the build with its reason.
        progress: Where to show the count of IMG and MSK patches written, or None.

    Returns:
        The :class:`DomainBuildReport` of every step.

    Raises:
        InputError: A missing or unusable input (named); with `skip_bad_patches` false,
            the first bad patch or unreadable tile.
        StageCheckError: A step's check failed (its first problems named).
        StorageError: A file could not be written.
    """
    domain, skip = ctx.domain, skip_bad_patches
    sources = record_domain_sources(ctx)
    grid = sample_domain_grid(ctx, skip_bad_patches=skip)
    _require(domain, "patch_grid", grid)
    images = build_domain_images(ctx, skip_bad_patches=skip, progress=progress)
    _require(domain, "aerial_patches", images)
    masks = build_domain_masks(ctx, skip_bad_patches=skip, progress=progress)
    _require(domain, "label_masks", masks)
    metadata = write_domain_metadata(ctx)
    _require(domain, "dataset_metadata", metadata)
    return DomainBuildReport(sources, grid, images, masks, metadata)
