"""FLAIR-HUB model assets: a hub model trained on the hub manifest, and scored.

Declared in :mod:`flair_pipeline.stages` (``HUB_STAGES``); here are their bodies (the
manifest's, ``hub_release``, is in ``hub_release.py``: its code dependencies stay torch's
free). What they train is params.yaml's ``hub`` section (``recipes/flair-hub-*.yaml`` as DVC
experiments, docs/flair-release.md §8).
"""

import dagster as dg

from flair_pipeline import layout as L
from flair_pipeline.defs.adapter import progress, project_failures
from flair_pipeline.defs.declared import stage_asset
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.layout import EvalFiles, ModelFiles
from flair_pipeline.reports import StageReport
from flair_pipeline.stages import STAGES_BY_NAME as S


@stage_asset(S["model_hub"])
def model_hub(context: dg.AssetExecutionContext, flair: PipelineConfigResource) -> StageReport:
    """Asset: the FLAIR-HUB model trained (its ``description`` says what it writes).

    Returns:
        The training report (best validation mIoU and epochs, logged too),
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).

    Raises:
        dagster.Failure: A project error in the step (an invalid ``hub.train`` included),
            not retried (:func:`~flair_pipeline.defs.adapter.project_failures`).
    """
    from flair_pipeline.training.hub_config import hub_train_config  # torch: lazily
    from flair_pipeline.training.hub_train import train_hub

    with project_failures():
        config = hub_train_config(flair.load().hub.train)
        report = train_hub(
            L.HUB_MANIFEST.under(flair.dataset().root),
            config,
            ModelFiles.of(flair.models_dir(), L.HUB_MODEL).folder,
            progress=False,
        )
    context.log.info(
        f"hub: best validation mIoU {report.best_val_miou:.4f} after {report.epochs} epochs"
    )
    return report


@stage_asset(S["evaluation_hub"])
def evaluation_hub(context: dg.AssetExecutionContext, flair: PipelineConfigResource) -> StageReport:
    """Asset: the FLAIR-HUB model scored on the test split (its ``description`` says what).

    Returns:
        The evaluation report (its test mIoU logged too),
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).

    Raises:
        dagster.Failure: A project error in the step, not retried
            (:func:`~flair_pipeline.defs.adapter.project_failures`).
    """
    from flair_pipeline.evaluation.hub_eval import evaluate_hub_metrics  # torch: lazily

    with project_failures():
        report = evaluate_hub_metrics(
            ModelFiles.of(flair.models_dir(), L.HUB_MODEL).best,
            L.HUB_MANIFEST.under(flair.dataset().root),
            EvalFiles.of(flair.eval_dir(), L.HUB_MODEL).metrics,
            progress=progress(context),
        )
    context.log.info(f"hub: test mIoU {report.miou:.4f} on {report.patches} patches")
    return report
