"""Evaluate a trained model on the test split: predictions, FLAIR metrics, figures.

Predictions are written as ``PRED_<id>.tif`` on each label's exact grid (FLAIR merged
codes 1..13, 13 = "other", the 13-class colour map), so `flair-pipeline evaluate`
reproduces the score from the files alone. Where the IMG holds no data (its nodata, mask or
alpha band, read as prediction reads an ortho) the prediction is nodata 0, declared, and
those pixels are not scored (``void_pixels`` in the report counts them); the confusion matrix is accumulated while predicting so the test set is read once.
A model trained at 1/k resolution (train.downsample) predicts at that resolution and its
logits are upsampled to the label grid: the metric is always computed at full resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from rasterio.windows import Window
from torch.utils.data import DataLoader

from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.map_style import MAP_NODATA, map_colormap
from flair_pipeline.evaluation.plots import (
    confusion_csv,
    confusion_png,
    patch_figure,
    per_domain_csv,
)
from flair_pipeline.evaluation.raster_input import mask_mode, read_valid_of
from flair_pipeline.evaluation.scoring import write_bytes, write_metrics, write_text
from flair_pipeline.io import write_geotiff
from flair_pipeline.layout import EvalFiles
from flair_pipeline.metrics import INVALID, ConfusionAccumulator, Scores
from flair_pipeline.nomenclature import OTHER_INDEX, merge_to_13
from flair_pipeline.progress import Progress, each
from flair_pipeline.reports import JSON, MetadataKind, StageReport
from flair_pipeline.training.checkpoint import Inference, load_inference
from flair_pipeline.training.records import PatchRecord, by_split, load_records
from flair_pipeline.training.samples import PatchDataset, collate


@dataclass(frozen=True)
class EvalReport(StageReport):
    """Scores and where the artifacts went."""

    metadata_kinds: ClassVar[Mapping[str, MetadataKind]] = {"metrics": "path"}

    model: str
    scores: Scores
    metrics_json: Path
    confusion_csv: Path
    confusion_png: Path
    per_domain_csv: Path
    patches_png: Path
    predictions: Path
    #: pixels of the test IMG holding no data: nodata in PRED, not scored
    void_pixels: int = 0

    def as_metadata(self) -> dict[str, JSON]:
        """mIoU, overall accuracy, per-class and per-domain scores, the two figures.

        Plain values: ``per_class_iou`` maps each class to its IoU, F1 and support and
        ``figures`` to the two PNGs' paths; the Dagster adapter (``defs/adapter.py``) shows
        them as a Markdown table and images in their place.

        Returns:
            A JSON-serialisable dict: ``miou`` and ``overall_accuracy`` (floats in [0, 1]),
            ``test_patches`` (int), ``per_class_iou`` (merged class -> ``iou``, ``f1``,
            ``support``), ``per_domain_miou`` (domain -> mIoU, 4 decimals), ``figures``
            (``confusion`` and ``patches``: the PNGs' paths), ``metrics`` (the JSON's path)
            and ``void_pixels`` (int).
        """
        s = self.scores
        per_class: dict[str, JSON] = {
            n: {"iou": float(s.iou[i]), "f1": float(s.f1[i]), "support": int(s.support[i])}
            for i, n in enumerate(s.names)
        }
        return {
            "miou": float(s.miou),
            "overall_accuracy": float(s.overall_accuracy),
            "test_patches": s.n_patches,
            "per_class_iou": per_class,
            "per_domain_miou": {d: round(float(x.miou), 4) for d, x in s.per_domain.items()},
            "figures": {"confusion": str(self.confusion_png), "patches": str(self.patches_png)},
            "metrics": str(self.metrics_json),
            "void_pixels": self.void_pixels,
        }


def dataset_for(inf: Inference, records: list[PatchRecord]) -> PatchDataset:
    """Samples as the model was trained on them (resolution, S2 options, metadata).

    Args:
        inf: The loaded checkpoint; its card gives the downsampling, the Sentinel-2
            options and the metadata encoding.
        records: The patches to read.

    Returns:
        A :class:`PatchDataset` over `records`, without masks, encoding the aerial
        metadata only when the model was trained with it.
    """
    card = inf.card
    encoder = None
    if card.meta_encoding:
        from flair_pipeline.models.metadata_mlp import MetadataEncoding

        enc = {k: v for k, v in card.meta_encoding.items() if k != "dim"}
        encoder = MetadataEncoding.from_dict(enc).encode
    return PatchDataset(
        records,
        downsample=card.patch.downsample,
        with_mask=False,
        s2=card.sentinel2,
        meta_encoder=encoder,
    )


@torch.no_grad()
def predict_codes(
    inf: Inference, batch: dict[str, torch.Tensor], size: tuple[int, int]
) -> np.ndarray:
    """FLAIR codes (B×H×W uint8, 1..13) at label size `size`.

    Args:
        inf: The loaded checkpoint; the batch is moved to its module's device (bfloat16
            autocast on CUDA).
        batch: A collated batch (``index`` is dropped).
        size: The label's (H, W); logits of another size are resized bilinearly first.

    Returns:
        The arg-max merged class + 1 per pixel, a B×H×W uint8 numpy array on the CPU.
    """
    device = next(inf.module.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items() if k != "index"}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = inf.module(batch)["logits"].float()
    if tuple(logits.shape[-2:]) != size:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    codes: np.ndarray = (logits.argmax(1) + 1).to(torch.uint8).cpu().numpy()
    return codes


def evaluate_checkpoint(
    checkpoint: str | Path,
    dataset: str | Path,
    out_dir: str | Path,
    *,
    split: str = "test",
    batch_size: int = 16,
    device: str | None = None,
    n_figure: int = 4,
    progress: Progress | None = None,
) -> EvalReport:
    """Predict every `split` patch of `dataset` with `checkpoint` and score it.

    `progress` counts the batches predicted.

    Args:
        checkpoint: A checkpoint written by ``flair-pipeline train``.
        dataset: The dataset root (or a records ``.csv``) to read the patches from.
        out_dir: Where the metrics, confusion files, figures and ``PRED`` GeoTIFFs go.
        split: The split scored (only its patches that have a MSK).
        batch_size: Patches per forward pass.
        device: Torch device; CUDA when available, else the CPU, by default.
        n_figure: Patches drawn in the patch figure, evenly spaced in the split.
        progress: Where to count the batches predicted, or None.

    Returns:
        The :class:`EvalReport`: the scores over the 13 merged classes, the files written
        and the count of void pixels (no image data: nodata in PRED, not scored).

    Raises:
        InputError: `split` has no labelled patch in `dataset`, or a MSK is not the size
            the model predicts; also (from the readers) an unreadable or unsafe checkpoint,
            an IMG off its label's grid or a MSK code outside 0..19.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    inf = load_inference(checkpoint, device)
    records = [r for r in by_split(load_records(dataset), split) if r.msk is not None]
    if not records:
        raise InputError(f"{dataset}: no labelled {split} patches to evaluate on")
    files = EvalFiles(Path(out_dir))
    pred_dir = files.predictions
    loader = DataLoader(dataset_for(inf, records), batch_size=batch_size, collate_fn=collate)
    geometry = inf.card.patch
    side = geometry.model_px * geometry.downsample  # the label grid: patches at full resolution
    size = (side, side)
    acc = ConfusionAccumulator()
    figure: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]] = []
    pick = set(np.linspace(0, len(records) - 1, min(n_figure, len(records))).astype(int).tolist())
    void_pixels = 0
    for batch in each(progress, f"{inf.name} {split}", loader, "batches", len(loader)):
        idx = batch["index"].tolist()
        codes = predict_codes(inf, batch, size)
        for k, i in enumerate(idx):
            rec = records[i]
            with rasterio.open(rec.msk) as src:
                truth, transform, crs = src.read(1), src.transform, src.crs
            if truth.shape != codes[k].shape:
                raise InputError(f"{rec.msk}: {truth.shape} label, model predicts {codes[k].shape}")
            pred, valid = codes[k], image_valid(rec.img, inf.in_channels, truth.shape)
            guess = pred.astype(np.uint8) - 1
            if not valid.all():
                pred = np.where(valid, pred, MAP_NODATA).astype(np.uint8)
                guess[~valid] = INVALID  # no image, no score
                void_pixels += int((~valid).sum())
            write_geotiff(
                files.pred(rec.domain, rec.patch_id),
                pred,
                transform,
                crs,
                nodata=MAP_NODATA,
                colormap=map_colormap(),
            )
            acc.add(merge_to_13(truth, source=str(rec.msk), unlabelled_ok=True), guess, rec.domain)
            if i in pick:
                with rasterio.open(rec.img) as src:
                    # drawn in the 19-code palette: merged "other" (13) as code 19, black
                    shown = np.where(pred == OTHER_INDEX + 1, 19, pred)
                    figure.append((src.read(), truth, shown, rec.patch_id))
    scores = acc.scores()
    report = EvalReport(
        model=inf.name,
        scores=scores,
        metrics_json=write_metrics(scores, files.metrics),
        confusion_csv=write_text(files.confusion_csv, confusion_csv(scores.matrix)),
        confusion_png=write_bytes(files.confusion_png, confusion_png(scores.matrix)),
        per_domain_csv=write_text(files.per_domain_csv, per_domain_csv(scores)),
        patches_png=write_bytes(
            files.patches_png, patch_figure(*map(list, zip(*figure, strict=True)))
        ),
        predictions=pred_dir,
        void_pixels=void_pixels,
    )
    return report


def image_valid(img: Path, channels: int, shape: tuple[int, ...]) -> np.ndarray:
    """Where an IMG patch holds data (bool), read as prediction reads an ortho.

    Args:
        img: The IMG patch.
        channels: Bands the model reads (its normalisation channels).
        shape: The label's (H, W): the IMG must be on that grid.

    Returns:
        True where the IMG declares data (see
        :func:`flair_pipeline.evaluation.raster_input.mask_mode`).

    Raises:
        InputError: The IMG is not the label's size, or declares an alpha band among the
            model's channels.
    """
    with rasterio.open(img) as src:
        if src.shape != tuple(shape):
            raise InputError(f"{img}: {src.shape} image, its label is {tuple(shape)}")
        mode, _ = mask_mode(src, img, min(channels, src.count))
        if mode.all_valid:
            return np.ones(src.shape, dtype=bool)
        return read_valid_of(src, mode, Window(0, 0, src.width, src.height))
