"""Evaluation figures and tables: the confusion matrix (FLAIR Fig. 5), patch results (Fig. 6).

PNG bytes (matplotlib Agg) so they can be written to ``data/eval/<model>/`` and embedded in
Dagster metadata alike; CSV text for people who would rather open a spreadsheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np

from flair_pipeline.metrics import Scores
from flair_pipeline.nomenclature import MERGED_COLOURS, MERGED_NAMES
from flair_pipeline.plots import _png, patch_rows, pyplot

plt = pyplot()  # evaluation draws: matplotlib with this module


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the share of a true class going to each prediction).

    Rows of absent classes stay 0 instead of NaN so the figure shows them as empty.

    Args:
        matrix: (n, n) pixel counts, rows = truth, columns = prediction.

    Returns:
        float64 (n, n), each row summing to 1 (or all 0).
    """
    m = np.asarray(matrix, dtype=np.float64)
    sums = m.sum(axis=1, keepdims=True)
    shares: np.ndarray = np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)
    return shares


def confusion_png(matrix: np.ndarray, names: Sequence[str] = MERGED_NAMES) -> bytes:
    """Row-normalised confusion matrix with class names on both axes, shares annotated.

    Args:
        matrix: (n, n) pixel counts, rows = truth, columns = prediction.
        names: The n class names, in index order.

    Returns:
        PNG bytes.
    """
    norm = row_normalised(matrix)
    n = len(names)
    fig, ax = plt.subplots(figsize=(0.55 * n + 2.5, 0.55 * n + 1.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    for tick, colour in zip(
        [*ax.get_xticklabels(), *ax.get_yticklabels()], [*MERGED_COLOURS] * 2, strict=False
    ):
        tick.set_bbox({"facecolor": colour, "alpha": 0.25, "pad": 1, "edgecolor": "none"})
    for i in range(n):
        for j in range(n):
            if norm[i, j] >= 0.005:
                ax.text(
                    j,
                    i,
                    f"{norm[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    ax.set_xlabel("prediction")
    ax.set_ylabel("reference (truth)")
    ax.set_title("confusion matrix, normalised by rows", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _png(fig)


def confusion_csv(matrix: np.ndarray, names: Sequence[str] = MERGED_NAMES) -> str:
    r"""Raw pixel counts as CSV: header ``truth\pred,<names>``, one row per true class.

    Args:
        matrix: (n, n) pixel counts, rows = truth, columns = prediction.
        names: The n class names, in index order.

    Returns:
        The CSV text, integer counts.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["truth\\pred", *names])
    for name, row in zip(names, np.asarray(matrix), strict=True):
        w.writerow([name, *(int(v) for v in row)])
    return buf.getvalue()


def per_domain_csv(scores: Scores) -> str:
    """One row per domain: patches, mIoU, overall accuracy, IoU per class (empty if undefined).

    Args:
        scores: Scores with their per-domain breakdown.

    Returns:
        The CSV text, scores with 6 decimals.
    """

    def cell(x: float) -> str:
        return "" if np.isnan(x) else f"{x:.6f}"

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["domain", "n_patches", "miou", "overall_accuracy", *scores.names])
    for d, s in scores.per_domain.items():
        w.writerow(
            [d, s.n_patches, cell(s.miou), cell(s.overall_accuracy), *(cell(v) for v in s.iou)]
        )
    return buf.getvalue()


def _rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 from a (bands, H, W) image, stretched per band when it is dark.

    Args:
        image: (bands, H, W), first three bands R, G, B.

    Returns:
        float32 (H, W, 3) in 0..1, stretched between the 1st and 99th percentiles.
    """
    rgb = np.moveaxis(np.asarray(image)[:3], 0, -1).astype(np.float32)
    lo, hi = np.percentile(rgb, 1), np.percentile(rgb, 99)
    span = hi - lo if hi - lo >= 1.0 else 1.0  # max(hi - lo, 1.0), types kept
    stretched: np.ndarray = np.clip((rgb - lo) / span, 0, 1)
    return stretched


def patch_figure(
    images: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    preds: Sequence[np.ndarray],
    ids: Sequence[str],
) -> bytes:
    """Rows of (RGB image | truth | prediction) in FLAIR colours; maps hold codes 1..19.

    Args:
        images: IMG patches (bands, H, W), R, G, B first.
        truths: MSK codes (H, W).
        preds: Predicted codes (H, W).
        ids: Patch ids, one per row.

    Returns:
        PNG bytes.
    """
    return patch_rows(
        [
            [
                (_rgb(img), f"{pid}", "image"),
                (truth, "reference", "codes"),
                (pred, "prediction", "codes"),
            ]
            for img, truth, pred, pid in zip(images, truths, preds, ids, strict=True)
        ]
    )
