"""Train one baseline on a dataset (ours or an imported FLAIR release): the whole recipe.

The single entry point for the CLI (`flair-pipeline train`) and the Dagster assets
(`model_unet`, `model_utt`): it reads the records, computes statistics on the train
split, builds the loaders and the Lightning trainer from config, trains, and leaves in
`out_dir` the checkpoints (best validation mIoU and last), the logs (CSV and
TensorBoard), DVCLive's folder (params, per-epoch metrics and plots for `dvc exp show` /
`dvc plots`; MLflow too when ``train.loggers`` asks, :mod:`flair_pipeline.training.tracking`),
the training curves as a PNG for the UI, and a report.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import rasterio
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader

from flair_pipeline.config import PipelineConfig
from flair_pipeline.errors import InputError
from flair_pipeline.io import atomic_path
from flair_pipeline.layout import SEN2_PARTS, ModelFiles, sen2_file
from flair_pipeline.model_registry import get_model
from flair_pipeline.reports import JSON, MetadataKind, StageReport
from flair_pipeline.training.checkpoint import SAFE_GLOBALS, check_model
from flair_pipeline.training.curves import write_curves
from flair_pipeline.training.model_card import card_for_training
from flair_pipeline.training.module import FlairModule
from flair_pipeline.training.packing import open_packed
from flair_pipeline.training.records import PatchRecord, by_split, load_records
from flair_pipeline.training.resume import (
    KeptCSVLogger,
    ResumeState,
    saved_curves,
    saved_log_rows,
)
from flair_pipeline.training.samples import EpochSampler, PackedDataset, PatchDataset, collate
from flair_pipeline.training.stats import compute_stats
from flair_pipeline.training.tracking import build_loggers


@dataclass(frozen=True)
class TrainReport(StageReport):
    """What a training run produced, for metadata, DVC metrics and the closing log line."""

    metadata_kinds: ClassVar[Mapping[str, MetadataKind]] = {"checkpoint": "path"}

    model: str
    best_val_miou: float
    epochs: int
    steps: int
    wall_s: float
    images_per_s: float
    train_patches: int
    val_patches: int
    best_checkpoint: str
    last_checkpoint: str
    curves_png: str
    dvclive: str
    device: str

    def as_metadata(self) -> dict[str, JSON]:
        """Best validation mIoU, epochs, steps, speed, patch counts, checkpoint and curves.

        Plain values: ``curves`` is the PNG's path; the Dagster adapter (``defs/adapter.py``)
        shows the image in its place.

        Returns:
            A JSON-serialisable dict of the report's fields (paths as strings).
        """
        return {
            "best_val_miou": float(self.best_val_miou),
            "epochs": self.epochs,
            "steps": self.steps,
            "wall_time_s": float(self.wall_s),
            "images_per_s": float(self.images_per_s),
            "train_patches": self.train_patches,
            "val_patches": self.val_patches,
            "device": self.device,
            "checkpoint": self.best_checkpoint,
            "curves": self.curves_png,
        }

    def write(self, path: Path) -> Path:
        """Write the report as indented JSON at `path`, atomically.

        Args:
            path: Where to write (``<model>/train_report.json``).

        Returns:
            `path`.
        """
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


class _Throughput(Callback):
    """Training images per second, over the time spent in training epochs only."""

    def __init__(self) -> None:
        self.images, self.seconds, self._t0 = 0, 0.0, 0.0

    def on_train_epoch_start(self, *_: Any) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(
        self, trainer: Any, module: Any, outputs: Any, batch: Any, *_: Any
    ) -> None:
        self.images += int(batch["img"].shape[0])

    def on_train_epoch_end(self, *_: Any) -> None:
        self.seconds += time.perf_counter() - self._t0


def train_model(
    source: str | Path,
    out_dir: str | Path,
    cfg: PipelineConfig,
    model_name: str,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TrainReport:
    """Train `model_name` on the patches of `source` (dataset root or manifest CSV).

    Args:
        source: A dataset root (our layout) or an imported release's manifest CSV.
        out_dir: The model's folder (``<paths.models>/<folder>``): checkpoints, logs,
            DVCLive's folder, curves, the report.
        cfg: The configuration (``train.*``; ``sentinel2`` preprocessing for U-T&T).
        model_name: A name of :mod:`flair_pipeline.model_registry`.
        resume: Continue from ``checkpoints/last.ckpt`` when present (its model card wins
            over the config); otherwise start from scratch with a warning.
        progress: Show Lightning's progress bar.

    Returns:
        The run's report (best validation mIoU, epochs, steps, throughput, paths).

    Raises:
        InputError: No train or validation patch, a U-T&T patch without its Sentinel-2
            window, an unreadable image, or a resumed checkpoint of another model.
    """
    spec = get_model(model_name)
    out = Path(out_dir)
    files = ModelFiles(out)
    t = cfg.train
    records = load_records(source)
    train, val = by_split(records, "train"), by_split(records, "validation")
    if not train:
        raise InputError(f"{source}: no train patches (check splits.csv / the manifest split)")
    if not val:
        raise InputError(f"{source}: no validation patches; validation mIoU picks the best model")
    s2 = cfg.sentinel2.preprocessing if spec.needs_s2 else None
    if s2 is not None:
        _require_s2(train + val)
    ckpt_dir, last = files.checkpoints, files.last
    patch_px = _patch_px(train[0])
    resume_from: str | None = None
    # in both branches: it also makes Lightning seed each loader worker (PL_SEED_WORKERS), and
    # a resumed process must seed its workers as the uninterrupted one did; the random states
    # of the run itself are then restored from the checkpoint
    L.seed_everything(t.seed, workers=True, verbose=False)
    if resume and last.is_file():
        card = check_model(last, model_name)
        resume_from = str(last)
    else:
        if resume:
            warnings.warn(f"--resume: no {last}, starting from scratch", stacklevel=2)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        computed = compute_stats(train, t.norm_samples, t.seed, t.downsample, s2)
        meta_enc = _meta_encoding(train) if spec.needs_meta else None
        card = card_for_training(
            cfg, model_name, computed.to_dict(), patch_px=patch_px, meta_encoding=meta_enc
        )
    encoder = _meta_encoder(card.meta_encoding)
    cuda = torch.cuda.is_available()
    module = FlairModule.from_config(cfg, card, channels_last=cuda, resumed=resume_from is not None)
    if t.compile:
        module.model.compile()
    loaders = [
        _loader(
            _dataset(
                source,
                split,
                part,
                t.packed,
                downsample=card.patch.downsample,
                s2=card.sentinel2,
                meta_encoder=encoder,
            ),
            t.batch_size,
            t.num_workers,
            shuffle,
            t.seed,
            cuda,
        )
        for split, part, shuffle in (("train", train, True), ("validation", val, False))
    ]
    # saved at the end of the train epoch (after validation), so the checkpoint holds the
    # epoch's curve row and the random streams as they stand before the next epoch
    best = ModelCheckpoint(
        ckpt_dir,
        filename=files.best.stem,
        monitor="val_miou",
        mode="max",
        save_last=True,
        enable_version_counter=False,
        save_on_train_epoch_end=True,
    )
    speed = _Throughput()
    # the rows of the epochs before the kill go back into metrics.csv (issue 30)
    csv_logger = KeptCSVLogger(
        out,
        name=files.logs.name,
        version="",
        prior=saved_log_rows(resume_from) if resume_from else None,
    )
    samplers = [dl.sampler for dl in loaders if isinstance(dl.sampler, EpochSampler)]
    streams = ResumeState(csv_logger, samplers)
    # the epochs before the kill: the curves the checkpoint carries
    prior = saved_curves(resume_from) if resume_from else []
    next_epoch = int(max((r["epoch"] for r in prior), default=-1)) + 1
    trackers = build_loggers(t, files, model_name, next_epoch=next_epoch if resume_from else None)
    trainer = L.Trainer(
        accelerator="auto",
        devices=t.devices if cuda else 1,
        strategy="ddp" if cuda and t.devices > 1 else "auto",
        precision=t.precision if cuda else "32-true",
        max_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        callbacks=[
            best,
            EarlyStopping("val_miou", mode="max", patience=t.patience, strict=False),
            speed,
            streams,
        ],
        logger=[
            csv_logger,
            TensorBoardLogger(out, name=files.tensorboard.name, version=""),
            *trackers,
        ],
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        enable_progress_bar=progress,
        enable_model_summary=False,
        deterministic=not cuda,
    )
    metrics_csv = files.log_metrics  # Lightning's CSVLogger names it
    csv_logger.start()
    t0 = time.perf_counter()
    train_loader, val_loader = loaders
    # weights_only=True explicitly: no environment variable can make Lightning's read unsafe
    with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
        trainer.fit(module, train_loader, val_loader, ckpt_path=resume_from, weights_only=True)
    wall = time.perf_counter() - t0
    png = write_curves(metrics_csv, out, title=model_name, prior=prior)
    score = best.best_model_score
    report = TrainReport(
        model=model_name,
        best_val_miou=round(float(score), 6) if score is not None else float("nan"),
        epochs=int(trainer.current_epoch),
        steps=int(trainer.global_step),
        wall_s=round(wall, 2),
        images_per_s=round(speed.images / speed.seconds, 2) if speed.seconds else 0.0,
        train_patches=len(train),
        val_patches=len(val),
        best_checkpoint=str(files.best),
        last_checkpoint=str(last),
        curves_png=str(png),
        dvclive=str(files.dvclive),
        device="cuda" if cuda else "cpu",
    )
    report.write(files.report)
    return report


def _dataset(
    source: str | Path, split: str, part: list[PatchRecord], packed: bool, **kwargs: Any
) -> PatchDataset:
    """The packed input of `split` when present and current (train.packed), else the GeoTIFFs.

    Returns:
        A :class:`PackedDataset` over the memory-mapped arrays, or a :class:`PatchDataset`.
    """
    pack = open_packed(source, split, part) if packed else None
    if pack is None:
        return PatchDataset(part, **kwargs)
    return PackedDataset(pack.folder, part, **kwargs)


def _require_s2(records: list[PatchRecord]) -> None:
    for r in records:
        if r.centroid is None or r.sen_prefix is None:
            raise InputError(
                f"patch {r.patch_id} ({r.domain}/{r.zone}): no Sentinel-2 window for U-T&T "
                "(materialize sentinel2_series and sentinel2_index for its domain)"
            )
        data = sen2_file(r.sen_prefix, SEN2_PARTS[0])
        if not data.is_file():
            raise InputError(f"patch {r.patch_id}: {data} missing (materialize sentinel2_series)")


def _patch_px(rec: PatchRecord) -> int:
    """The patch side in pixels, from the image header (no pixel is read).

    Returns:
        The IMG's width, pixels.

    Raises:
        InputError: The image cannot be opened.
    """
    try:
        with rasterio.open(rec.img) as src:
            return int(src.width)
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"{rec.img}: unreadable image ({exc})") from exc


def _meta_encoding(train: list[PatchRecord]) -> dict[str, Any]:
    from flair_pipeline.models.metadata_mlp import MetadataEncoding

    enc = MetadataEncoding.fit([r.meta for r in train])
    return {"dim": enc.dim, **enc.to_dict()}


def _meta_encoder(meta_enc: dict[str, Any] | None) -> Any:
    if meta_enc is None:
        return None
    from flair_pipeline.models.metadata_mlp import MetadataEncoding

    return MetadataEncoding.from_dict({k: v for k, v in meta_enc.items() if k != "dim"}).encode


def _loader(
    ds: PatchDataset, batch: int, workers: int, shuffle: bool, seed: int, cuda: bool
) -> DataLoader[dict[str, Any]]:
    """The loader of one split.

    The order of a shuffled split comes from :class:`EpochSampler` ((seed, epoch) only);
    the loader's generator only gives the workers' base seed, drawn once per process from
    ``seed`` (persistent workers), so a resumed process seeds its workers as the
    uninterrupted run did.

    Returns:
        The split's loader (collated dict batches).
    """
    workers = min(workers, os.cpu_count() or 1)
    return DataLoader(
        ds,
        batch_size=batch,
        sampler=EpochSampler(ds, seed) if shuffle else None,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=cuda,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
