"""Sentinel-2 assets: one series per zone (partitioned by domain), and the centroid index.

Declared in :mod:`flair_pipeline.stages`; here are their bodies.
"""

import dagster as dg
import rasterio

from flair_pipeline.defs.adapter import as_failure, progress
from flair_pipeline.defs.declared import stage_asset
from flair_pipeline.defs.resources import PipelineConfigResource, SentinelHubCredentials
from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.reports import StageReport
from flair_pipeline.sentinel2.build import build_domain_series, merge_centroids
from flair_pipeline.sentinel2.factory import make_provider
from flair_pipeline.stages import STAGES_BY_NAME


@stage_asset(STAGES_BY_NAME["sentinel2_series"])
def sentinel2_series(
    context: dg.AssetExecutionContext,
    flair: PipelineConfigResource,
    sentinelhub: SentinelHubCredentials,
) -> StageReport:
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
) -> StageReport:
    cfg, raw = flair.load(), flair.raw()
    provider = make_provider(cfg.sentinel2, flair.resolve, raw.sentinel2_catalog(), sentinelhub)
    report = build_domain_series(
        context.partition_key, raw, flair.dataset(), cfg, provider, progress=progress(context)
    )
    for line in report.failed_zones:
        context.log.error(f"{context.partition_key}/{line}")
    return report


@stage_asset(STAGES_BY_NAME["sentinel2_index"])
def sentinel2_index(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> StageReport:
    """Asset: the centroid index over every domain's series (its ``description`` says what it writes)."""
    return merge_centroids(flair.dataset())
