"""Score a FLAIR-HUB model as FLAIR-HUB reports it: mIoU over the scored classes, per task and domain.

The metrics are IGN's (``src/flair_hub/writer/metrics_utils.py``, ``metrics_core.py``,
IGNF/FLAIR-HUB 3d5693b): one confusion matrix per task summed over every patch, restricted
to the *scored* classes (class weight > 0, so COSIA's 15-18 are left out), IoU, precision,
recall and F-score per class with undefined values counted 0, their plain means, and the
overall accuracy of the restricted matrix (:func:`flair_pipeline.metrics.scored_iou`). The
same metrics are computed per domain (``batch["domain"]``). Values are fractions in [0, 1]:
x 100 gives FLAIR-HUB's published figures (LC-A 64.1, LC-L 65.8, LPIS-I 39.2 mIoU).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from flair_pipeline.metrics import confusion_matrix, scored_iou
from flair_pipeline.models.hub_inputs import LPIS_L1_NAMES, TASKS
from flair_pipeline.sources.flair_hub_layout import COSIA_NAMES
from flair_pipeline.training.hub_module import HubModule

#: Class names of each task (:data:`~flair_pipeline.models.hub_inputs.TASKS`' order).
TASK_CLASS_NAMES: dict[str, tuple[str, ...]] = dict(
    zip(TASKS, (COSIA_NAMES, LPIS_L1_NAMES), strict=True)
)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """The ratio num / den, 0 where den is 0 (IGN's ``nan -> 0``).

    Returns:
        float64 array.
    """
    out = np.zeros(num.shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


@dataclass
class TaskScores:
    """FLAIR-HUB's metrics of one confusion matrix of one task.

    Attributes:
        matrix: (K, K) int64 pixel counts of every class (rows truth, columns prediction).
        scored: Indices of the scored classes.
        names: The K class names.
        n_patches: Patches with at least one labelled pixel for the task.
    """

    matrix: np.ndarray
    scored: tuple[int, ...]
    names: tuple[str, ...]
    n_patches: int = 0
    per_domain: dict[str, TaskScores] = field(default_factory=dict)

    @property
    def iou(self) -> np.ndarray:
        """IoU of each scored class (float64, in :attr:`scored`'s order)."""
        return scored_iou(self.matrix, self.scored)[0]

    @property
    def miou(self) -> float:
        """The mean IoU over the scored classes (NaN when none is scored)."""
        return scored_iou(self.matrix, self.scored)[1]

    def _sub(self) -> np.ndarray:
        """The matrix restricted to the scored classes (float64).

        Returns:
            (S, S) counts.
        """
        idx = list(self.scored)
        return np.asarray(self.matrix, dtype=np.float64)[np.ix_(idx, idx)]

    def to_dict(self) -> dict[str, Any]:
        """The JSON structure: mIoU, OA, per-class metrics by name, per-domain ones.

        Returns:
            ``miou``, ``overall_accuracy``, ``n_patches``, ``per_class`` (``iou``,
            ``precision``, ``recall``, ``fscore``, ``support`` for each scored class),
            ``unscored`` (the names left out), ``per_domain`` (the same, by domain).
        """
        sub = self._sub()
        tp = np.diag(sub)
        precision, recall = _ratio(tp, sub.sum(0)), _ratio(tp, sub.sum(1))
        fscore = _ratio(2 * precision * recall, precision + recall)
        total = sub.sum()
        iou = self.iou
        return {
            "miou": self.miou,
            "overall_accuracy": float(tp.sum() / total) if total else 0.0,
            "n_patches": self.n_patches,
            "per_class": {
                self.names[c]: {
                    "iou": float(iou[j]),
                    "precision": float(precision[j]),
                    "recall": float(recall[j]),
                    "fscore": float(fscore[j]),
                    "support": int(sub[j].sum()),
                }
                for j, c in enumerate(self.scored)
            },
            "unscored": [n for i, n in enumerate(self.names) if i not in self.scored],
            "per_domain": {d: s.to_dict() for d, s in sorted(self.per_domain.items())},
        }


@dataclass
class HubReport:
    """The scores of every task of a model (:func:`score_hub`)."""

    tasks: dict[str, TaskScores]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: ``{"tasks": {task: TaskScores.to_dict()}, "miou": mean over tasks}``.

        Returns:
            The report as plain dicts and floats.
        """
        mious = [s.miou for s in self.tasks.values()]
        return {
            "miou": float(np.mean(mious)) if mious else 0.0,
            "tasks": {t: s.to_dict() for t, s in self.tasks.items()},
        }

    def to_json(self) -> str:
        """The report as indented JSON (NaN written as ``null``).

        Returns:
            The JSON text.
        """
        return json.dumps(_no_nan(self.to_dict()), indent=2)


def _no_nan(obj: Any) -> Any:
    """`obj` with float NaNs replaced by None (JSON has no NaN).

    Returns:
        The cleaned structure.
    """
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_no_nan(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors moved to `device` (other values as they are).

    Returns:
        A new dict.
    """
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _names(task: str, k: int) -> tuple[str, ...]:
    """The class names of `task` when they are known and K of them, else ``"0"``..``"K-1"``.

    Returns:
        K names.
    """
    names = TASK_CLASS_NAMES.get(task, ())
    return names if len(names) == k else tuple(str(i) for i in range(k))


def score_hub(module: HubModule, batches: Iterable[Mapping[str, Any]]) -> HubReport:
    """Predict every batch and sum each task's confusion, overall and per domain.

    Args:
        module: The trained module (its model, tasks and scored classes are used); it is
            put in evaluation mode for the run and restored afterwards.
        batches: Contract batches (:mod:`flair_pipeline.models.hub_inputs`) with each
            task's labels (int64 B×H×W, IGNORE not scored) and ``domain`` (B strings).

    Returns:
        The report, one :class:`TaskScores` per task of the model.

    Raises:
        ValueError: A batch lacks a task's labels or its ``domain`` list.
    """
    tasks = dict(module.tasks)
    total = {t: np.zeros((k, k), dtype=np.int64) for t, k in tasks.items()}
    domains: dict[str, dict[str, np.ndarray]] = {t: {} for t in tasks}
    patches = {t: 0 for t in tasks}
    dom_patches: dict[str, dict[str, int]] = {t: {} for t in tasks}
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                missing = [k for k in (*tasks, "domain") if k not in batch]
                if missing:
                    raise ValueError(f"score_hub: a batch lacks {missing}")
                out = module(_to_device(batch, module.device))
                for t, k in tasks.items():
                    pred = out[t].argmax(1).cpu().numpy()
                    truth = batch[t].cpu().numpy()
                    for i, domain in enumerate(batch["domain"]):
                        m = confusion_matrix(truth[i], pred[i], k)
                        if not m.any():
                            continue
                        total[t] += m
                        patches[t] += 1
                        d = str(domain)
                        domains[t].setdefault(d, np.zeros_like(m))[...] += m
                        dom_patches[t][d] = dom_patches[t].get(d, 0) + 1
    finally:
        module.train(was_training)
    return HubReport(
        {
            t: _task_scores(t, total[t], module.scored[t], patches[t], domains[t], dom_patches[t])
            for t in tasks
        }
    )


def _task_scores(
    task: str,
    matrix: np.ndarray,
    scored: Sequence[int],
    n: int,
    per_domain: Mapping[str, np.ndarray],
    per_domain_n: Mapping[str, int],
) -> TaskScores:
    """One task's :class:`TaskScores` with its per-domain ones.

    Returns:
        The scores.
    """
    names = _names(task, matrix.shape[0])
    sc = tuple(int(i) for i in scored)
    return TaskScores(
        matrix=matrix,
        scored=sc,
        names=names,
        n_patches=n,
        per_domain={
            d: TaskScores(matrix=m, scored=sc, names=names, n_patches=per_domain_n[d])
            for d, m in per_domain.items()
        },
    )
