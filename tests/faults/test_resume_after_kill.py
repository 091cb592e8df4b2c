"""`train --resume` after a real SIGKILL mid-epoch reproduces the uninterrupted run.

The child process trains with the very code of the CLI; a hook planted in the child only
announces that epoch 1 has reached its second batch, then waits to be killed. The parent
sends SIGKILL (no handler, no flush), resumes from what is on disk, and compares the final
weights, scheduler state and curves with an uninterrupted run of the same config.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from flair_pipeline.layout import ModelFiles
from flair_pipeline.training.tracking import epoch_series
from flair_pipeline.training.train import train_model
from tests.training.conftest import config

OVERRIDES = ("train.epochs=2", "train.scheduler=plateau", "train.augment=true")

CHILD = """
import sys, time
from pathlib import Path
from flair_pipeline.config import load_config
from flair_pipeline.training.module import FlairModule
from flair_pipeline.training.train import train_model

dataset, params, out, marker = sys.argv[1:5]
step = FlairModule.training_step

def training_step(self, batch, i):
    if self.current_epoch == 1 and i == 1:
        Path(marker).write_text("epoch 1, batch 1")
        time.sleep(600)  # the parent kills us here
    return step(self, batch, i)

FlairModule.training_step = training_step
train_model(dataset, out, load_config(params, sys.argv[5:]), "unet", progress=False)
"""


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _plateau(path: Path) -> dict:
    """The ReduceLROnPlateau state, wherever the checkpoint keeps it."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt.get("plateau_scheduler") or ckpt["lr_schedulers"][0]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _run_and_kill(dataset: Path, params: Path, out: Path) -> None:
    marker = out.parent / f"{out.name}.reached"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(dataset), str(params), str(out), str(marker), *OVERRIDES],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert child.poll() is None, f"child exited with {child.returncode} before the kill"
            assert time.monotonic() < deadline, "child never reached epoch 1"
            time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_resume_after_sigkill_gives_the_uninterrupted_weights(tiny_dataset, tmp_path) -> None:
    dataset, params = tiny_dataset
    cfg = config(params, *OVERRIDES)
    whole = train_model(dataset, tmp_path / "whole", cfg, "unet", progress=False)

    killed = tmp_path / "killed"
    _run_and_kill(dataset, params, killed)
    # on disk after the kill: the end-of-epoch-0 checkpoint, no curves written yet
    saved = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["epoch"] == 0
    assert not (killed / "curves.png").exists()

    resumed = train_model(dataset, killed, cfg, "unet", resume=True, progress=False)
    assert (resumed.epochs, resumed.steps) == (whole.epochs, whole.steps) == (2, 6)

    a = _weights(Path(whole.last_checkpoint))
    b = _weights(Path(resumed.last_checkpoint))
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} tensors differ, first {differ[:3]}"

    full, again = _plateau(Path(whole.last_checkpoint)), _plateau(Path(resumed.last_checkpoint))
    assert full == again
    assert full["last_epoch"] == 2  # stepped once per epoch

    # DVCLive's per-epoch rows: epoch 0 kept through the kill, each epoch once
    for key in ("train_loss", "val_loss", "val_miou"):
        rows_whole = epoch_series(ModelFiles(tmp_path / "whole"), key)
        rows_resumed = epoch_series(ModelFiles(killed), key)
        assert list(rows_resumed) == [0, 1], key
        assert rows_resumed == rows_whole, key
