"""FLAIR-HUB patches as batches of the contract (:mod:`flair_pipeline.models.hub_inputs`).

:class:`HubDataset` reads each :class:`~flair_pipeline.sources.flair_hub.HubRecord`'s
files as IGN's loader does (IGNF/FLAIR-HUB 3d5693b, ``src/flair_hub/data/dataloader.py``
and ``data/utils_data/*.py``), and :func:`collate_hub` pads the series of a batch:

- **channels**: the 1-based ``channels`` of the config (``inputs_channels``: AERIAL
  [4, 1, 2] is NIR, R, G); a series' file holds its dates one after the other
  (``reshape_sentinel``: band ``t × C + c``), and the selection applies per date;
- **elevation** (``utils_data/elevation.py``): ``DEM_ELEV`` is [DSM, DTM]; with
  ``calc_elevation`` it becomes DSM − DTM, and with ``calc_elevation_stack_dsm``
  [DSM, DSM − DTM];
- **normalisation** (``utils_data/norm.py``, ``custom``): ``(x − mean) / std`` per channel
  after selection (values given for all the file's bands are picked by channel, where IGN
  takes the first ones); the series are not normalised (IGN's loader does not), unless means and
  stds are configured for them;
- **the Sentinel-2 date filter** (``utils_data/sentinel.py`` ``filter_time_series``): the
  ``SENTINEL2_MSK-SC`` file holds per date [snow, cloud]; a date is kept when at least
  ``(1 − max_frac_cover)`` of its pixels have cloud ≤ ``max_cloud`` and snow ≤ ``max_snow``;
  when no date passes, the dates with snow alone under the same rule are kept. When even
  none of those pass (IGN would return an empty series), every date is kept and a warning
  names the file;
- **dates**: days from ``ref_date`` (``MM-DD``) of each date's own year
  (``utils_data/sentinel_dates.py``), from :attr:`HubRecord.dates`;
- **labels**: COSIA band 1, LPIS band ``lpis_level`` (``label_channel_nomenclature``), as
  0-based class indices; a value at or above the class count becomes
  :data:`~flair_pipeline.models.hub_inputs.IGNORE`, with a warning naming the file;
- **downsample** (the CPU recipe, not IGN's): every mono-temporal input and the labels are
  divided by ``downsample`` (block means for images, the top-left pixel of each block,
  i.e. nearest, for labels); the series keep their 10 px.

A patch that lacks a file the config needs (an input, the S2 mask under the filter, a
series' dates, a task's label) is left out, with one warning line naming the patch and
the modality; :attr:`HubDataset.left_out` lists those lines.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioError
from torch.utils.data import Dataset

from flair_pipeline.errors import InputError
from flair_pipeline.models.hub_inputs import IGNORE, MONO, SERIES, dates_key, pad_key
from flair_pipeline.sources.flair_hub import HubRecord
from flair_pipeline.sources.flair_hub_layout import MODALITIES
from flair_pipeline.training.hub_config import HubTrainConfig

S2 = "SENTINEL2_TS"
S2_MASK = "SENTINEL2_MSK-SC"
LPIS = "ALL_LABEL-LPIS"
_DATES_KEYS = frozenset(dates_key(s) for s in SERIES)


def _read(path: str, bands: Sequence[int] | None = None) -> np.ndarray:
    try:
        with rasterio.open(path) as src:
            return np.asarray(src.read(list(bands)) if bands else src.read())
    except RasterioError as exc:
        raise InputError(f"{path}: unreadable ({exc})") from None


def by_date(arr: np.ndarray, per_date: int, path: str = "") -> np.ndarray:
    """A series file's bands as T × C × H × W (IGN's ``reshape_sentinel``).

    Args:
        arr: The file's bands, (T × C) × H × W, date-major.
        per_date: Bands per date.
        path: The file, named in the error.

    Returns:
        The series.

    Raises:
        InputError: The band count is not a multiple of `per_date`.
    """
    if arr.shape[0] % per_date:
        raise InputError(f"{path}: {arr.shape[0]} bands, not a multiple of {per_date} a date")
    return arr.reshape(arr.shape[0] // per_date, per_date, *arr.shape[1:])


def filter_dates(
    mask: np.ndarray, max_cloud: int = 1, max_snow: int = 1, max_fraction: float = 0.05
) -> np.ndarray:
    """Which dates of a Sentinel-2 series are clear (IGN's ``filter_time_series``).

    Args:
        mask: T × 2 × H × W, per date [snow, cloud] (``SENTINEL2_MSK-SC``).
        max_cloud: Largest cloud value of a clear pixel.
        max_snow: Largest snow value of a clear pixel.
        max_fraction: Largest fraction of covered pixels of a kept date.

    Returns:
        Boolean (T,): True for a kept date; when none passes, the dates clear of snow
        alone (IGN's fallback).
    """
    n = mask.shape[2] * mask.shape[3]
    need = (1 - max_fraction) * n
    clear = (mask[:, 1] <= max_cloud) & (mask[:, 0] <= max_snow)
    keep = np.asarray(clear.sum(axis=(1, 2)) >= need)
    if not keep.any():
        keep = np.asarray((mask[:, 0] <= max_snow).sum(axis=(1, 2)) >= need)
    return keep


def days_from(dates: Sequence[str], ref_date: str) -> np.ndarray:
    """Days of each ``YYYYMMDD`` date from ``ref_date`` (``MM-DD``) of its own year.

    Args:
        dates: The acquisition dates.
        ref_date: FLAIR-HUB's reference month-day.

    Returns:
        int64 (T,).
    """
    month, day = (int(x) for x in ref_date.split("-"))
    out = []
    for d in dates:
        when = datetime.strptime(d, "%Y%m%d").date()
        out.append((when - date(when.year, month, day)).days)
    return np.asarray(out, dtype=np.int64)


def block_mean(arr: np.ndarray, factor: int) -> np.ndarray:
    """Divide an image's size by `factor`, each pixel the mean of its block (area).

    Args:
        arr: C × H × W, H and W multiples of `factor`.
        factor: The divisor.

    Returns:
        C × H/factor × W/factor, float32.
    """
    if factor == 1:
        return arr.astype(np.float32)
    c, h, w = arr.shape
    blocks = arr.reshape(c, h // factor, factor, w // factor, factor)
    return np.asarray(blocks.mean(axis=(2, 4), dtype=np.float64), dtype=np.float32)


def _needs(record: HubRecord, config: HubTrainConfig) -> list[str]:
    """The files the config needs that `record` lacks (one phrase each).

    Returns:
        Phrases naming the modality, empty when the patch is complete.
    """
    out = []
    for mod in config.inputs:
        if mod not in record.paths:
            out.append(f"no {mod} file")
        elif mod in SERIES and MODALITIES[mod].dates not in record.dates:
            out.append(f"no {MODALITIES[mod].dates} dates row for {mod}")
    if S2 in config.inputs and config.filter_sentinel2 and S2_MASK not in record.paths:
        out.append(f"no {S2_MASK} file (filter_sentinel2 needs it)")
    for task in config.tasks:
        if task not in record.paths:
            out.append(f"no {task} file")
    return out


class HubDataset(Dataset[dict[str, Any]]):
    """Contract samples (one patch each) from FLAIR-HUB records (see the module docstring).

    A sample holds float32 tensors C × H × W (mono) and T × C × h × w (series), int64 dates
    (T,) under ``dates_key``, int64 H × W labels per task, and ``patch_id`` / ``domain``
    strings; :func:`collate_hub` adds the padding masks.
    """

    def __init__(self, records: Sequence[HubRecord], config: HubTrainConfig) -> None:
        """Keep the records that have every file `config` needs.

        Args:
            records: The patches (one split).
            config: The training config.
        """
        self.config = config
        self.records: list[HubRecord] = []
        self.left_out: list[str] = []
        for r in records:
            lacks = _needs(r, config)
            if lacks:
                line = f"patch {r.patch_id}: {'; '.join(lacks)}: left out of its split"
                self.left_out.append(line)
                warnings.warn(line, stacklevel=2)
            else:
                self.records.append(r)

    def __len__(self) -> int:
        """The number of patches kept.

        Returns:
            The count.
        """
        return len(self.records)

    def _norm(self, mod: str, arr: np.ndarray) -> np.ndarray:
        stats = self.config.norm_stats(mod)
        if stats is None:
            return arr.astype(np.float32)
        shape = (-1, 1, 1) if arr.ndim == 3 else (1, -1, 1, 1)
        mean = np.asarray(stats[0], np.float64).reshape(shape)
        std = np.asarray(stats[1], np.float64).reshape(shape)
        return np.asarray((arr.astype(np.float64) - mean) / std, dtype=np.float32)

    def _downsample(self, arr: np.ndarray, path: str) -> np.ndarray:
        f = self.config.downsample
        if arr.shape[-1] % f or arr.shape[-2] % f:
            raise InputError(
                f"{path}: {arr.shape[-1]} x {arr.shape[-2]} px is not a multiple of downsample {f}"
            )
        return block_mean(arr, f)

    def _mono(self, mod: str, path: str) -> np.ndarray:
        c = self.config
        if mod == "DEM_ELEV":
            z = _read(path).astype(np.float64)
            if c.calc_elevation:
                elev = z[0] - z[1]
                z = np.stack([z[0], elev]) if c.calc_elevation_stack_dsm else elev[None]
            arr = self._norm(mod, z)
        else:
            arr = self._norm(mod, _read(path, c.band_list(mod)))
        return self._downsample(arr, path)

    def _series(self, mod: str, r: HubRecord) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        spec = MODALITIES[mod]
        path = r.paths[mod]
        data = by_date(_read(path), int(spec.per_date or 1), path)
        data = data[:, [b - 1 for b in c.band_list(mod)]]
        days = days_from(r.dates[str(spec.dates)], c.ref_date)
        if len(days) != data.shape[0]:
            raise InputError(
                f"{path}: {data.shape[0]} dates of bands, its dates row lists {len(days)}"
            )
        if mod == S2 and c.filter_sentinel2:
            mpath = r.paths[S2_MASK]
            keep = filter_dates(
                by_date(_read(mpath), 2, mpath),
                c.filter_sentinel2_max_cloud,
                c.filter_sentinel2_max_snow,
                c.filter_sentinel2_max_frac_cover,
            )
            if keep.any():
                data, days = data[keep], days[keep]
            else:
                warnings.warn(
                    f"{mpath}: no date passes the snow/cloud filter, not even for snow "
                    "alone; every date kept",
                    stacklevel=3,
                )
        return self._norm(mod, data), days

    def _label(self, task: str, path: str) -> np.ndarray:
        c = self.config
        band = c.lpis_level if task == LPIS else 1
        lab = _read(path, [band])[0].astype(np.int64)
        k = c.class_count(task)
        bad = lab >= k
        if bad.any():
            warnings.warn(
                f"{path}: {int(bad.sum())} px of {task} band {band} with a class above "
                f"{k - 1} (largest {int(lab.max())}): not scored (set to {IGNORE})",
                stacklevel=3,
            )
            lab[bad] = IGNORE
        f = c.downsample
        if lab.shape[0] % f or lab.shape[1] % f:
            raise InputError(
                f"{path}: {lab.shape[1]} x {lab.shape[0]} px is not a multiple of downsample {f}"
            )
        return np.ascontiguousarray(lab[::f, ::f])

    def __getitem__(self, i: int) -> dict[str, Any]:
        """The sample of the i-th patch kept.

        Args:
            i: Its index.

        Returns:
            The contract sample (no padding masks).

        Raises:
            InputError: A file is unreadable or does not hold what its record says.
        """
        r = self.records[i]
        out: dict[str, Any] = {"patch_id": r.patch_id, "domain": r.domain}
        for mod in self.config.inputs:
            if mod in MONO:
                out[mod] = torch.from_numpy(self._mono(mod, r.paths[mod]))
            else:
                data, days = self._series(mod, r)
                out[mod] = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
                out[dates_key(mod)] = torch.from_numpy(days)
        for task in self.config.tasks:
            out[task] = torch.from_numpy(self._label(task, r.paths[task]))
        return out


def collate_hub(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A batch of contract samples: series padded to the batch's longest, with masks.

    IGN's ``pad_collate_flair`` (``utils_data/padding.py``): padding dates are zeros at
    the end of each series, their days 0; here ``pad_key(s)`` marks them True.

    Args:
        samples: From :class:`HubDataset`.

    Returns:
        The batch (tensors stacked, ``patch_id`` and ``domain`` as lists).
    """
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key in SERIES:
            longest = max(v.shape[0] for v in values)
            padded = values[0].new_zeros((len(values), longest, *values[0].shape[1:]))
            days = torch.zeros((len(values), longest), dtype=torch.int64)
            pad = torch.ones((len(values), longest), dtype=torch.bool)
            for b, (v, s) in enumerate(zip(values, samples, strict=True)):
                padded[b, : v.shape[0]] = v
                days[b, : v.shape[0]] = s[dates_key(key)]
                pad[b, : v.shape[0]] = False
            batch[key], batch[dates_key(key)], batch[pad_key(key)] = padded, days, pad
        elif key in _DATES_KEYS:
            continue
        elif isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        else:
            batch[key] = list(values)
    return batch
