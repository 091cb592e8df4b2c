"""Evaluation assets: each trained model on the test split, and one comparison table."""

import json
from typing import Any

import dagster as dg

from flair_pipeline.defs.resources import FlairConfig
from flair_pipeline.errors import FlairPipelineError, InputError
from flair_pipeline.layout import EvalFiles, ModelFiles, comparison
from flair_pipeline.model_registry import MODELS_BY_FOLDER, TRAINED
from flair_pipeline.plots import markdown_image

EVALUATED = tuple(m.folder for m in TRAINED)


def _evaluate(
    context: dg.AssetExecutionContext, flair: FlairConfig, folder: str
) -> dg.MaterializeResult:
    from flair_pipeline.evaluation.split_eval import evaluate_checkpoint  # torch: lazily

    cfg = flair.load()
    ckpt = ModelFiles.of(flair.models_dir(), folder).best
    try:
        report = evaluate_checkpoint(
            ckpt,
            flair.dataset().root,
            EvalFiles.of(flair.eval_dir(), folder).folder,
            batch_size=cfg.eval.batch_size,
        )
    except FlairPipelineError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    s = report.scores
    context.log.info(f"{folder}: test mIoU {s.miou:.4f} on {s.n_patches} patches")
    rows = ["| class | IoU | F1 | support |", "|---|---|---|---|"]
    rows += [
        f"| {n} | {s.iou[i]:.4f} | {s.f1[i]:.4f} | {int(s.support[i])} |"
        for i, n in enumerate(s.names)
    ]
    figures = markdown_image(report.confusion_png.read_bytes(), "confusion (row-normalised)")
    figures += "\n\n" + markdown_image(report.patches_png.read_bytes(), "test patches")
    return dg.MaterializeResult(
        metadata={
            "miou": dg.MetadataValue.float(float(s.miou)),
            "overall_accuracy": dg.MetadataValue.float(float(s.overall_accuracy)),
            "test_patches": s.n_patches,
            "per_class_iou": dg.MetadataValue.md("\n".join(rows)),
            "per_domain_miou": {d: round(float(x.miou), 4) for d, x in s.per_domain.items()},
            "figures": dg.MetadataValue.md(figures),
            "metrics": dg.MetadataValue.path(str(report.metrics_json)),
        }
    )


#: Keyword arguments shared by the evaluation assets' @dg.asset.
_COMMON: dict[str, Any] = dict(group_name="evaluation", kinds={"pytorch", "json"})


@dg.asset(
    deps=["model_unet", "split_assignment", "aerial_patches", "label_masks"],
    description="U-Net on the test split: `PRED_<id>.tif` maps, metrics.json (FLAIR mIoU over "
    "classes 1-12, per-class IoU/F1, per domain), confusion.csv/png, per_domain.csv, a "
    "figure of test patches; in `<paths.eval>/unet/`.",
    **_COMMON,
)
def evaluation_unet(context: dg.AssetExecutionContext, flair: FlairConfig) -> dg.MaterializeResult:
    """Asset: the U-Net evaluated on the test split (its ``description`` says what it writes)."""
    return _evaluate(context, flair, MODELS_BY_FOLDER["unet"].folder)


@dg.asset(
    deps=["model_utt", "split_assignment", "aerial_patches", "label_masks", "sentinel2_index"],
    description="U-T&T on the test split; same artifacts as evaluation_unet in `<paths.eval>/utt/`.",
    **_COMMON,
)
def evaluation_utt(context: dg.AssetExecutionContext, flair: FlairConfig) -> dg.MaterializeResult:
    """Asset: U-T&T evaluated on the test split (its ``description`` says what it writes)."""
    return _evaluate(context, flair, MODELS_BY_FOLDER["utt"].folder)


def comparison_table(metrics: dict[str, dict]) -> str:
    """Markdown: one column per model, one row per class (IoU), then mIoU and OA."""
    models = list(metrics)
    names = list(next(iter(metrics.values()))["per_class"])
    head = "| class | " + " | ".join(models) + " |"
    lines = [head, "|---" * (len(models) + 1) + "|"]

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    for n in names:
        lines.append(
            f"| {n} | " + " | ".join(cell(metrics[m]["per_class"][n]["iou"]) for m in models) + " |"
        )
    lines.append(
        "| **mIoU (1-12)** | "
        + " | ".join(f"**{cell(metrics[m]['miou'])}**" for m in models)
        + " |"
    )
    lines.append(
        "| overall accuracy | "
        + " | ".join(cell(metrics[m]["overall_accuracy"]) for m in models)
        + " |"
    )
    return "\n".join(lines) + "\n"


@dg.asset(
    deps=[f"evaluation_{m}" for m in EVALUATED],
    group_name="evaluation",
    kinds={"markdown"},
    description="One table of every evaluated model: per-class IoU, mIoU, overall accuracy "
    "(`<paths.eval>/comparison.md`).",
)
def model_comparison(context: dg.AssetExecutionContext, flair: FlairConfig) -> dg.MaterializeResult:
    """Asset: the comparison table of the evaluated models (its ``description`` says what it writes)."""
    from flair_pipeline.evaluation.evaluate import write_text

    root = flair.eval_dir()
    metrics = {}
    for m in EVALUATED:
        f = EvalFiles.of(root, m).metrics
        if not f.is_file():
            raise dg.Failure(description=str(InputError(f"{f}: missing; materialize evaluation_{m}")),
                             allow_retries=False)  # fmt: skip
        metrics[m] = json.loads(f.read_text())
    table = comparison_table(metrics)
    path = write_text(comparison(root), table)
    context.log.info("\n" + table)
    return dg.MaterializeResult(
        metadata={"table": dg.MetadataValue.md(table), "path": dg.MetadataValue.path(str(path))}
    )
