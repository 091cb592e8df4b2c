"""Asset ``hub_release``: the built dataset as a FLAIR-HUB release, indexed as a manifest.

Declared in :mod:`flair_pipeline.stages` (``HUB_STAGES``); here is its body, apart from
the hub model's (``flair_hub.py``) so that its dvc stage does not depend on the training code.
"""

import dagster as dg

from flair_pipeline import layout as L
from flair_pipeline.defs.adapter import progress, project_failures
from flair_pipeline.defs.declared import stage_asset
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.reports import StageReport
from flair_pipeline.stages import STAGES_BY_NAME as S


@stage_asset(S["hub_release"])
def hub_release(context: dg.AssetExecutionContext, flair: PipelineConfigResource) -> StageReport:
    """Asset: the hub model's manifest (its ``description`` says what it writes).

    Returns:
        The manifest report (its source and patches per split, logged too),
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).

    Raises:
        dagster.Failure: A project error in the step, not retried
            (:func:`~flair_pipeline.defs.adapter.project_failures`).
    """
    from flair_pipeline.release.flair_hub_export import hub_manifest

    hub = flair.load().hub
    root = flair.dataset().root
    with project_failures():
        report = hub_manifest(
            root,
            L.HUB_RELEASE.under(root),
            L.HUB_MANIFEST.under(root),
            release=hub.release,
            manifest=hub.manifest,
            progress=progress(context),
        )
    context.log.info(f"hub manifest ({report.source}): {dict(report.patches)} patches")
    return report
