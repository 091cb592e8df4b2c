"""Training curves as a PNG for the Dagster UI (the asset's metadata).

Lightning's CSVLogger writes one row per logging call with sparse columns; this folds
them into one row per epoch. DVC's view of the same curves (`dvc plots show`, `dvc exp
show`) is DVCLive's (training/tracking.py): this module only draws what DVCLive does not,
a figure for the UI.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from flair_pipeline.io import atomic_path
from flair_pipeline.layout import ModelFiles

COLUMNS = ("epoch", "train_loss", "val_loss", "val_miou")


def epoch_rows(metrics_csv: Path) -> list[dict[str, float]]:
    """One dict per epoch with the COLUMNS found (missing ones absent).

    Args:
        metrics_csv: Lightning's CSVLogger ``metrics.csv`` (may be absent).

    Returns:
        Rows sorted by epoch, values as floats; empty when the file is absent.
    """
    rows: dict[int, dict[str, float]] = {}
    if not metrics_csv.is_file():
        return []
    with metrics_csv.open(newline="") as f:
        for raw in csv.DictReader(f):
            if not raw.get("epoch"):
                continue
            e = int(float(raw["epoch"]))
            row = rows.setdefault(e, {"epoch": float(e)})
            for k in COLUMNS[1:]:
                v = raw.get(k)
                if v not in (None, ""):
                    row[k] = float(v)
    return [rows[e] for e in sorted(rows)]


def write_curves(
    metrics_csv: Path, out_dir: Path, title: str, prior: list[dict[str, float]] | None = None
) -> Path:
    """Draw ``curves.png`` into `out_dir` from the CSV logger's rows; return its path.

    Args:
        metrics_csv: Lightning's CSV logger file (``logs/metrics.csv``).
        out_dir: The model's folder.
        title: The figure's title (the model).
        prior: The epochs of an earlier run this one resumed; epochs logged again by
            this run replace them.

    Returns:
        The PNG's path.
    """
    merged = {int(r["epoch"]): r for r in prior or []}
    merged.update({int(r["epoch"]): r for r in epoch_rows(metrics_csv)})
    rows = [merged[e] for e in sorted(merged)]
    files = ModelFiles(out_dir)
    png_path = files.curves_png
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3))
    epochs = [r["epoch"] for r in rows]
    for key in ("train_loss", "val_loss"):
        ax1.plot(epochs, [r.get(key, math.nan) for r in rows], "-o", ms=2, label=key)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend(fontsize=7)
    ax2.plot(epochs, [r.get("val_miou", math.nan) for r in rows], "-o", ms=2, color="C2")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation mIoU")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return png_path
