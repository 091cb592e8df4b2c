"""Reading one training sample: aerial image, merged mask, metadata, Sentinel-2 window.

The dataset returns raw-ish tensors (uint8 image as float, merged mask, S2 reflectance
as float) and leaves normalisation to the model wrapper, so that the statistics stored
with a checkpoint are applied identically in training, evaluation and large-area
prediction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sized
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, RandomSampler

from flair_pipeline.config import S2Preprocessing
from flair_pipeline.errors import InputError
from flair_pipeline.layout import PACKED_IMG, PACKED_MSK, PACKED_SPLIT, SEN2_PARTS, sen2_file
from flair_pipeline.nomenclature import merge_to_13
from flair_pipeline.sentinel2.preprocess import preprocess
from flair_pipeline.sentinel2.series import product_date
from flair_pipeline.training.records import PatchRecord


class ZoneSeries:
    """A zone's super-area series, memory-mapped and loaded once per worker."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[np.ndarray, np.ndarray, list[dt.date]]] = {}

    def get(self, prefix: Path) -> tuple[np.ndarray, np.ndarray, list[dt.date]]:
        """Data (T, 10, H, W), masks (T, 2, H, W) and dates of the series at `prefix`.

        Read once per prefix and cached.

        Args:
            prefix: The series' path without its ``_data.npy``… suffix.

        Returns:
            Memory-mapped data and masks, and the products' dates.

        Raises:
            InputError: a file of the series is missing or unreadable.
        """
        if prefix not in self._cache:
            data_f, masks_f, products_f = (sen2_file(prefix, p) for p in SEN2_PARTS[:3])
            try:
                data = np.load(data_f, mmap_mode="r")
                masks = np.load(masks_f, mmap_mode="r")
                products = products_f.read_text().split()
            except (OSError, ValueError) as exc:
                raise InputError(f"{prefix}_*: Sentinel-2 series unreadable ({exc})") from exc
            dates = [product_date(p) for p in products]
            if len(dates) != len(data) or None in dates:
                raise InputError(f"{products_f}: {len(products)} products, {len(data)} dates")
            self._cache[prefix] = (data, masks, dates)  # type: ignore[assignment]
        return self._cache[prefix]


def s2_window(
    record: PatchRecord, series: ZoneSeries, opts: S2Preprocessing
) -> tuple[np.ndarray, np.ndarray]:
    """(T×10×w×w float32 reflectance, T day-of-year) around the patch centroid.

    Args:
        record: The patch, with its series prefix and centroid (row, col).
        series: The cache of zone series.
        opts: The Sentinel-2 preprocessing.

    Returns:
        float32 (T, 10, w, w) and int64 (T,) day of year, T after preprocessing.

    Raises:
        InputError: The record has no Sentinel-2 series or centroid, or the window leaves
            the series.
    """
    if record.sen_prefix is None or record.centroid is None:
        raise InputError(
            f"patch {record.patch_id} ({record.domain}/{record.zone}): no Sentinel-2 window "
            "(materialize sentinel2_series and sentinel2_index, or train a model without S2)"
        )
    data, masks, dates = series.get(record.sen_prefix)
    r, c = record.centroid
    what = f"patch {record.patch_id} (super-area {record.sen_prefix})"
    win, msk = cut_window(data, masks, r, c, opts.window, what)
    return preprocess_window(win, msk, list(dates), opts)


def cut_window(
    data: np.ndarray, masks: np.ndarray, r: int, c: int, window: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """The `window` px square of a series (T×C×H×W) whose centre pixel is (r, c).

    Training and large-area prediction both cut through here, so a patch and a prediction
    window at the same place see exactly the same Sentinel-2 pixels.

    Args:
        data: (T, 10, H, W) series.
        masks: (T, 2, H, W) SNW, CLD.
        r: Centre row.
        c: Centre column.
        window: Side in pixels.
        what: The patch or window, named in the error.

    Returns:
        Views (T, 10, window, window) and (T, 2, window, window).

    Raises:
        InputError: The window leaves the series.
    """
    r0, c0 = r - window // 2, c - window // 2
    if r0 < 0 or c0 < 0 or r0 + window > data.shape[2] or c0 + window > data.shape[3]:
        raise InputError(
            f"{what}: {window} px Sentinel-2 window at ({r}, {c}) leaves the "
            f"{data.shape[2]}×{data.shape[3]} series"
        )
    rows, cols = slice(r0, r0 + window), slice(c0, c0 + window)
    return data[:, :, rows, cols], masks[:, :, rows, cols]


def preprocess_window(
    data: np.ndarray, masks: np.ndarray, dates: list[dt.date], opts: S2Preprocessing
) -> tuple[np.ndarray, np.ndarray]:
    """FLAIR-2's cloud filter and monthly averages as configured; (float32 data, doy).

    Args:
        data: (T, 10, w, w) reflectance DN.
        masks: (T, 2, w, w) SNW, CLD.
        dates: The T dates.
        opts: The Sentinel-2 preprocessing.

    Returns:
        float32 (T', 10, w, w) and int64 (T',) day of year.
    """
    win, _, days = preprocess(opts, np.asarray(data), np.asarray(masks), list(dates))
    doy = np.array([d.timetuple().tm_yday for d in days], np.int64)
    return win.astype(np.float32), doy


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch `epoch`'s sample order: a function of (`seed`, `epoch`) alone.

    Args:
        seed: The run's seed (``train.seed``).
        epoch: The epoch, from 0.

    Returns:
        A 63-bit seed; different epochs and seeds give unrelated streams (SeedSequence).
    """
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, np.uint64)
    return int(state[0]) >> 1


class EpochSampler(RandomSampler):
    """A shuffled order of `data_source` per epoch, drawn from (`seed`, epoch) only.

    Lightning calls :meth:`set_epoch` before each epoch (also on a resumed one), so the
    order of epoch *e* is the same in an uninterrupted run and in a run resumed from a
    checkpoint, whatever the loader's workers drew from its generator (issue 30). A
    :class:`~torch.utils.data.RandomSampler`, so that under DDP Lightning replaces it by
    its ``DistributedSampler`` (itself seeded by (seed, epoch)).

    Args:
        data_source: The dataset (only its length is used).
        seed: The run's seed.
    """

    def __init__(self, data_source: Sized, seed: int) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of epoch `epoch` from now on."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(len(self.data_source), generator=generator).tolist())


class PatchDataset(Dataset[dict[str, Any]]):
    """Training samples read from the patch GeoTIFFs (and series), as dicts.

    Samples as dicts: ``img`` (C×H×W float, 0..255), ``msk`` (H×W long, 0..12),
    optional ``meta`` (D float), ``s2`` (T×10×w×w float) and ``dates`` (T long).
    """

    def __init__(
        self,
        records: list[PatchRecord],
        *,
        downsample: int = 1,
        with_mask: bool = True,
        s2: S2Preprocessing | None = None,
        meta_encoder: Callable[[list[dict[str, Any]]], torch.Tensor] | None = None,
    ) -> None:
        self.records = records
        self.downsample = downsample
        self.with_mask = with_mask
        self.s2 = s2
        # a record's metadata never changes: encode every record once, not per sample
        self._meta = meta_encoder([r.meta for r in records]) if meta_encoder else None
        self._series = ZoneSeries()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = self.records[i]
        out: dict[str, Any] = {"index": i, "img": self._image(i, rec)}
        if self.with_mask:
            out["msk"] = self._mask(i, rec)
        if self._meta is not None:
            out["meta"] = self._meta[i]
        if self.s2 is not None:
            win, doy = s2_window(rec, self._series, self.s2)
            out["s2"], out["dates"] = torch.from_numpy(win), torch.from_numpy(doy)
        return out

    def _image(self, i: int, rec: PatchRecord) -> torch.Tensor:
        return read_image(rec.img, self.downsample)

    def _mask(self, i: int, rec: PatchRecord) -> torch.Tensor:
        if rec.msk is None:
            raise InputError(f"patch {rec.patch_id}: no MSK file to train or evaluate on")
        return read_mask(rec.msk, self.downsample)


class PackedDataset(PatchDataset):
    """The samples of :class:`PatchDataset`, IMG and MSK read from a pack.

    Same values, smaller types: ``img`` uint8 (float when downsampled) and ``msk`` uint8.

    `folder` is one split of a pack (:mod:`flair_pipeline.training.packing`) whose rows are
    `records` in order (checked by ``open_packed``); the arrays are memory-mapped lazily, so
    each loader worker maps them itself after the fork. Metadata and the Sentinel-2 window
    still come from the records, exactly as in :class:`PatchDataset`.
    """

    def __init__(self, folder: Path, records: list[PatchRecord], **kwargs: Any) -> None:
        super().__init__(records, **kwargs)
        self.folder = Path(folder)
        self._arrays: tuple[np.ndarray, np.ndarray | None] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # a spawned worker maps the files itself rather than receiving pickled pixels
        return {**self.__dict__, "_arrays": None}

    def _open(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self._arrays is None:
            img = np.load(self.folder / PACKED_IMG.relative_to(PACKED_SPLIT), mmap_mode="r")
            f = self.folder / PACKED_MSK.relative_to(PACKED_SPLIT)
            self._arrays = (img, np.load(f, mmap_mode="r") if f.is_file() else None)
        return self._arrays

    def _image(self, i: int, rec: PatchRecord) -> torch.Tensor:
        """The image of sample `i`, uint8 C×H×W at full resolution.

        4× less to copy, collate and pin than float; the module's normalisation promotes
        it to float exactly (uint8 -> float32).

        Args:
            i: Sample index.
            rec: Its record.

        Returns:
            uint8 (C, H, W).
        """
        arr = self._open()[0][i]
        if self.downsample > 1:
            return image_tensor(arr, self.downsample)
        return torch.from_numpy(np.array(arr))

    def _mask(self, i: int, rec: PatchRecord) -> torch.Tensor:
        """uint8 H×W classes 0..12 (FlairModule casts masks to long on the device).

        Args:
            i: Sample index.
            rec: Its record.

        Returns:
            uint8 (H, W), downsampled like the image.

        Raises:
            InputError: The pack holds no MSK.
        """
        msk = self._open()[1]
        if msk is None:
            raise InputError(f"{self.folder}: packed without MSK; no mask to train on")
        o, d = self.downsample // 2, self.downsample
        return torch.from_numpy(np.array(msk[i][o::d, o::d] if d > 1 else msk[i]))


def image_tensor(arr: np.ndarray, downsample: int = 1) -> torch.Tensor:
    """C×H×W uint8 -> float C×H×W (0..255), area-averaged by `downsample`.

    Args:
        arr: (C, H, W) image.
        downsample: Averaging factor (1: none).

    Returns:
        float32 (C, H/downsample, W/downsample).
    """
    img = torch.from_numpy(np.asarray(arr, dtype=np.float32))
    if downsample > 1:
        img = F.avg_pool2d(img[None], downsample)[0]
    return img


def mask_tensor(merged: np.ndarray, downsample: int = 1) -> torch.Tensor:
    """H×W merged classes (0..12) -> long H×W; downsampling keeps each block's centre pixel.

    Args:
        merged: (H, W) merged classes.
        downsample: Block size (1: none).

    Returns:
        int64 (H/downsample, W/downsample).
    """
    if downsample > 1:  # the centre pixel of each block: a label, never an average
        o = downsample // 2
        merged = merged[o::downsample, o::downsample]
    return torch.from_numpy(np.asarray(merged, dtype=np.int64))


def read_image(path: Path, downsample: int = 1) -> torch.Tensor:
    """An IMG patch as float C×H×W (0..255), area-averaged by `downsample`.

    Args:
        path: The IMG file.
        downsample: Averaging factor.

    Returns:
        float32 (C, H, W).

    Raises:
        InputError: The file cannot be read.
    """
    try:
        with rasterio.open(path) as src:
            arr = src.read()
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"{path}: unreadable image ({exc})") from exc
    return image_tensor(arr, downsample)


def read_mask(path: Path, downsample: int = 1) -> torch.Tensor:
    """A MSK patch merged to the 13 classes (long H×W); a bad code names the file.

    Args:
        path: The MSK file.
        downsample: Block size.

    Returns:
        int64 (H, W) merged classes 0..12, INVALID (255) where unlabelled.

    Raises:
        InputError: The file cannot be read, or a code is outside 1..19.
    """
    try:
        with rasterio.open(path) as src:
            codes = src.read(1)
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"{path}: unreadable mask ({exc})") from exc
    return mask_tensor(merge_to_13(codes, source=str(path), unlabelled_ok=True), downsample)


def collate(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack samples into a batch, padding series of different lengths.

    Series of different lengths are padded at the end with a pad mask (True = padded) so
    U-TAE can ignore those dates.

    Args:
        samples: Sample dicts from the dataset.

    Returns:
        Each key stacked on a new batch axis; with series, ``s2`` (B, T, 10, w, w),
        ``dates`` (B, T) and ``pad_mask`` (B, T).
    """
    out: dict[str, torch.Tensor] = {}
    for key in samples[0]:
        if key in ("s2", "dates"):
            continue
        vals = [s[key] for s in samples]
        out[key] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else torch.tensor(vals)
    if "s2" in samples[0]:
        t = max(s["s2"].shape[0] for s in samples)
        b, (_, c, h, w) = len(samples), samples[0]["s2"].shape
        s2 = torch.zeros(b, t, c, h, w)
        dates = torch.zeros(b, t, dtype=torch.long)
        pad = torch.ones(b, t, dtype=torch.bool)
        for i, s in enumerate(samples):
            n = s["s2"].shape[0]
            s2[i, :n], dates[i, :n], pad[i, :n] = s["s2"], s["dates"], False
        out.update(s2=s2, dates=dates, pad_mask=pad)
    return out
