"""Asset `domain_sources`: a domain's raw inputs, checked and fingerprinted.

Declared in :mod:`flair_pipeline.stages`; here is only its body.
"""

from typing import Any

import dagster as dg

from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.sources_record import (
    domain_input_files,
    fingerprint,
    record_domain_sources,
)
from flair_pipeline.defs.adapter import result
from flair_pipeline.defs.declared import stage_asset
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.stages import STAGES_BY_NAME

__all__ = ["domain_input_files", "domain_sources", "fingerprint"]  # the sensor's tests use both


@stage_asset(STAGES_BY_NAME["domain_sources"])
def domain_sources(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult[Any]:
    """Asset: a domain's raw inputs, checked and fingerprinted (its ``description`` says what it writes).

    Returns:
        A ready ``dg.MaterializeResult`` of the sources report (passed on as is by
        :mod:`flair_pipeline.defs.declared`), its data version the first 16 hex digits of
        the inputs' fingerprint.
    """
    ctx = DomainContext.open(context.partition_key, flair.raw(), flair.dataset(), flair.load())
    report = record_domain_sources(ctx)
    return result(context, report, data_version=report.fingerprint[:16])
