"""Sentinel-2 assets: one series per zone (partitioned by domain), and the centroid index.

Declared in :mod:`flair_pipeline.stages`; here are their bodies.
"""

import dagster as dg

from flair_pipeline.defs.adapter import progress, retried_failures
from flair_pipeline.defs.declared import stage_asset
from flair_pipeline.defs.resources import PipelineConfigResource, SentinelHubCredentials
from flair_pipeline.reports import StageReport
from flair_pipeline.sentinel2.build import build_domain_series, merge_centroids
from flair_pipeline.stages import STAGES_BY_NAME


@stage_asset(STAGES_BY_NAME["sentinel2_series"])
def sentinel2_series(
    context: dg.AssetExecutionContext,
    flair: PipelineConfigResource,
    sentinelhub: SentinelHubCredentials,
) -> StageReport:
    """Asset: the Sentinel-2 series of one domain's zones (its ``description`` says what it writes).

    Returns:
        The domain's series report (its failed zones logged as errors),
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).

    Raises:
        dagster.Failure: A project error, or an error that is not transient, not retried
            (:func:`~flair_pipeline.defs.adapter.retried_failures`); a transient error passes
            unchanged to the asset's retry policy.
    """
    with retried_failures(f"{context.partition_key}: sentinel2_series"):
        return _build_series(context, flair, sentinelhub)


def _build_series(
    context: dg.AssetExecutionContext,
    flair: PipelineConfigResource,
    sentinelhub: SentinelHubCredentials,
) -> StageReport:
    project = flair.project()
    report = build_domain_series(
        context.partition_key,
        flair.raw(),
        flair.dataset(),
        project.config,
        project.provider(sentinelhub),
        progress=progress(context),
    )
    for line in report.failed_zones:
        context.log.error(f"{context.partition_key}/{line}")
    return report


@stage_asset(STAGES_BY_NAME["sentinel2_index"])
def sentinel2_index(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> StageReport:
    """Asset: the centroid index over every domain's series (its ``description`` says what it writes).

    Returns:
        The index's report (:func:`~flair_pipeline.sentinel2.build.merge_centroids`),
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).
    """
    return merge_centroids(flair.dataset())
