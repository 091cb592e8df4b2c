"""Evaluation assets: each trained model on the test split, and one comparison table."""

from typing import Any

import dagster as dg

from flair_pipeline.defs.adapter import progress, project_failures, result
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.evaluation.compare import EVALUATED, compare_models, comparison_table
from flair_pipeline.layout import EvalFiles, ModelFiles
from flair_pipeline.model_registry import MODELS_BY_FOLDER

__all__ = ["EVALUATED", "comparison_table"]  # kept importable from here


def _evaluate(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource, folder: str
) -> dg.MaterializeResult:
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
    return result(context, report)


#: Keyword arguments shared by the evaluation assets' @dg.asset.
_COMMON: dict[str, Any] = dict(group_name="evaluation", kinds={"pytorch", "json"})


@dg.asset(
    deps=["model_unet", "split_assignment", "aerial_patches", "label_masks"],
    description="U-Net on the test split: `PRED_<id>.tif` maps, metrics.json (FLAIR mIoU over "
    "classes 1-12, per-class IoU/F1, per domain), confusion.csv/png, per_domain.csv, a "
    "figure of test patches; in `<paths.eval>/unet/`.",
    **_COMMON,
)
def evaluation_unet(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult:
    """Asset: the U-Net evaluated on the test split (its ``description`` says what it writes)."""
    return _evaluate(context, flair, MODELS_BY_FOLDER["unet"].folder)


@dg.asset(
    deps=["model_utt", "split_assignment", "aerial_patches", "label_masks", "sentinel2_index"],
    description="U-T&T on the test split; same artifacts as evaluation_unet in `<paths.eval>/utt/`.",
    **_COMMON,
)
def evaluation_utt(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult:
    """Asset: U-T&T evaluated on the test split (its ``description`` says what it writes)."""
    return _evaluate(context, flair, MODELS_BY_FOLDER["utt"].folder)


@dg.asset(
    deps=[f"evaluation_{m}" for m in EVALUATED],
    group_name="evaluation",
    kinds={"markdown"},
    description="One table of every evaluated model: per-class IoU, mIoU, overall accuracy "
    "(`<paths.eval>/comparison.md`).",
)
def model_comparison(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult:
    """Asset: the comparison table of the evaluated models (its ``description`` says what it writes)."""
    with project_failures():
        report = compare_models(flair.eval_dir(), EVALUATED)
    context.log.info("\n" + report.table)
    return result(context, report)
