"""Asset `domain_sources`: a domain's raw inputs, checked and fingerprinted."""

import dagster as dg

from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.sources_record import (
    domain_input_files,
    fingerprint,
    record_domain_sources,
)
from flair_pipeline.defs.adapter import result
from flair_pipeline.defs.partitions import DOMAIN_BACKFILL, domains_partitions
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.defs.staging import staged

__all__ = ["domain_input_files", "domain_sources", "fingerprint"]  # the sensor's tests use both


@dg.asset(
    partitions_def=domains_partitions,
    backfill_policy=DOMAIN_BACKFILL,
    group_name="sources",
    kinds={"python", "geotiff", "geopackage"},
    description="A domain's raw inputs (orthophoto tiles, DSM/DTM, labels.gpkg, domain.json), "
    "checked for presence and fingerprinted so downstream assets rebuild only when they change.",
)
@staged()
def domain_sources(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult:
    """Asset: a domain's raw inputs, checked and fingerprinted (its ``description`` says what it writes)."""
    ctx = DomainContext.open(context.partition_key, flair.raw(), flair.dataset(), flair.load())
    report = record_domain_sources(ctx)
    return result(context, report, data_version=report.fingerprint[:16])
