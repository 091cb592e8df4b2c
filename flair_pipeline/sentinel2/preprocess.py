"""FLAIR-2's Sentinel-2 preprocessing: drop cloudy/snowy dates, average by month.

Pure numpy on FLAIR's layout (data T×10×H×W, masks T×2×H×W with SNW then CLD, one date per
acquisition), so the dataset build and training data loaders share it. FLAIR-2's best
U-T&T applies both to the 40 × 40 window around a patch centroid, not to the whole
super-area: pass whatever crop the shares should be computed on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from flair_pipeline.config import S2Preprocessing


@dataclass
class Filtered:
    """The dates kept by :func:`cloud_filter`, and their positions in the input."""

    data: np.ndarray
    masks: np.ndarray
    dates: list[dt.date]
    kept: np.ndarray  # int indices into the input time axis, increasing


def cloudy_share(masks: np.ndarray, threshold: int = 60) -> np.ndarray:
    """Per date, the share of pixels whose SNW or CLD probability is >= `threshold`.

    Args:
        masks: (T, 2, H, W) SNW, CLD probabilities (0..100).
        threshold: Probability (percent) from which a pixel counts as snowy or cloudy.

    Returns:
        float64 (T,): share 0..1 of pixels where SNW or CLD is >= `threshold`.

    Raises:
        ValueError: `masks` is not (T, 2, H, W).
    """
    masks = np.asarray(masks)
    if masks.ndim != 4 or masks.shape[1] != 2:
        raise ValueError(f"masks {masks.shape}: expected (T, 2, H, W) with SNW, CLD")
    bad = (masks[:, 0] >= threshold) | (masks[:, 1] >= threshold)
    share: np.ndarray = bad.reshape(len(bad), -1).mean(axis=1)
    return share


def cloud_filter(
    data: np.ndarray,
    masks: np.ndarray,
    dates: list[dt.date],
    threshold: int = 60,
    max_fraction: float = 0.5,
) -> Filtered:
    """Drop dates where more than `max_fraction` of pixels are snowy or cloudy.

    A pixel counts when SNW >= `threshold` or CLD >= `threshold` (FLAIR-2 used 60 and
    0.5); a date is kept when its share is <= `max_fraction`. FLAIR-2's released loader
    adds the SNW and CLD counts (a pixel both snowy and cloudy counts twice) and keeps
    shares strictly below the limit; counting the union is what the masks mean.

    If every date would be dropped, the least cloudy one (earliest on ties) is kept so
    that a series never becomes empty: a model needs T >= 1 and a cloudy date says more
    than none.

    Args:
        data: (T, 10, H, W) reflectance DN.
        masks: (T, 2, H, W) SNW, CLD probabilities (0..100).
        dates: The T acquisition dates.
        threshold: Probability (percent) from which a pixel counts.
        max_fraction: Largest share (0..1) of counted pixels a kept date may have.

    Returns:
        The kept dates' data, masks and dates, and their indices into the input.
    """
    _check(data, masks, dates)
    share = cloudy_share(masks, threshold)
    kept = np.flatnonzero(share <= max_fraction)
    if kept.size == 0:
        kept = np.array([int(np.argmin(share))])
    return Filtered(data[kept], masks[kept], [dates[i] for i in kept], kept)


def monthly_average(
    data: np.ndarray, masks: np.ndarray, dates: list[dt.date]
) -> tuple[np.ndarray, np.ndarray, list[dt.date]]:
    """One mean image per (year, month) present, dated the 15th (as FLAIR-2 does).

    Float32 because a mean of DN is not an integer and rounding would bias it; the
    model normalises floats anyway. Masks are averaged the same way, so they become the
    mean snow/cloud probability of the month. Months without a date are absent (T' <= 12
    for a one-year series), not interpolated.

    Args:
        data: (T, 10, H, W) reflectance DN.
        masks: (T, 2, H, W) SNW, CLD probabilities (0..100).
        dates: The T acquisition dates.

    Returns:
        (data T'×10×H×W float32, masks T'×2×H×W float32, dates), months in calendar order.
    """
    _check(data, masks, dates)
    months = sorted({(d.year, d.month) for d in dates})
    out_d, out_m = [], []
    for y, m in months:
        idx = [i for i, d in enumerate(dates) if (d.year, d.month) == (y, m)]
        out_d.append(data[idx].astype(np.float64).mean(axis=0).astype(np.float32))
        out_m.append(masks[idx].astype(np.float64).mean(axis=0).astype(np.float32))
    h, w = data.shape[-2:]
    if not months:
        empty = np.zeros((0, data.shape[1], h, w), np.float32)
        return empty, np.zeros((0, 2, h, w), np.float32), []
    return np.stack(out_d), np.stack(out_m), [dt.date(y, m, 15) for y, m in months]


def _check(data: np.ndarray, masks: np.ndarray, dates: list[dt.date]) -> None:
    if data.ndim != 4 or masks.ndim != 4 or masks.shape[1] != 2:
        raise ValueError(f"data {data.shape}, masks {masks.shape}: expected T×C×H×W, T×2×H×W")
    if not len(data) == len(masks) == len(dates):
        raise ValueError(f"{len(data)} data, {len(masks)} masks and {len(dates)} dates differ")
    if data.shape[-2:] != masks.shape[-2:]:
        raise ValueError(f"data {data.shape} and masks {masks.shape} differ in H×W")


def preprocess(
    opts: S2Preprocessing, data: np.ndarray, masks: np.ndarray, dates: list[dt.date]
) -> tuple[np.ndarray, np.ndarray, list[dt.date]]:
    """FLAIR-2's cloud filter and monthly averages, as `opts` say.

    Args:
        opts: the preprocessing options (a config section or a checkpoint's ``s2_options``).
        data: T×10×H×W reflectance.
        masks: T×2×H×W snow then cloud probability (0..100).
        dates: T acquisition dates.

    Returns:
        (data, masks, dates) after :func:`cloud_filter` (if `filter_clouds`) and
        :func:`monthly_average` (if `monthly_average`); unchanged otherwise.

    Raises:
        ValueError: Shapes and dates disagree.
    """
    if opts.filter_clouds:
        kept = cloud_filter(data, masks, dates, opts.cloud_threshold, opts.cloud_max_fraction)
        data, masks, dates = kept.data, kept.masks, kept.dates
    if opts.monthly_average:
        data, masks, dates = monthly_average(data, masks, dates)
    return data, masks, dates
