"""`train --resume` with loader workers reproduces the uninterrupted run (issue 30).

With ``num_workers: 2`` (the shipped value) the loaders keep persistent workers whose base
seed the DataLoader draws from its generator when its first iterator is made: a resumed
run used to draw it again from the generator restored from the checkpoint, which moved
every later shuffle (best val mIoU 0.0986 vs 0.1010 in the issue). And Lightning's CSV
logger deleted ``logs/metrics.csv`` on resume, losing the epochs before it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from flair_pipeline.training.train import train_model
from tests.training.conftest import config

WORKERS = ("train.num_workers=2", "train.augment=true")


def _state(path: str) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "logs" / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_resume_with_workers_gives_the_uninterrupted_weights_and_log(
    tiny_dataset, tmp_path: Path
) -> None:
    dataset, params = tiny_dataset
    whole = train_model(
        dataset, tmp_path / "whole", config(params, "train.epochs=3", *WORKERS), "unet",
        progress=False,
    )  # fmt: skip
    out = tmp_path / "stopped"
    first = train_model(
        dataset, out, config(params, "train.epochs=1", *WORKERS), "unet", progress=False
    )
    assert first.steps == 3
    resumed = train_model(
        dataset, out, config(params, "train.epochs=3", *WORKERS), "unet", resume=True,
        progress=False,
    )  # fmt: skip
    assert (resumed.epochs, resumed.steps) == (whole.epochs, whole.steps) == (3, 9)

    a, b = _state(whole.last_checkpoint), _state(resumed.last_checkpoint)
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, first {differ[:3]}"
    assert resumed.best_val_miou == whole.best_val_miou

    # metrics.csv: Lightning writes a validation row and a training row per epoch, and
    # after the resume every epoch is there once, with the uninterrupted run's values
    rows, rows_whole = _rows(out), _rows(tmp_path / "whole")
    assert [r["epoch"] for r in rows_whole] == ["0", "0", "1", "1", "2", "2"]
    assert rows == rows_whole
