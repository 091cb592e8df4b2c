"""Sentinel-2 assets: one series per zone (partitioned by domain), and the centroid index."""

import dagster as dg
import rasterio

from flair_pipeline.defs.adapter import as_failure, progress, result
from flair_pipeline.defs.partitions import DOMAIN_BACKFILL, domains_partitions
from flair_pipeline.defs.resources import PipelineConfigResource, SentinelHubCredentials
from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.sentinel2.build import build_domain_series, merge_centroids
from flair_pipeline.sentinel2.factory import make_provider


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
    try:
        return _build_series(context, flair, sentinelhub)
    except FlairPipelineError as exc:
        # Bad input or an exhausted provider (which already retried with back-off):
        # running the step again cannot help, so fail now with the message.
        raise as_failure(exc) from exc
    except Exception as exc:
        if transient(exc):
            raise  # a network or disk hiccup: the retry policy may get past it
        # anything else (a bug, a library error on a bad file) fails the same way on a
        # retry: one line now rather than the same trace three times, 30 s apart (issue 15)
        raise dg.Failure(
            description=f"{context.partition_key}: sentinel2_series failed, not retried "
            f"({type(exc).__name__}: {exc})",
            allow_retries=False,
        ) from exc


def transient(exc: BaseException) -> bool:
    """Whether a retry of the step may succeed.

    True for OS-level I/O errors (connection reset, timeout, EIO), not for a missing file,
    a permission or a raster GDAL cannot read.
    """
    permanent = (
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
        rasterio.errors.RasterioError,
    )
    return isinstance(exc, OSError) and not isinstance(exc, permanent)


def _build_series(
    context: dg.AssetExecutionContext,
    flair: PipelineConfigResource,
    sentinelhub: SentinelHubCredentials,
) -> dg.MaterializeResult:
    cfg, raw = flair.load(), flair.raw()
    provider = make_provider(cfg.sentinel2, flair.resolve, raw.sentinel2_catalog(), sentinelhub)
    report = build_domain_series(
        context.partition_key, raw, flair.dataset(), cfg, provider, progress=progress(context)
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
