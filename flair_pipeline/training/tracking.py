"""Experiment tracking of a training run: DVCLive always, MLflow when asked (``train.loggers``).

Both loggers only observe: they receive what Lightning's other loggers receive, once per
epoch (the module logs epoch means only), and change nothing the run computes.

* **DVCLive** writes into ``<model folder>/dvclive/``: ``params.yaml`` (the module's
  hyperparameters), ``metrics.json`` (the last epoch's values, read by `dvc exp show` /
  `dvc metrics`) and ``plots/metrics/<metric>.tsv`` (one row per epoch, read by
  `dvc plots`). Its own dvc.yaml is off (``dvcyaml=None``): the pipeline's dvc.yaml,
  generated from :mod:`flair_pipeline.orchestration.artifacts`, declares the folder as the
  train stage's output, its ``metrics.json`` as a top-level metric, the curves as a
  top-level plot and the best checkpoint as a model artifact (``artifacts:``), so DVCLive
  neither copies the checkpoint nor runs ``dvc add`` (``log_model=False``).
* **MLflow** (Lightning's :class:`~lightning.pytorch.loggers.MLFlowLogger`): params and the
  same per-epoch metrics in a run of ``train.mlflow.experiment``, at
  ``train.mlflow.tracking_uri`` (default: the SQLite store ``mlflow.db`` beside the model
  folder, i.e. ``<paths.models>/mlflow.db``; MLflow 3 has no plain file store).

Lightning passes the global step and adds an ``epoch`` entry to each call; both trackers
here take the epoch as their step and do not log ``epoch`` as a metric (one name per
metric, and curves against epochs).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from typing import Any

import torch
from dvclive.lightning import DVCLiveLogger
from lightning.pytorch.loggers import Logger, MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only

from flair_pipeline.config import TrainConfig
from flair_pipeline.io import atomic_path
from flair_pipeline.layout import ModelFiles


class EpochDVCLiveLogger(DVCLiveLogger):
    """DVCLive's Lightning logger with the epoch as its step (DVCLive's own turns 0 into 1)."""

    @rank_zero_only
    def log_metrics(
        self,
        metrics: Mapping[str, Any],
        step: int | None = None,
        sync: bool | None = False,
    ) -> None:
        """Log `metrics` at step = their epoch, then write ``metrics.json``.

        Args:
            metrics: Lightning's values, with its ``epoch`` entry.
            step: Lightning's global step (used only without an ``epoch`` entry).
            sync: Ignored: every call writes the summary (once per epoch and split).
        """
        values = dict(metrics)
        epoch = values.pop("epoch", None)
        live = self.experiment
        live.step = int(epoch) if epoch is not None else int(step or 0)
        for name, value in values.items():
            live.log_metric(name, _plain(value))
        live.sync()


class EpochMLFlowLogger(MLFlowLogger):
    """Lightning's MLflow logger with the epoch as the metric step."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log `metrics` at step = their epoch.

        Args:
            metrics: Lightning's values, with its ``epoch`` entry.
            step: Lightning's global step (used only without an ``epoch`` entry).
        """
        values = dict(metrics)
        epoch = values.pop("epoch", None)
        super().log_metrics(values, int(epoch) if epoch is not None else step)


def _plain(value: Any) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def default_tracking_uri(files: ModelFiles) -> str:
    """The local MLflow store of a model folder: ``sqlite:///<its parent>/mlflow.db``.

    Args:
        files: The model's files (its folder is ``<paths.models>/<name>`` in the pipeline).

    Returns:
        An absolute SQLite tracking URI.
    """
    return f"sqlite:///{(files.folder.parent / 'mlflow.db').resolve()}"


def build_loggers(
    t: TrainConfig, files: ModelFiles, model_name: str, *, next_epoch: int | None = None
) -> list[Logger]:
    """The trackers of ``t.loggers`` for one training run.

    Args:
        t: The train section (``loggers``, ``mlflow``).
        files: The model's files (DVCLive writes into ``files.dvclive``).
        model_name: The model folder, MLflow's default run name.
        next_epoch: On ``--resume``, the first epoch this run trains: DVCLive keeps its
            rows of the epochs before it and drops any later one (logged before the kill
            but not in the checkpoint); None starts DVCLive's folder afresh.

    Returns:
        The Lightning loggers, DVCLive's first.
    """
    loggers: list[Logger] = []
    if "dvclive" in t.loggers:
        resume = next_epoch is not None and files.dvclive.is_dir()
        if resume:
            trim_epochs(files, int(next_epoch or 0))
        loggers.append(
            EpochDVCLiveLogger(
                run_name=model_name,
                dir=str(files.dvclive),
                dvcyaml=None,
                save_dvc_exp=False,
                report=None,
                resume=resume,
                log_model=False,
            )
        )
    if "mlflow" in t.loggers:
        loggers.append(
            EpochMLFlowLogger(
                experiment_name=t.mlflow.experiment,
                run_name=t.mlflow.run_name or model_name,
                tracking_uri=t.mlflow.tracking_uri or default_tracking_uri(files),
                log_model=False,
            )
        )
    return loggers


def trim_epochs(files: ModelFiles, next_epoch: int) -> None:
    """Drop DVCLive's rows of epochs ``>= next_epoch`` (a resumed run logs them again).

    Args:
        files: The model's files.
        next_epoch: The first epoch the resumed run trains.
    """
    for tsv in sorted((files.dvclive / "plots" / "metrics").glob("*.tsv")):
        with tsv.open(newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        if not rows:
            continue
        step = rows[0].index("step")
        kept = [rows[0], *(r for r in rows[1:] if int(r[step]) < next_epoch)]
        with atomic_path(tsv) as tmp, tmp.open("w", newline="") as f:
            csv.writer(f, delimiter="\t", lineterminator="\n").writerows(kept)


def epoch_series(files: ModelFiles, metric: str) -> dict[int, float]:
    """DVCLive's values of one metric by epoch.

    Args:
        files: The model's files.
        metric: A logged name (``train_loss``, ``val_loss``, ``val_miou``…).

    Returns:
        Epoch -> value; empty when DVCLive logged no such metric.
    """
    path = files.dvclive_plot(metric)
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {int(r["step"]): float(r[metric]) for r in csv.DictReader(f, delimiter="\t")}
