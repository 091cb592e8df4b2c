"""Score a ``train-flair-hub`` checkpoint on a split of a FLAIR-HUB manifest.

The checkpoint carries its training config (``hub_config``): the split's patches go
through the same data pipeline (:class:`~flair_pipeline.training.hub_data.HubDataset`:
channels, elevation, date filter, downsample, labels) and
:func:`~flair_pipeline.evaluation.hub_scoring.score_hub` sums each task's confusion matrix,
overall and per domain, into FLAIR-HUB's metrics (mIoU over the scored classes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.hub_scoring import score_hub
from flair_pipeline.io import atomic_path
from flair_pipeline.progress import Progress, each
from flair_pipeline.reports import JSON, StageReport
from flair_pipeline.sources.flair_hub import HubRecord
from flair_pipeline.training.hub_config import HubTrainConfig
from flair_pipeline.training.hub_data import HubDataset
from flair_pipeline.training.hub_module import HubModule
from flair_pipeline.training.hub_train import hub_loader, hub_records


def load_hub_checkpoint(checkpoint: str | Path) -> tuple[HubModule, HubTrainConfig]:
    """The trained module of a checkpoint and the config it was trained with.

    Args:
        checkpoint: A ``train-flair-hub`` checkpoint (``best.ckpt`` / ``last.ckpt``).

    Returns:
        (module in evaluation mode on the GPU when present, its config).

    Raises:
        InputError: The file is missing, unreadable or not a FLAIR-HUB checkpoint.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        module = HubModule.load_from_checkpoint(path, map_location=device, weights_only=True)
    except (RuntimeError, KeyError, TypeError, OSError) as exc:
        raise InputError(f"{path}: not a train-flair-hub checkpoint ({exc})") from None
    raw = module.hparams.get("hub_config")
    if not raw:
        raise InputError(f"{path}: the checkpoint has no hub_config (not from train-flair-hub)")
    return module.eval(), HubTrainConfig.model_validate(raw)


def evaluate_hub(
    checkpoint: str | Path,
    records: Sequence[HubRecord],
    split: str = "test",
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """FLAIR-HUB's scores of a checkpoint on one split of the manifest's records.

    Args:
        checkpoint: The checkpoint.
        records: The manifest's records (every split; `split`'s are scored).
        split: ``train``, ``validation`` or ``test``.
        progress: Where to count the batches, or None.

    Returns:
        JSON-able: ``miou`` (mean over tasks), ``tasks`` (per task: ``miou``,
        ``overall_accuracy``, ``per_class``, ``unscored``, ``per_domain``, and
        ``confusion``, the K × K pixel counts over every class, rows truth), plus
        ``checkpoint``, ``split``, ``patches`` and ``left_out`` (patches lacking a file).

    Raises:
        InputError: No patch of the split has every file the config needs, or the
            checkpoint is unusable.
    """
    module, config = load_hub_checkpoint(checkpoint)
    dataset = HubDataset([r for r in records if r.split == split], config)
    if not dataset.records:
        raise InputError(
            f"no {split} patch with every file {checkpoint}'s config needs "
            f"({len(dataset.left_out)} left out)"
        )
    loader = hub_loader(dataset, config)
    batches: Iterator[dict[str, Any]] = each(progress, f"{split} batches", loader, "batches")
    report = score_hub(module, batches)
    out: dict[str, Any] = json.loads(report.to_json())
    for task, scores in report.tasks.items():
        out["tasks"][task]["confusion"] = scores.matrix.tolist()
    out |= {
        "checkpoint": str(checkpoint),
        "split": split,
        "patches": len(dataset),
        "left_out": dataset.left_out,
    }
    return out


def format_hub_report(report: dict[str, Any]) -> str:
    """A short human summary of :func:`evaluate_hub`'s report.

    Args:
        report: The report.

    Returns:
        One line per task (mIoU, overall accuracy, patches), one per domain.
    """
    lines = [f"{report['split']}: {report['patches']} patches, mIoU {_pct(report['miou'])}"]
    for task, s in report["tasks"].items():
        lines.append(
            f"  {task}: mIoU {_pct(s['miou'])}, overall accuracy {_pct(s['overall_accuracy'])} "
            f"over {len(s['per_class'])} scored classes"
        )
        for domain, d in s["per_domain"].items():
            lines.append(f"    {domain}: mIoU {_pct(d['miou'])}")
    lines.extend(f"warning: {line}" for line in report.get("left_out", []))
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


@dataclass(frozen=True)
class HubEvalReport(StageReport):
    """What the ``evaluation_hub`` stage scored (its metrics.json)."""

    metrics: str
    miou: float
    patches: int
    tasks: Mapping[str, float]

    def as_metadata(self) -> dict[str, JSON]:
        """The test mIoU (mean over tasks, and per task) and the patches scored.

        Returns:
            ``miou``, ``tasks`` (task -> mIoU), ``patches`` and the ``metrics`` file.
        """
        return {
            "miou": self.miou,
            "tasks": dict(self.tasks),
            "patches": self.patches,
            "metrics": self.metrics,
        }


def evaluate_hub_metrics(
    checkpoint: str | Path,
    manifest: str | Path,
    out_json: str | Path,
    split: str = "test",
    *,
    progress: Progress | None = None,
) -> HubEvalReport:
    """The ``evaluation_hub`` stage: :func:`evaluate_hub` written as DVC metrics.

    Args:
        checkpoint: The ``model_hub`` checkpoint.
        manifest: The ``hub_release`` manifest.
        out_json: The metrics file (``<paths.eval>/hub/metrics.json``): the report of
            :func:`evaluate_hub`, each task's confusion matrix left out (K × K lists are
            not metrics) and ``left_out`` as a count.
        split: The split scored.
        progress: Where to count the batches, or None.

    Returns:
        The stage's report.

    Raises:
        InputError: As :func:`evaluate_hub`.
    """
    report = evaluate_hub(checkpoint, hub_records(manifest), split, progress=progress)
    for scores in report["tasks"].values():
        scores.pop("confusion", None)
    report["left_out"] = len(report["left_out"])
    out = Path(out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    return HubEvalReport(
        str(out),
        float(report["miou"]),
        int(report["patches"]),
        {t: float(v["miou"]) for t, v in report["tasks"].items()},
    )
