"""Dataset assets, partitioned by domain: patch grid, IMG, MSK, metadata; and the split.

Each asset is declared in :mod:`flair_pipeline.stages` (what it writes, reads, checks);
here is only its body.
"""

import dagster as dg

from flair_pipeline.dataset import build
from flair_pipeline.dataset.assemble import assemble_splits
from flair_pipeline.dataset.crop_step import build_domain_crop_labels
from flair_pipeline.defs.adapter import progress
from flair_pipeline.defs.declared import stage_asset
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.reports import StageReport
from flair_pipeline.stages import STAGES_BY_NAME as S


def _context(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> build.DomainContext:
    """The build context of the asset's domain (its partition), opened once per step.

    Returns:
        A :class:`~flair_pipeline.dataset.build.DomainContext` of the partition's domain over
        the resource's raw and dataset layouts and configuration.
    """
    return build.DomainContext.open(
        context.partition_key, flair.raw(), flair.dataset(), flair.load()
    )


@stage_asset(S["patch_grid"])
def patch_grid(context: dg.AssetExecutionContext, flair: PipelineConfigResource) -> StageReport:
    """Asset: the patch grid of one domain (its ``description`` says what it writes).

    Returns:
        The grid step's report of the domain,
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).
    """
    return build.sample_domain_grid(_context(context, flair))


@stage_asset(S["aerial_patches"])
def aerial_patches(context: dg.AssetExecutionContext, flair: PipelineConfigResource) -> StageReport:
    """Asset: the IMG patches of one domain (its ``description`` says what it writes).

    Returns:
        The IMG step's report of the domain,
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).
    """
    return build.build_domain_images(_context(context, flair), progress=progress(context))


@stage_asset(S["label_masks"])
def label_masks(context: dg.AssetExecutionContext, flair: PipelineConfigResource) -> StageReport:
    """Asset: the MSK patches of one domain (its ``description`` says what it writes).

    Returns:
        The MSK step's report of the domain,
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).
    """
    return build.build_domain_masks(_context(context, flair), progress=progress(context))


@stage_asset(S["crop_labels"])
def crop_labels(context: dg.AssetExecutionContext, flair: PipelineConfigResource) -> StageReport:
    """Asset: the crop-type labels of one domain (its ``description`` says what it writes).

    Returns:
        The crop-label step's report of the domain,
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).
    """
    return build_domain_crop_labels(_context(context, flair), progress=progress(context))


@stage_asset(S["dataset_metadata"])
def dataset_metadata(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> StageReport:
    """Asset: one domain's metadata and its checks (its ``description`` says what it writes).

    Returns:
        The metadata step's report of the domain,
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).
    """
    return build.write_domain_metadata(_context(context, flair))


@stage_asset(S["split_assignment"])
def split_assignment(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> StageReport:
    """Asset: the split of every domain (its ``description`` says what it writes).

    Returns:
        The split's report (:func:`~flair_pipeline.dataset.assemble.assemble_splits`),
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).
    """
    return assemble_splits(flair.dataset(), flair.load().split, flair.raw())
