"""Training assets: one model per baseline, trained on the whole built dataset.

Not partitioned: a model sees every train and validation domain. Both run in the `gpu`
pool (limit 1 on the instance, see orchestration/run.py) so two trainings never share a GPU, with
a retry policy for the transient failures of long jobs (a preempted node, a CUDA hiccup);
bad input is not retried. Declared in :mod:`flair_pipeline.stages`; here are their bodies.
"""

import dagster as dg

from flair_pipeline.defs.adapter import progress, project_failures
from flair_pipeline.defs.declared import stage_asset
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.layout import ModelFiles
from flair_pipeline.model_registry import MODELS_BY_FOLDER, model_for_folder
from flair_pipeline.reports import StageReport
from flair_pipeline.stages import STAGES_BY_NAME as S


def _train(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource, model: str, folder: str
) -> StageReport:
    from flair_pipeline.training.train import train_model  # torch: only when a run trains

    cfg = flair.load()
    out = ModelFiles.of(flair.models_dir(), folder).folder
    with project_failures():
        report = train_model(flair.dataset().root, out, cfg, model, progress=False)
    context.log.info(
        f"{model}: best validation mIoU {report.best_val_miou:.4f} after {report.epochs} epochs"
    )
    return report


@stage_asset(S["packed_training_input"])
def packed_training_input(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> StageReport:
    """Asset: the packed training input (its ``description`` says what it writes).

    Returns:
        The packing report (patch counts and root, logged too),
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).

    Raises:
        dagster.Failure: A project error in the step, not retried
            (:func:`~flair_pipeline.defs.adapter.project_failures`).
    """
    from flair_pipeline.training.packing import pack_source

    with project_failures():
        report = pack_source(flair.dataset().root, progress=progress(context))
    context.log.info(f"packed {report.counts} patches into {report.root}")
    return report


@stage_asset(S["model_unet"])
def model_unet(context: dg.AssetExecutionContext, flair: PipelineConfigResource) -> StageReport:
    """Asset: the U-Net baseline (or U-Net with metadata) trained (its ``description`` says what it writes).

    Returns:
        The training report (best validation mIoU and epochs, logged too),
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).

    Raises:
        dagster.Failure: A project error in the step, not retried
            (:func:`~flair_pipeline.defs.adapter.project_failures`).
    """
    spec = model_for_folder("unet", flair.load().train.model)  # unet or unet-meta
    return _train(context, flair, spec.name, spec.folder)


@stage_asset(S["model_utt"])
def model_utt(context: dg.AssetExecutionContext, flair: PipelineConfigResource) -> StageReport:
    """Asset: U-T&T trained (its ``description`` says what it writes).

    Returns:
        The training report (best validation mIoU and epochs, logged too),
        which :mod:`flair_pipeline.defs.declared` turns into the materialization and its
        check (passed iff the report passed).

    Raises:
        dagster.Failure: A project error in the step, not retried
            (:func:`~flair_pipeline.defs.adapter.project_failures`).
    """
    spec = MODELS_BY_FOLDER["utt"]
    return _train(context, flair, spec.name, spec.folder)
