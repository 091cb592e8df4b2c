"""Sentinel-2 assets: one series per zone (partitioned by domain), and the centroid index."""

import dagster as dg

from flair_pipeline.defs.adapter import progress, result, retried_failures
from flair_pipeline.defs.partitions import DOMAIN_BACKFILL, domains_partitions
from flair_pipeline.defs.resources import PipelineConfigResource, SentinelHubCredentials
from flair_pipeline.sentinel2.build import build_domain_series, merge_centroids


@dg.asset(
    partitions_def=domains_partitions,
    backfill_policy=DOMAIN_BACKFILL,
    group_name="sentinel2",
    deps=["patch_grid"],
    kinds={"python", "numpy", "stac"},
    retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL),
    description="Per zone, a one-year Sentinel-2 L2A series over a super-area covering a "
    "window of sentinel2.window px around every patch centroid: FLAIR's "
    "`SEN2_sp_<domain>-<zone>_{data,masks}.npy` and `_products.txt`. Provider from config "
    "(stac on the local archive by default, or sentinelhub).",
    check_specs=[dg.AssetCheckSpec("series_valid", asset="sentinel2_series", blocking=True)],
)
def sentinel2_series(
    context: dg.AssetExecutionContext,
    flair: PipelineConfigResource,
    sentinelhub: SentinelHubCredentials,
) -> dg.MaterializeResult:
    """Asset: the Sentinel-2 series of one domain's zones (its ``description`` says what it writes)."""
    with retried_failures(f"{context.partition_key}: sentinel2_series"):
        return _build_series(context, flair, sentinelhub)


def _build_series(
    context: dg.AssetExecutionContext,
    flair: PipelineConfigResource,
    sentinelhub: SentinelHubCredentials,
) -> dg.MaterializeResult:
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
    return result(context, report, check="series_valid")


@dg.asset(
    group_name="sentinel2",
    deps=[dg.AssetDep("sentinel2_series", partition_mapping=dg.AllPartitionMapping())],
    kinds={"python", "json"},
    description="centroids_sp_to_patch.json: for every patch, the row and column of its "
    "centroid in its zone's super-area (merged over all built domains).",
)
def sentinel2_index(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult:
    """Asset: the centroid index over every domain's series (its ``description`` says what it writes)."""
    return result(context, merge_centroids(flair.dataset()))
