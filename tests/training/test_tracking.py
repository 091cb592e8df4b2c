"""Experiment tracking (training/tracking.py): DVCLive and MLflow observe a real training run.

Expected values come from the checkpoint: the curve rows its ResumeState callback took from
Lightning's callback metrics at each epoch end (training/resume.py), not from the loggers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from flair_pipeline.layout import ModelFiles
from flair_pipeline.training.resume import saved_curves
from flair_pipeline.training.tracking import epoch_series
from flair_pipeline.training.train import train_model
from tests.automation.dvc_repo import dvc, git
from tests.conftest import REPO
from tests.training.conftest import config

KEYS = ("train_loss", "val_loss", "val_miou")


def _expected(files: ModelFiles) -> dict[str, dict[int, float]]:
    """Metric -> epoch -> value, from the last checkpoint's curve rows."""
    rows = saved_curves(files.last)
    return {k: {int(r["epoch"]): r[k] for r in rows} for k in KEYS}


def test_dvclive_and_mlflow_log_each_epoch_once(tiny_dataset, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    dataset, params = tiny_dataset
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    cfg = config(
        params,
        "train.epochs=2",
        "train.loggers=[dvclive, mlflow]",
        f"train.mlflow.tracking_uri={uri}",
        "train.mlflow.experiment=tiny",
    )
    report = train_model(dataset, tmp_path / "unet", cfg, "unet", progress=False)
    files = ModelFiles(tmp_path / "unet")
    expected = _expected(files)
    assert set(expected["val_miou"]) == {0, 1}
    # DVCLive: one TSV row per epoch (step = epoch), the last epoch in metrics.json
    for key in KEYS:
        assert epoch_series(files, key) == pytest.approx(expected[key], rel=1e-6), key
    summary = json.loads((files.dvclive / "metrics.json").read_text())
    assert summary["step"] == 1 and "epoch" not in summary
    assert {k: summary[k] for k in KEYS} == pytest.approx({k: expected[k][1] for k in KEYS})
    assert not (files.dvclive / "plots" / "metrics" / "epoch.tsv").exists()
    logged = yaml.safe_load((files.dvclive / "params.yaml").read_text())
    assert logged["model_name"] == "unet"
    assert report.best_val_miou == pytest.approx(max(expected["val_miou"].values()), abs=1e-6)
    # MLflow: the run in the store, its params and each metric's history by epoch
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "unet" and run.info.status == "FINISHED"
    assert run.data.params["model_name"] == "unet"
    assert "epoch" not in run.data.metrics
    for key in KEYS:
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
        assert history == pytest.approx(expected[key], rel=1e-6), key


def test_dvc_exp_show_and_plots_show_read_dvclive(tiny_dataset, tmp_path: Path) -> None:
    """The committed dvc.yaml's top-level metrics and plots, in a real git + DVC repo,
    read what DVCLive wrote for a training run (no `dvc repro`: the demo's repo test
    checks the whole pipeline)."""
    dataset, params = tiny_dataset
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    templates = Path("flair_pipeline/orchestration/plot_templates")
    shutil.copytree(REPO / templates, repo / templates)
    project = yaml.safe_load((REPO / "params.yaml").read_text())
    project["paths"] = {"raw": "r", "dataset": "d", "models": "models", "eval": "e"}
    (repo / "params.yaml").write_text(yaml.safe_dump(project))
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "test@example.org")
    git(repo, "config", "user.name", "test")
    dvc(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")  # `dvc exp show` lists nothing before one
    cfg = config(params, "train.epochs=2")
    train_model(dataset, repo / "models" / "unet", cfg, "unet", progress=False)
    expected = _expected(ModelFiles(repo / "models" / "unet"))
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    workspace = next(r for r in shown if r["rev"] == "workspace")
    metrics = workspace["data"]["metrics"]["models/unet/dvclive/metrics.json"]["data"]
    assert metrics["step"] == 1
    assert metrics["val_miou"] == pytest.approx(expected["val_miou"][1], rel=1e-6)
    plots = json.loads(dvc(repo, "plots", "show", "--json").stdout)["data"]
    curves = plots["training curves unet"][0]["content"]
    drawn = {}
    for row in curves["data"]["values"]:  # one series per DVCLive TSV
        key = row["filename::field"].split("::")[1]
        drawn[key, int(row["step"])] = float(row[key])
    assert curves["encoding"]["x"] == {"field": "step", "type": "quantitative", "title": "epoch"}
    assert drawn == pytest.approx(
        {(k, e): v for k in KEYS for e, v in expected[k].items()}, rel=1e-6
    )
