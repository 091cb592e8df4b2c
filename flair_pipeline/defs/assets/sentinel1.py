"""Sentinel-1 asset: one series per zone and orbit direction (partitioned by domain).

Declared in :mod:`flair_pipeline.stages`; here is its body.
"""

import dataclasses

import dagster as dg

from flair_pipeline.defs.adapter import progress, retried_failures
from flair_pipeline.defs.declared import stage_asset
from flair_pipeline.defs.resources import PipelineConfigResource, SentinelHubCredentials
from flair_pipeline.domains import DomainId
from flair_pipeline.reports import StageReport
from flair_pipeline.sentinel1.build import build_domain_s1_series
from flair_pipeline.sentinel1.factory import build_s1_provider
from flair_pipeline.sentinel1.validate import validate_domain_s1
from flair_pipeline.stages import STAGES_BY_NAME


@stage_asset(STAGES_BY_NAME["sentinel1_series"])
def sentinel1_series(
    context: dg.AssetExecutionContext,
    flair: PipelineConfigResource,
    sentinelhub: SentinelHubCredentials,
) -> StageReport:
    """Asset: the Sentinel-1 series of one domain's zones (its ``description`` says what).

    Returns:
        The domain's series report, its problems completed by ``s1_series_valid`` read on
        the files written (:func:`~flair_pipeline.sentinel1.validate.validate_domain_s1`:
        every orbit asked present per zone, values in their units' range, dates in the
        range, no σ0/γ0 or linear/dB mix); failed zones logged as errors.

    Raises:
        dagster.Failure: A project error, or an error that is not transient, not retried
            (:func:`~flair_pipeline.defs.adapter.retried_failures`); a transient error passes
            unchanged to the asset's retry policy.
    """
    with retried_failures(f"{context.partition_key}: sentinel1_series"):
        project = flair.project()
        cfg = project.config
        domain = context.partition_key
        provider = build_s1_provider(cfg.sentinel1, project.raw.sentinel1_catalog(), sentinelhub)
        report = build_domain_s1_series(
            domain, flair.raw(), flair.dataset(), cfg, provider, progress=progress(context)
        )
        for line in report.failed_zones:
            context.log.error(f"{domain}/{line}")
        year = DomainId.parse(domain).year
        s1 = cfg.sentinel1
        span = (s1.start, s1.end) if s1.start and s1.end else None
        found = validate_domain_s1(flair.dataset(), domain, year, span, s1.orbits)
        new = tuple(p for p in found if p not in report.problems)
        return dataclasses.replace(report, problems=(*report.problems, *new))
