"""A checkpoint with a code payload runs nothing at any door that reads checkpoints.

The hostile file is a real checkpoint written by ``train_model`` with one extra object
whose ``__reduce__`` calls ``os.system("touch <marker>")``; the test first proves the
payload is live (an unsafe ``torch.load`` creates the marker), then feeds the file to
``flair-pipeline predict``, ``flair-pipeline train --resume`` (real console script,
subprocess) and to the evaluation of a split, and checks that the marker never appears,
the exit code is non-zero and the error is one line naming the file (issue 30).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.checkpoint_eval import evaluate_checkpoint
from flair_pipeline.training.checkpoint import load_inference
from flair_pipeline.training.train import train_model
from tests.conftest import REPO
from tests.training.conftest import config


class Payload:
    """Pickled as a call of ``os.system``: what a hostile checkpoint hides."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory) -> Path:
    """A one-epoch unet run of the tiny dataset: its output folder."""
    dataset, params = tiny_dataset
    out = tmp_path_factory.mktemp("evil") / "unet"
    train_model(dataset, out, config(params, "train.epochs=1"), "unet", progress=False)
    return out


def _evil(real: Path, path: Path, marker: Path) -> Path:
    """`real`'s contents with the payload among its hyper-parameters, saved at `path`."""
    ckpt = torch.load(real, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["stats"]["note"] = Payload(marker)
    torch.save(ckpt, path)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("flair-pipeline", path=str(Path(sys.executable).parent))
    assert exe, "console script flair-pipeline not installed"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    # the escape hatch torch offers must not reopen the hole: our reads say weights_only=True
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    return subprocess.run(
        [exe, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def _one_line_naming(stderr: str, path: Path) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    line = errors[0]
    assert str(path) in line and "refused" in line and "posix.system" in line, line
    assert "flair-pipeline train" in line, line  # what to do


def test_the_payload_is_live(trained, tmp_path) -> None:
    """Guard for the tests below: the hostile file really runs code when loaded unsafely."""
    marker = tmp_path / "ran"
    evil = _evil(trained / "checkpoints" / "last.ckpt", tmp_path / "evil.ckpt", marker)
    torch.load(evil, map_location="cpu", weights_only=False)
    assert marker.exists()


def test_predict_runs_nothing(trained, tmp_path) -> None:
    marker = tmp_path / "ran"
    evil = _evil(trained / "checkpoints" / "best.ckpt", tmp_path / "evil.ckpt", marker)
    r = _cli(
        "predict", "--checkpoint", str(evil), "--image", str(evil), "--out", str(tmp_path / "m.tif")
    )
    assert not marker.exists(), "the checkpoint's payload ran"
    assert r.returncode != 0
    _one_line_naming(r.stderr, evil)
    assert not (tmp_path / "m.tif").exists()


def test_resume_runs_nothing(trained, tiny_dataset, tmp_path) -> None:
    dataset, params = tiny_dataset
    marker = tmp_path / "ran"
    out = tmp_path / "unet"
    (out / "checkpoints").mkdir(parents=True)
    evil = _evil(trained / "checkpoints" / "last.ckpt", out / "checkpoints" / "last.ckpt", marker)
    r = _cli(
        "train", "--model", "unet", "--config", str(params), "--data", str(dataset),
        "--out", str(out), "--resume", "--set", "train.epochs=2",
    )  # fmt: skip
    assert not marker.exists(), "the checkpoint's payload ran"
    assert r.returncode != 0
    _one_line_naming(r.stderr, evil)
    assert evil.is_file() and not (out / "report.json").exists()


def test_evaluation_runs_nothing(trained, tiny_dataset, tmp_path) -> None:
    dataset, _ = tiny_dataset
    marker = tmp_path / "ran"
    evil = _evil(trained / "checkpoints" / "best.ckpt", tmp_path / "evil.ckpt", marker)
    with pytest.raises(InputError) as err:
        evaluate_checkpoint(evil, dataset, tmp_path / "eval", split="validation")
    assert not marker.exists(), "the checkpoint's payload ran"
    message = str(err.value)
    assert "\n" not in message and str(evil) in message and "refused" in message


def test_the_project_checkpoints_load_safely(trained) -> None:
    """Nothing in a checkpoint the project writes needs more than the safe unpickler."""
    for name in ("best.ckpt", "last.ckpt"):
        path = trained / "checkpoints" / name
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
        inf = load_inference(path)
        saved = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.equal(v, saved[k]) for k, v in inf.module.state_dict().items())
