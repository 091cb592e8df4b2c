"""FLAIR's metric: one 13 x 13 confusion matrix summed over all patches, and what follows.

FLAIR's metric (FLAIR #1 datapaper, Garioud et al. 2022, arXiv:2211.12979): IoU_c = TP / (TP + FP + FN) from the matrix summed over *all* test patches (not
a mean of per-patch IoUs, which would over-weight small, easy patches); mIoU is the mean
over classes 1..12 (indices 0..11), "other" (index 12) being excluded as in the paper;
overall accuracy and per-class precision, recall, F1 and support come from the same matrix.

Undefined values are NaN, never 0: a class absent from both truth and prediction has no
IoU (0/0), and is left out of the mIoU instead of dragging it down or up. Likewise a class
never predicted has NaN precision, and one absent from the truth NaN recall. In JSON a NaN
is written as ``null`` (JSON has no NaN).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from flair_pipeline.domains import is_domain_id
from flair_pipeline.nomenclature import INVALID, MERGED_NAMES, N_CLASSES_MERGED, OTHER_INDEX

#: Class indices the mIoU averages over: codes 1..12, "other" excluded (FLAIR #1 datapaper, Garioud et al. 2022).
MIOU_CLASSES: tuple[int, ...] = tuple(i for i in range(N_CLASSES_MERGED) if i != OTHER_INDEX)


def confusion_matrix(
    truth: np.ndarray, pred: np.ndarray, n_classes: int = N_CLASSES_MERGED
) -> np.ndarray:
    """(n, n) int64 counts, rows = truth, columns = prediction, of merged class indices.

    Pixels whose truth or prediction is INVALID (255) or otherwise outside 0..n-1 are
    ignored. One bincount over ``truth * n + pred`` is ~20x faster than sklearn's
    confusion_matrix, which matters when summing tens of thousands of 512² patches.

    Args:
        truth: Merged class indices of the reference, any shape.
        pred: Merged class indices predicted, the same number of pixels.
        n_classes: n (13 after FLAIR's merge).

    Returns:
        int64 (n, n) pixel counts.

    Raises:
        ValueError: `truth` and `pred` hold different numbers of pixels.
    """
    t = np.asarray(truth).ravel()
    p = np.asarray(pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"truth has {t.size} pixels, prediction {p.size}")
    keep = (t < n_classes) & (p < n_classes)
    if t.dtype.kind == "i" or p.dtype.kind == "i":
        keep &= (t >= 0) & (p >= 0)
    if not keep.all():
        t, p = t[keep], p[keep]
    flat = t.astype(np.int64) * n_classes + p.astype(np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


@dataclass
class Scores:
    """Scores of one confusion matrix, optionally with the same per domain.

    Arrays are indexed by merged class index (0..12); `names` labels them.
    """

    matrix: np.ndarray
    iou: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    miou: float
    overall_accuracy: float
    names: tuple[str, ...] = MERGED_NAMES
    n_patches: int = 0
    per_domain: dict[str, Scores] = field(default_factory=dict)

    @classmethod
    def from_confusion(
        cls,
        matrix: np.ndarray,
        *,
        n_patches: int = 0,
        per_domain: Mapping[str, tuple[np.ndarray, int]] | None = None,
        names: Sequence[str] = MERGED_NAMES,
    ) -> Scores:
        """Scores of `matrix`; `per_domain` maps a domain to its (matrix, n_patches).

        Args:
            matrix: (n, n) pixel counts, rows = truth, columns = prediction.
            n_patches: Patches the matrix sums.
            per_domain: Domain -> (its matrix, its patch count), for the per-domain table.
            names: The n class names.

        Returns:
            IoU, F1, precision, recall per class, mIoU over classes 1..12 (``other``
            excluded) and overall accuracy; NaN where undefined (a class absent from truth and
            prediction).

        Raises:
            ValueError: `matrix` is not (n, n) for the n `names`.
        """
        m = np.asarray(matrix, dtype=np.int64)
        if m.shape != (len(names), len(names)):
            raise ValueError(f"confusion matrix is {m.shape}, expected {len(names)} classes")
        tp = np.diag(m).astype(np.float64)
        support = m.sum(axis=1)  # truth pixels per class
        predicted = m.sum(axis=0)
        fp, fn = predicted - tp, support - tp
        iou = _ratio(tp, tp + fp + fn)
        miou_idx = [i for i in MIOU_CLASSES if i < len(names)]
        total = m.sum()
        return cls(
            matrix=m,
            iou=iou,
            precision=_ratio(tp, predicted.astype(np.float64)),
            recall=_ratio(tp, support.astype(np.float64)),
            f1=_ratio(2 * tp, 2 * tp + fp + fn),
            support=support,
            miou=_nanmean(iou[miou_idx]),
            overall_accuracy=float(tp.sum() / total) if total else math.nan,
            names=tuple(names),
            n_patches=n_patches,
            per_domain={
                d: cls.from_confusion(dm, n_patches=n, names=names)
                for d, (dm, n) in sorted((per_domain or {}).items())
            },
        )

    def to_dict(self) -> dict[str, object]:
        """The metrics.json structure; NaN (undefined) becomes None (JSON null).

        Returns:
            ``miou``, ``overall_accuracy``, ``n_patches``, ``per_class`` (IoU, F1, precision,
            recall, support by class name) and ``per_domain``.
        """
        return {
            "miou": _clean(self.miou),
            "overall_accuracy": _clean(self.overall_accuracy),
            "n_patches": self.n_patches,
            "per_class": {
                name: {
                    "iou": _clean(self.iou[i]),
                    "f1": _clean(self.f1[i]),
                    "precision": _clean(self.precision[i]),
                    "recall": _clean(self.recall[i]),
                    "support": int(self.support[i]),
                }
                for i, name in enumerate(self.names)
            },
            "per_domain": {
                d: {
                    "miou": _clean(s.miou),
                    "overall_accuracy": _clean(s.overall_accuracy),
                    "n_patches": s.n_patches,
                    "per_class": {n: _clean(s.iou[i]) for i, n in enumerate(s.names)},
                }
                for d, s in self.per_domain.items()
            },
        }


class ConfusionAccumulator:
    """Sums confusion matrices patch by patch, overall and per domain, in bounded memory."""

    def __init__(self, n_classes: int = N_CLASSES_MERGED) -> None:
        self.n_classes = n_classes
        self.total = np.zeros((n_classes, n_classes), dtype=np.int64)
        self.domains: dict[str, np.ndarray] = {}
        self.patches: dict[str, int] = {}
        self.n_patches = 0

    def add(self, truth: np.ndarray, pred: np.ndarray, domain: str | None = None) -> None:
        """Add one patch of merged class indices (INVALID pixels ignored)."""
        m = confusion_matrix(truth, pred, self.n_classes)
        self.total += m
        self.n_patches += 1
        if domain is not None:
            if domain not in self.domains:
                self.domains[domain] = np.zeros_like(self.total)
                self.patches[domain] = 0
            self.domains[domain] += m
            self.patches[domain] += 1

    def scores(self, names: Sequence[str] = MERGED_NAMES) -> Scores:
        """Scores of everything added so far.

        Args:
            names: The class names.

        Returns:
            Scores of the summed matrix, with the per-domain breakdown.
        """
        per = {d: (m, self.patches[d]) for d, m in self.domains.items()}
        return Scores.from_confusion(
            self.total, n_patches=self.n_patches, per_domain=per, names=names
        )


def domain_of(path: str | Path) -> str | None:
    """The ``D0xx_YYYY`` folder a patch lies under (FLAIR release layout), or None.

    Args:
        path: A patch file's path.

    Returns:
        The nearest parent folder named like a domain id, or None.
    """
    for part in reversed(PurePath(path).parts[:-1]):
        if is_domain_id(part):
            return part
    return None


def scored_iou(matrix: np.ndarray, scored: Sequence[int]) -> tuple[np.ndarray, float]:
    """FLAIR-HUB's IoU per class and mIoU over the scored classes of a confusion matrix.

    As IGN's ``src/flair_hub/writer/metrics_utils.py`` (``compute_and_save_metrics``) and
    ``metrics_core.py`` (``class_IoU``) compute them: the matrix is restricted to the
    scored classes (rows *and* columns: pixels of an unscored class, true or predicted,
    leave the count), IoU_c = TP / (TP + FP + FN) on that sub-matrix, an undefined IoU
    (class absent from truth and prediction) counts 0, and the mIoU is the plain mean over
    the scored classes. (FLAIR #1's :class:`Scores` leaves undefined classes out instead.)

    Args:
        matrix: (n, n) pixel counts, rows = truth, columns = prediction.
        scored: Indices of the scored classes (FLAIR-HUB: class weight > 0), ascending.

    Returns:
        (float64 IoU per scored class in [0, 1], in the order of `scored`; the mIoU, NaN
        when nothing is scored).

    Raises:
        ValueError: `matrix` is not square or a scored index is outside it.
    """
    m = np.asarray(matrix, dtype=np.float64)
    idx = [int(i) for i in scored]
    if m.ndim != 2 or m.shape[0] != m.shape[1] or any(not 0 <= i < m.shape[0] for i in idx):
        raise ValueError(f"confusion matrix {m.shape} and scored classes {idx} do not fit")
    sub = m[np.ix_(idx, idx)]
    tp = np.diag(sub)
    iou = np.nan_to_num(_ratio(tp, sub.sum(0) + sub.sum(1) - tp), nan=0.0)
    return iou, float(iou.mean()) if idx else math.nan


__all__ = [
    "INVALID",
    "MIOU_CLASSES",
    "ConfusionAccumulator",
    "Scores",
    "confusion_matrix",
    "domain_of",
    "scored_iou",
]
