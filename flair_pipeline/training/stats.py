"""Per-channel normalisation statistics and class weights, from the train split only.

Computed on train patches (never validation or test, which would leak) and stored in the
checkpoint, so evaluation and large-area prediction normalise exactly as training did.
A seeded sample of `n` patches is enough: per-channel means converge long before the
whole of FLAIR's 60 k patches is read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from flair_pipeline.config import S2Preprocessing
from flair_pipeline.nomenclature import N_CLASSES_MERGED, OTHER_INDEX
from flair_pipeline.training.records import PatchRecord
from flair_pipeline.training.samples import ZoneSeries, read_image, s2_window


@dataclass
class Stats:
    """Mean and std per aerial channel, and per Sentinel-2 band when S2 is used."""

    mean: list[float]
    std: list[float]
    s2_mean: list[float] | None = None
    s2_std: list[float] | None = None

    def to_dict(self) -> dict[str, list[float] | None]:
        """The statistics as saved in a checkpoint's hyper-parameters.

        Returns:
            ``mean``, ``std`` (per aerial channel) and ``s2_mean``, ``s2_std`` (per band, or None).
        """
        return dict(mean=self.mean, std=self.std, s2_mean=self.s2_mean, s2_std=self.s2_std)


def compute_stats(
    train: list[PatchRecord],
    n: int,
    seed: int,
    downsample: int = 1,
    s2: S2Preprocessing | None = None,
) -> Stats:
    """Channel statistics over up to `n` train patches drawn with `seed`.

    Args:
        train: The train split's records.
        n: Patches drawn at most.
        seed: Seed of the draw.
        downsample: Area-average the images by this factor before counting (faster).
        s2: Sentinel-2 preprocessing when the model uses S2, else None.

    Returns:
        Mean and std per channel (image DN 0..255; S2 after `s2`'s preprocessing).
    """
    picked = sorted(random.Random(seed).sample(range(len(train)), min(n, len(train))))
    img = _Moments()
    sat = _Moments()
    series = ZoneSeries()
    for i in picked:
        img.add(read_image(train[i].img, downsample).numpy())
        if s2 is not None:
            win, _ = s2_window(train[i], series, s2)
            sat.add(win.transpose(1, 0, 2, 3))  # bands first
    mean, std = img.result()
    out = Stats(mean, std)
    if s2 is not None:
        out.s2_mean, out.s2_std = sat.result()
    return out


def class_weights() -> torch.Tensor:
    """FLAIR's class weights: 1 for the 12 land-cover classes, 0 for "other".

    Equal weights for the 12 land-cover classes and 0 for "other", as FLAIR trains:
    "other" is a catch-all of rare, heterogeneous codes the metric ignores too.

    Returns:
        float32 (13,) weights by merged class index.
    """
    w = torch.ones(N_CLASSES_MERGED)
    w[OTHER_INDEX] = 0.0
    return w


class _Moments:
    """Running per-channel sums in float64 (exact enough for millions of pixels)."""

    def __init__(self) -> None:
        self.n = 0
        self.s: np.ndarray | None = None
        self.s2: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        flat = x.reshape(x.shape[0], -1).astype(np.float64)
        s, s2 = flat.sum(1), (flat**2).sum(1)
        self.s = s if self.s is None else self.s + s
        self.s2 = s2 if self.s2 is None else self.s2 + s2
        self.n += flat.shape[1]

    def result(self) -> tuple[list[float], list[float]]:
        assert self.s is not None and self.s2 is not None
        mean = self.s / self.n
        std = np.sqrt(np.maximum(self.s2 / self.n - mean**2, 0.0))
        return mean.tolist(), np.maximum(std, 1e-3).tolist()
