"""Train a FLAIR-HUB model family on an imported release: records in, checkpoints out.

:func:`train_hub` takes the manifest of ``import-flair-hub`` (or its records) and a
:class:`~flair_pipeline.training.hub_config.HubTrainConfig`, builds the datasets of the
``train`` and ``validation`` splits (:mod:`flair_pipeline.training.hub_data`), the
:class:`~flair_pipeline.training.hub_module.HubModule` and a Lightning trainer, and leaves
in ``out_dir`` what ``flair-pipeline train`` leaves (:class:`~flair_pipeline.layout.ModelFiles`):
``checkpoints/best.ckpt`` (best ``val_miou``) and ``checkpoints/last.ckpt``, Lightning's
CSV log, DVCLive's folder (params, per-epoch metrics for `dvc exp show` / `dvc plots`) and
``report.json``. The config travels in the checkpoint (``hub_config``), so
evaluation rebuilds the same data pipeline from the checkpoint alone.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger
from torch.utils.data import DataLoader

from flair_pipeline.errors import InputError
from flair_pipeline.io import atomic_path
from flair_pipeline.layout import ModelFiles
from flair_pipeline.reports import JSON, StageReport
from flair_pipeline.sources.flair_hub import HubRecord, read_hub_manifest
from flair_pipeline.training.hub_config import HubTrainConfig
from flair_pipeline.training.hub_data import HubDataset, collate_hub
from flair_pipeline.training.hub_module import HubModule
from flair_pipeline.training.tracking import EpochDVCLiveLogger


@dataclass(frozen=True)
class HubTrainReport(StageReport):
    """What a FLAIR-HUB training run produced (the ``model_hub`` stage's report too)."""

    inputs: list[str]
    tasks: list[str]
    best_val_miou: float
    epochs: int
    steps: int
    wall_s: float
    train_patches: int
    val_patches: int
    best_checkpoint: str
    last_checkpoint: str
    dvclive: str
    device: str
    left_out: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, JSON]:
        """The run's figures for the ``model_hub`` asset.

        Returns:
            Inputs, tasks, best validation mIoU, epochs, steps, patches, wall time, device.
        """
        return {
            "inputs": list(self.inputs),
            "tasks": list(self.tasks),
            "best_val_miou": self.best_val_miou,
            "epochs": self.epochs,
            "steps": self.steps,
            "train_patches": self.train_patches,
            "val_patches": self.val_patches,
            "wall_s": self.wall_s,
            "device": self.device,
        }

    def write(self, path: Path) -> Path:
        """Write the report as indented JSON, atomically.

        Args:
            path: Where (``<out_dir>/report.json``).

        Returns:
            `path`.
        """
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


def hub_records(source: str | Path | Sequence[HubRecord]) -> list[HubRecord]:
    """The records of a manifest CSV (``import-flair-hub --out``), or the records given.

    Args:
        source: The manifest's path, or records.

    Returns:
        The records.

    Raises:
        InputError: The manifest does not exist or is not one.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"{path}: no such manifest (write it with import-flair-hub --out)")
        return read_hub_manifest(path)
    return list(source)


def hub_loader(
    dataset: HubDataset, config: HubTrainConfig, *, shuffle: bool = False
) -> DataLoader[dict[str, Any]]:
    """A loader of contract batches over `dataset` (batch size and workers of `config`).

    The train loader drops an incomplete last batch (IGN's ``drop_last``; a batch of one
    patch would give batch norm a single value per channel at the deepest stage).

    Args:
        dataset: The split's dataset.
        config: The training config.
        shuffle: Shuffle and drop the last incomplete batch (the train split), seeded by
            ``config.seed``.

    Returns:
        The loader.
    """
    workers = min(config.num_workers, os.cpu_count() or 1)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=shuffle,
        drop_last=shuffle and len(dataset) > config.batch_size,
        num_workers=workers,
        collate_fn=collate_hub,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(config.seed),
    )


def _split(records: list[HubRecord], split: str, config: HubTrainConfig) -> HubDataset:
    ds = HubDataset([r for r in records if r.split == split], config)
    if not ds.records:
        raise InputError(
            f"no {split} patch with every file the config needs "
            f"({len(ds.left_out)} left out); check the manifest's split column and modalities"
        )
    return ds


def build_hub_module(config: HubTrainConfig) -> HubModule:
    """The Lightning module of `config` (model, losses, optimiser), the config inside.

    Args:
        config: The training config.

    Returns:
        A new module.
    """
    return HubModule(
        config.model_kwargs(),
        {t: config.class_weights(t) for t in config.tasks},
        {t: conf.task_weight for t, conf in config.tasks.items()},
        optimizer=config.optimizer,
        lr=config.lr,
        weight_decay=config.weight_decay,
        scheduler=config.scheduler,
        epochs=config.epochs,
        aux_loss_weight=config.aux_loss_weight,
        seed=config.seed,
        hub_config=config.model_dump(mode="json"),
    )


def train_hub(
    source: str | Path | Sequence[HubRecord],
    config: HubTrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
) -> HubTrainReport:
    """Train the model family of `config` on the train split, pick it on validation.

    Args:
        source: The manifest CSV of ``import-flair-hub``, or its records.
        config: What to train and how.
        out_dir: The model's folder (checkpoints, logs, DVCLive, report).
        progress: Show Lightning's progress bar.

    Returns:
        The run's report (also written as ``report.json``).

    Raises:
        InputError: No usable train or validation patch, or an unreadable file.
    """
    records = hub_records(source)
    files = ModelFiles(Path(out_dir))
    train, val = _split(records, "train", config), _split(records, "validation", config)
    L.seed_everything(config.seed, workers=True, verbose=False)
    shutil.rmtree(files.checkpoints, ignore_errors=True)
    module = build_hub_module(config)
    cuda = torch.cuda.is_available()
    best = ModelCheckpoint(
        files.checkpoints,
        filename=files.best.stem,
        monitor="val_miou",
        mode="max",
        save_last=True,
        enable_version_counter=False,
        save_on_train_epoch_end=True,
    )
    loggers: list[Logger] = [
        CSVLogger(files.folder, name=files.logs.name, version=""),
        EpochDVCLiveLogger(
            run_name=files.folder.name,
            dir=str(files.dvclive),
            dvcyaml=None,
            save_dvc_exp=False,
            report=None,
            log_model=False,
        ),
    ]
    trainer = L.Trainer(
        accelerator="auto",
        devices=1,
        precision=config.precision if cuda else "32-true",
        max_epochs=config.epochs,
        callbacks=[best, EarlyStopping("val_miou", mode="max", patience=config.patience)],
        logger=loggers,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        enable_progress_bar=progress,
        enable_model_summary=False,
        deterministic=not cuda,
    )
    t0 = time.perf_counter()
    trainer.fit(module, hub_loader(train, config, shuffle=True), hub_loader(val, config))
    score = best.best_model_score
    report = HubTrainReport(
        inputs=list(config.inputs),
        tasks=list(config.tasks),
        best_val_miou=round(float(score), 6) if score is not None else float("nan"),
        epochs=int(trainer.current_epoch),
        steps=int(trainer.global_step),
        wall_s=round(time.perf_counter() - t0, 2),
        train_patches=len(train),
        val_patches=len(val),
        best_checkpoint=str(files.best),
        last_checkpoint=str(files.last),
        dvclive=str(files.dvclive),
        device="cuda" if cuda else "cpu",
        left_out=train.left_out + val.left_out,
    )
    report.write(files.report)
    return report
