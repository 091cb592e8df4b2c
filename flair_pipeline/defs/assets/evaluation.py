"""Evaluation assets: each trained model on the test split, and one comparison table.

Declared in :mod:`flair_pipeline.stages`; here are their bodies.
"""

import dagster as dg

from flair_pipeline.defs.adapter import progress, project_failures
from flair_pipeline.defs.declared import stage_asset
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.evaluation.compare import EVALUATED, compare_models, comparison_table
from flair_pipeline.layout import EvalFiles, ModelFiles
from flair_pipeline.model_registry import MODELS_BY_FOLDER
from flair_pipeline.reports import StageReport
from flair_pipeline.stages import STAGES_BY_NAME as S

__all__ = ["EVALUATED", "comparison_table"]  # kept importable from here


def _evaluate(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource, folder: str
) -> StageReport:
    from flair_pipeline.evaluation.checkpoint_eval import evaluate_checkpoint  # torch: lazily

    cfg = flair.load()
    ckpt = ModelFiles.of(flair.models_dir(), folder).best
    with project_failures():
        report = evaluate_checkpoint(
            ckpt,
            flair.dataset().root,
            EvalFiles.of(flair.eval_dir(), folder).folder,
            batch_size=cfg.eval.batch_size,
            progress=progress(context),
        )
    s = report.scores
    context.log.info(f"{folder}: test mIoU {s.miou:.4f} on {s.n_patches} patches")
    return report


@stage_asset(S["evaluation_unet"])
def evaluation_unet(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> StageReport:
    """Asset: the U-Net evaluated on the test split (its ``description`` says what it writes).

    Returns:
        The U-Net's evaluation report (its test mIoU logged too),
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).

    Raises:
        dagster.Failure: A project error in the step, not retried
            (:func:`~flair_pipeline.defs.adapter.project_failures`).
    """
    return _evaluate(context, flair, MODELS_BY_FOLDER["unet"].folder)


@stage_asset(S["evaluation_utt"])
def evaluation_utt(context: dg.AssetExecutionContext, flair: PipelineConfigResource) -> StageReport:
    """Asset: U-T&T evaluated on the test split (its ``description`` says what it writes).

    Returns:
        U-T&T's evaluation report (its test mIoU logged too),
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).

    Raises:
        dagster.Failure: A project error in the step, not retried
            (:func:`~flair_pipeline.defs.adapter.project_failures`).
    """
    return _evaluate(context, flair, MODELS_BY_FOLDER["utt"].folder)


@stage_asset(S["model_comparison"])
def model_comparison(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> StageReport:
    """Asset: the comparison table of the evaluated models (its ``description`` says what it writes).

    Returns:
        The comparison report (its table logged too),
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).

    Raises:
        dagster.Failure: A project error in the step, not retried
            (:func:`~flair_pipeline.defs.adapter.project_failures`).
    """
    with project_failures():
        report = compare_models(flair.eval_dir(), EVALUATED)
    context.log.info("\n" + report.table)
    return report
