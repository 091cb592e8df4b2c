"""Training assets: one model per baseline, trained on the whole built dataset.

Not partitioned: a model sees every train and validation domain. Both run in the `gpu`
pool (limit 1 on the instance, see orchestration/run.py) so two trainings never share a GPU, with
a retry policy for the transient failures of long jobs (a preempted node, a CUDA hiccup);
bad input is not retried.
"""

from typing import Any

import dagster as dg

from flair_pipeline.defs.adapter import progress, project_failures, result
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.layout import ModelFiles
from flair_pipeline.model_registry import MODELS_BY_FOLDER, model_for_folder


def _train(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource, model: str, folder: str
) -> dg.MaterializeResult:
    from flair_pipeline.training.train import train_model  # torch: only when a run trains

    cfg = flair.load()
    out = ModelFiles.of(flair.models_dir(), folder).folder
    with project_failures():
        report = train_model(flair.dataset().root, out, cfg, model, progress=False)
    context.log.info(
        f"{model}: best validation mIoU {report.best_val_miou:.4f} after {report.epochs} epochs"
    )
    return result(context, report)


@dg.asset(
    deps=["split_assignment", "aerial_patches", "label_masks"],
    group_name="training",
    kinds={"numpy"},
    description="The packed training input (`<paths.dataset>/packed/`): each split's IMG "
    "(N×5×H×W uint8) and merged MSK (N×H×W uint8, classes 0..12) as uncompressed memory-mapped "
    ".npy arrays, the encoded metadata, an index of patches with their Sentinel-2 super-area "
    "and centroid. Deterministic; training reads it instead of the GeoTIFFs when current.",
)
def packed_training_input(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult:
    """Asset: the packed training input (its ``description`` says what it writes)."""
    from flair_pipeline.training.packing import pack_source

    with project_failures():
        report = pack_source(flair.dataset().root, progress=progress(context))
    context.log.info(f"packed {report.counts} patches into {report.root}")
    return result(context, report)


#: Keyword arguments shared by the training assets' @dg.asset.
_COMMON: dict[str, Any] = dict(
    group_name="training",
    pool="gpu",
    retry_policy=dg.RetryPolicy(max_retries=1, delay=30),
    kinds={"pytorch", "lightning"},
)


@dg.asset(
    deps=["split_assignment", "aerial_patches", "label_masks", "packed_training_input"],
    description="U-Net ResNet34 (smp, 5 channels, 13 classes; with the metadata branch when "
    "train.model is unet-meta) trained with Lightning: checkpoints (best validation mIoU, "
    "last), CSV/TensorBoard logs, training curves, report.json in `<paths.models>/unet/`.",
    **_COMMON,
)
def model_unet(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult:
    """Asset: the U-Net baseline (or U-Net with metadata) trained (its ``description`` says what it writes)."""
    spec = model_for_folder("unet", flair.load().train.model)  # unet or unet-meta
    return _train(context, flair, spec.name, spec.folder)


@dg.asset(
    deps=[
        "split_assignment",
        "aerial_patches",
        "label_masks",
        "sentinel2_index",
        "packed_training_input",
    ],
    description="U-T&T: the U-Net fused with a U-TAE encoding of the 40×40 px Sentinel-2 "
    "window around each patch (FLAIR-2), trained with Lightning; outputs in "
    "`<paths.models>/utt/`.",
    **_COMMON,
)
def model_utt(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult:
    """Asset: U-T&T trained (its ``description`` says what it writes)."""
    spec = MODELS_BY_FOLDER["utt"]
    return _train(context, flair, spec.name, spec.folder)
