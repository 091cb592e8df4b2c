"""Large-area prediction: a land-cover map of any size from a trained model, seamlessly.

The image is cut into overlapping patch_size² windows on one global lattice
(:mod:`~flair_pipeline.evaluation.windows`); each window's softmax probabilities are
weighted by a ramp that fades towards its edges and summed per pixel, so the map shows no
seams. Memory stays bounded whatever the image size: the image is processed in column
stripes (``stripe_width`` px) and, within a stripe, top to bottom; probabilities are kept
only for the band of rows that windows still touch, and rows are written out, in whole
output tiles, as soon as no later window can change them. The accumulator lives on the
model's device, so on a GPU only the finished uint8 map crosses to the host.

Reading (`readers` prefetch threads, each with its own GDAL handles, batches handed to the
model in lattice order whatever thread finished first, so the map's bytes do not depend
on their number) and writing (one writer thread) overlap with inference.
The map is a COG (tiled, DEFLATE, overviews) of FLAIR merged codes 1..13 (13 = "other") on
the input's exact grid and CRS, with the 13-class colour table and a QGIS style beside it
(:mod:`~flair_pipeline.evaluation.map_style`). Where the ortho holds no data (its nodata
value, mask band or alpha band: :meth:`ImageSource.read_valid`) the map is
:data:`~flair_pipeline.evaluation.map_style.MAP_NODATA` (0), declared as the COG's nodata,
and the optional probabilities carry the same pixels as their mask; the count of such
pixels is in the report and in the map's ``FLAIR_VOID_PIXELS`` tag.

The map, the optional probabilities and the style are written under temporary names and
renamed at the end, so a failure leaves nothing; the row-by-row stage file
(``.<map name>.stage.tif.<host>-<pid>-<hex>.flairtmp.tif``, from
:func:`flair_pipeline.io.temp_path_for`) carries its writer's pid, so the next prediction
into the same map deletes those of dead processes (a ``kill -9`` runs no cleanup) and keeps
those of live ones.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import torch
import torch.nn.functional as F

from flair_pipeline.errors import FlairPipelineError, InputError
from flair_pipeline.evaluation.map_style import (
    MAP_DESCRIPTION,
    MAP_NODATA,
    map_colormap,
    write_map_style,
)
from flair_pipeline.evaluation.predict_elevation import ElevationRows
from flair_pipeline.evaluation.raster_input import ElevationSource, ImageSource
from flair_pipeline.evaluation.windows import (
    PatchWindow,
    floor_to,
    patch_window,
    starts,
    stride_for,
    stripes,
    weight_window,
)
from flair_pipeline.io import atomic_path, reap_dead_temps, temp_path_for
from flair_pipeline.nomenclature import MERGED_NAMES, N_CLASSES_MERGED
from flair_pipeline.progress import Progress, Task, task

#: Gives extra batch entries (e.g. {"sen": …} for U-T&T) for the windows of one batch.
ExtraInputs = Callable[[Sequence[PatchWindow]], Mapping[str, torch.Tensor]]
_Win = tuple[int, int, int]  # (window-row index, row, col)


@dataclass
class PredictReport:
    """What a prediction run produced and how fast."""

    out: Path
    probabilities: Path | None
    height: int
    width: int
    n_windows: int
    seconds: float
    device: str
    #: bytes of the probability accumulator: set by block/stripe/patch/batch sizes, not by
    #: the image height, which is what keeps memory bounded for any image.
    buffer_bytes: int
    km2: float
    class_pixels: dict[int, int] = field(default_factory=dict)  # FLAIR code -> pixels
    #: pixels where the ortho holds no data: MAP_NODATA in the map, in no class
    void_pixels: int = 0
    style: Path | None = None  # the QGIS style written beside the map
    #: how doubtful declarations of the image were read (also the map's FLAIR_DECISIONS tag)
    decisions: list[str] = field(default_factory=list)

    @property
    def patches_per_s(self) -> float:
        """Windows predicted per second of wall time (NaN before any time was measured)."""
        return self.n_windows / self.seconds if self.seconds else float("nan")

    @property
    def km2_per_h(self) -> float:
        """Area mapped per hour of wall time, km²/h (NaN before any time was measured)."""
        return self.km2 / self.seconds * 3600 if self.seconds else float("nan")


def resolve_device(device: str | None) -> torch.device:
    """`device`, or CUDA when present, else CPU; a CUDA request without a GPU is an error.

    Args:
        device: A torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``) or None.

    Returns:
        The torch device to predict on.

    Raises:
        FlairPipelineError: A CUDA device is requested and no CUDA GPU is available.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FlairPipelineError(f"device {device!r} requested but no CUDA GPU is available")
    return dev


class _Run:
    """One prediction: the lattice, the accumulator of one stripe, reader and writer."""

    def __init__(
        self,
        model: torch.nn.Module,
        src: ImageSource,
        elev: ElevationSource | None,
        *,
        channels: int,
        patch: int,
        stride: int,
        batch: int,
        mean: Sequence[float],
        std: Sequence[float],
        dev: torch.device,
        block: int,
        stripe: int,
        extra: ExtraInputs | None,
        downsample: int,
        readers: int = 1,
    ) -> None:
        self.readers = readers
        self.model, self.src, self.elev, self.dev = model, src, elev, dev
        self.channels, self.patch, self.stride, self.batch = channels, patch, stride, batch
        self.block, self.stripe, self.extra, self.ds = block, stripe, extra, downsample
        self.mean = torch.tensor(mean, dtype=torch.float32, device=dev).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=dev).view(1, -1, 1, 1)
        self.weight = torch.from_numpy(weight_window(patch, stride)).to(dev)
        self.rows = starts(src.height, patch, stride)
        self.cols = starts(src.width, patch, stride)
        self.buffer_bytes = 0
        self._top = 0  # image row of the accumulator's first row
        self._used = 0  # accumulator rows that hold contributions

    def stripe_cols(self, c0: int, c1: int) -> list[int]:
        return [c for c in self.cols if c < c1 and c + self.patch > c0]

    def n_windows(self) -> int:
        per_row = sum(len(self.stripe_cols(*s)) for s in stripes(self.src.width, self.stripe))
        return per_row * len(self.rows)

    # -- reading (prefetch thread) ----------------------------------------------------------
    def load(self, wins: Sequence[_Win], rows: ElevationRows | None = None) -> np.ndarray:
        """(B, channels, P, P) uint8 for the windows of one batch, one read per window row.

        Args:
            wins: The batch's windows, in lattice order.
            rows: The stripe's elevation, read once per window row and shared by the
                readers (:class:`ElevationRows`); None reads the elevation of the batch's
                windows of each row in one piece, as before (the benchmark's baseline).

        Returns:
            The windows' pixels in `wins` order, grouped by window row; with a DSM/DTM the
            last channel is the elevation band of :class:`ElevationSource`.
        """
        p, out = self.patch, []
        for ri in sorted({w[0] for w in wins}):
            group = [w for w in wins if w[0] == ri]
            r, c_lo, c_hi = group[0][1], min(w[2] for w in group), max(w[2] for w in group) + p
            bands = min(self.channels, 4) if self.elev is not None else self.channels
            region = self.src.read(r, c_lo, p, c_hi - c_lo, bands)
            if self.elev is not None and rows is not None:
                out += [
                    np.concatenate([region[:, :, c - c_lo : c - c_lo + p], rows.window(r, c)[None]])
                    for _, _, c in group
                ]
                continue
            if self.elev is not None:
                region = np.concatenate([region, self.elev.read(r, c_lo, p, c_hi - c_lo)[None]])
            out += [region[:, :, c - c_lo : c - c_lo + p] for _, _, c in group]
        return np.stack(out)

    def elevation_rows(self, cols: Sequence[int]) -> ElevationRows | None:
        """The elevation of a stripe whose windows start at `cols`, read row by row.

        Args:
            cols: Left columns of the stripe's windows, ascending.

        Returns:
            An :class:`ElevationRows` for :meth:`load`, or None without a DSM/DTM.
        """
        return ElevationRows(self.elev, cols, self.patch) if self.elev is not None else None

    # -- inference (main thread) -----------------------------------------------------------
    @torch.inference_mode()
    def probs(self, x: np.ndarray, wins: Sequence[_Win]) -> torch.Tensor:
        """Weighted softmax probabilities (B, 13, P, P) float32 on the device.

        Returns:
            The model's softmax over the 13 merged classes, upsampled bilinearly to the
            window when the model reads downsampled patches, times the window's blending
            weight (:func:`weight_window`).

        Raises:
            FlairPipelineError: The model's output has no ``logits`` or they are not
                (B, 13, P / downsample, P / downsample).
        """
        xt = torch.from_numpy(x).to(self.dev, non_blocking=True).float()
        if self.ds > 1:  # as training read its patches: area average, then normalise
            xt = F.avg_pool2d(xt, self.ds)
        batch: dict[str, torch.Tensor] = {"img": (xt - self.mean) / self.std}
        if self.extra is not None:
            pws = [patch_window(r, c, self.patch, self.src.transform) for _, r, c in wins]
            batch.update({k: v.to(self.dev) for k, v in self.extra(pws).items()})
        amp = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.dev.type == "cuda"
            else contextlib.nullcontext()
        )
        with amp:
            out = self.model(batch)
        logits = out.get("logits") if isinstance(out, Mapping) else None
        side = self.patch // self.ds
        want = (len(wins), N_CLASSES_MERGED, side, side)
        if logits is None or tuple(logits.shape) != want:
            got = tuple(logits.shape) if logits is not None else type(out).__name__
            raise FlairPipelineError(f"model output 'logits' is {got}, expected {want}")
        probs = torch.softmax(logits.float(), dim=1)
        if self.ds > 1:
            probs = F.interpolate(probs, scale_factor=self.ds, mode="bilinear")
        return probs * self.weight

    def run(
        self,
        write: Callable[[int, int, np.ndarray, torch.Tensor | None], None],
        want_probs: bool,
        bar: Task,
    ) -> None:
        """Predict stripe after stripe; `write(row, col, codes, probs)` gets finished rows."""
        for c0, c1 in stripes(self.src.width, self.stripe):
            self._stripe(c0, c1, write, want_probs, bar)

    def _stripe(
        self, c0: int, c1: int, write: Callable[..., None], want_probs: bool, bar: Task
    ) -> None:
        p, s, h_img = self.patch, self.stride, self.src.height
        cols = self.stripe_cols(c0, c1)
        rows_per_batch = (self.batch - 1) // len(cols) + 2
        buf_h = self.block + (rows_per_batch - 1) * s + p
        acc = torch.zeros((N_CLASSES_MERGED, buf_h, c1 - c0), device=self.dev)
        wsum = torch.zeros((buf_h, c1 - c0), device=self.dev)
        self.buffer_bytes = max(self.buffer_bytes, (acc.numel() + wsum.numel()) * 4)
        wins = [(ri, r, c) for ri, r in enumerate(self.rows) for c in cols]
        batches = [wins[i : i + self.batch] for i in range(0, len(wins), self.batch)]
        top = self._top = self._used = 0
        depth = self.readers + 1  # batches read ahead: one per reader, one waiting
        rows = self.elevation_rows(cols)  # elevation read once per window row
        with ThreadPoolExecutor(max_workers=self.readers, thread_name_prefix="flair-read") as pool:
            ahead: list[Future[np.ndarray]] = [
                pool.submit(self.load, b, rows) for b in batches[:depth]
            ]
            for i, group in enumerate(batches):
                x = ahead.pop(0).result()  # in lattice order, whichever reader was first
                if i + depth < len(batches):
                    ahead.append(pool.submit(self.load, batches[i + depth], rows))
                probs = self.probs(x, group)
                for k, (_, r, c) in enumerate(group):
                    self._add(acc, wsum, probs[k], r - top, c, c0, c1)
                bar.advance(len(group))
                ri = group[-1][0]
                if group[-1][2] == cols[-1]:  # window row ri complete
                    done = self.rows[ri + 1] if ri + 1 < len(self.rows) else h_img
                else:
                    done = self.rows[ri]
                end = h_img if done >= h_img else floor_to(done, self.block)
                if end > top:
                    n = end - top
                    self._flush(acc, wsum, n, top, c0, write, want_probs)
                    top = self._top = end

    def _add(
        self,
        acc: torch.Tensor,
        wsum: torch.Tensor,
        probs: torch.Tensor,
        r: int,
        c: int,
        c0: int,
        c1: int,
    ) -> None:
        """Add one window (at buffer row `r`, image column `c`) clipped to the stripe/image.

        Raises:
            RuntimeError: The window does not fit the accumulator (a bug in its sizing, not
                an input problem).
        """
        p = self.patch
        h = min(p, acc.shape[1] - r, self.src.height - (r + self._top))
        if h < min(p, self.src.height - (r + self._top)):  # the bound on buf_h is wrong
            raise RuntimeError(f"accumulator overflow at row {r + self._top}")
        a0, a1 = max(c, c0), min(c + p, c1)
        acc[:, r : r + h, a0 - c0 : a1 - c0] += probs[:, :h, a0 - c : a1 - c]
        wsum[r : r + h, a0 - c0 : a1 - c0] += self.weight[:h, a0 - c : a1 - c]
        self._used = max(self._used, r + h)

    def _flush(
        self,
        acc: torch.Tensor,
        wsum: torch.Tensor,
        n: int,
        top: int,
        c0: int,
        write: Callable[..., None],
        want_probs: bool,
    ) -> None:
        """Hand rows [top, top+n) of the stripe to the writer, then slide the buffer up.

        Raises:
            RuntimeError: A pixel of those rows got no window (a bug in the lattice, not an
                input problem).
        """
        if bool((wsum[:n] <= 0).any()):
            raise RuntimeError(f"rows {top}..{top + n} of column {c0} got no window")
        codes = (_argmax0(acc[:, :n]) + 1).to(torch.uint8).cpu().numpy()
        probs = None
        if want_probs:
            probs = (acc[:, :n] / wsum[:n] * 255).round_().clamp_(0, 255).to(torch.uint8).cpu()
        write(top, c0, codes, probs)
        rest = max(self._used - n, 0)  # only rows some window touched need to move
        acc[:, :rest] = acc[:, n : n + rest].clone()
        acc[:, rest : max(self._used, n)] = 0
        wsum[:rest] = wsum[n : n + rest].clone()
        wsum[rest : max(self._used, n)] = 0
        self._used = rest


def _argmax0(x: torch.Tensor) -> torch.Tensor:
    """Argmax over dim 0 (first maximum wins, like torch.argmax).

    torch.max(dim=0) gives the same indices ~3x faster than torch.argmax(dim=0) on CPU for
    a (13, H, W) tensor (measured: 0.23 s vs 0.71 s for 13 x 896 x 2048).

    Returns:
        The int64 (H, W) index of the largest value along dim 0, on `x`'s device.
    """
    return x.max(dim=0).indices


#: Most reader threads by default: beyond this the model, not reading, is the bottleneck
#: (``bench/predict_read.py`` measures windows/s per reader; docs/performance.md).
MAX_DEFAULT_READERS = 8


def default_readers() -> int:
    """Reader threads :func:`predict_map` uses by default: one per core, at most 8.

    Returns:
        min(cores available to this process, :data:`MAX_DEFAULT_READERS`), at least 1.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, MAX_DEFAULT_READERS))


def _check_args(
    patch_size: int,
    batch_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    block_size: int,
    stripe_width: int,
) -> None:
    if patch_size < 1 or batch_size < 1:
        raise ValueError("patch_size and batch_size must be >= 1")
    if len(mean) != len(std) or not 1 <= len(mean) <= 5:
        raise ValueError(f"mean/std give {len(mean)}/{len(std)} channels, expected 1..5 each")
    if block_size % 16 or stripe_width % block_size:
        raise ValueError("block_size must be a multiple of 16 and stripe_width of block_size")


def predict_map(
    model: torch.nn.Module,
    image: Path | str | list[Path],
    out: Path,
    *,
    patch_size: int,
    overlap: float,
    batch_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    dsm: Path | str | None = None,
    dtm: Path | str | None = None,
    elevation_scale: float = 5.0,
    device: str | None = None,
    probabilities: Path | None = None,
    extra_inputs: ExtraInputs | None = None,
    downsample: int = 1,
    block_size: int = 512,
    stripe_width: int = 4096,
    progress: Progress | None = None,
    style: bool = True,
    readers: int | None = None,
) -> PredictReport:
    """Write the land-cover map of `image` predicted by `model` to `out`.

    `model` follows the project convention ``model({"img": (B, C, H, W)}) -> {"logits":
    (B, 13, H, W)}``; C = len(mean), and the input is ``(pixel - mean) / std`` in 0..255
    units, as in training. `image` is one GeoTIFF, a .vrt, a folder of tiles or a list of
    tiles (bands R, G, B, NIR, uint8). A 5-channel model gets elevation from `dsm` − `dtm`
    (same CRS, covering the image, any resolution: resampled as IMG patches are), or from
    the image's 5th band when no DSM/DTM is given. A model trained on patches area-averaged
    by `downsample` sees windows of patch_size x downsample pixels averaged the same way,
    and its probabilities are upsampled back to the image grid. `block_size` is the output tile size and
    the granularity at which rows are flushed; `stripe_width` bounds memory in width: the
    accumulator holds 13 x (block + patch + stride x rows a batch spans) x stripe_width
    float32 (~0.3 GB at the defaults, patch 512), whatever the image size.
    Pixels where the image holds no data (its nodata, mask or alpha band) are MAP_NODATA
    (0, the map's declared nodata) and counted in ``void_pixels``. With `style`, the
    13-class QGIS style is written beside the map (``<out stem>.qml``). `progress` counts
    the windows predicted.

    Args:
        model: The network (moved to the device and set to eval mode here).
        image: One GeoTIFF, a .vrt, a folder of tiles or a list of tiles; or one raster
            read in place: an ``https://`` or ``s3://`` URL or a ``/vsicurl/`` or
            ``/vsis3/`` path (a str), only the windows read are fetched.
        out: The map to write: a uint8 COG (DEFLATE) of merged codes 1..13, nodata 0, on the
            image's grid and CRS, tagged with its void pixels and the reader's decisions.
        patch_size: The model's patch side, in model pixels.
        overlap: Fraction of a window shared with its neighbour (sets the stride).
        batch_size: Windows per forward pass.
        mean: Per-channel normalisation mean (0..255 units); its length is the channel count.
        std: Per-channel normalisation standard deviation, same length as `mean`.
        dsm: Digital surface model (with `dtm`) for the elevation channel, or None.
        dtm: Digital terrain model (with `dsm`), or None.
        elevation_scale: Grey levels per metre of DSM − DTM (5: 0.2 m a level), as in IMG.
        device: Torch device (:func:`resolve_device`).
        probabilities: Where to write the 13 class probabilities (uint8, × 255), or None.
        extra_inputs: The model's other inputs per window (Sentinel-2), or None.
        downsample: The area-averaging factor of the model's training patches.
        block_size: The COG's tile size and the flush granularity, a multiple of 16.
        stripe_width: Columns predicted at once, a multiple of `block_size`.
        progress: Where to count the windows predicted, or None.
        style: Write the QGIS style ``<out stem>.qml`` beside the map.
        readers: Threads reading windows ahead of the model, each with its own GDAL
            handles (None: :func:`default_readers`); the map's bytes do not depend on it.

    Returns:
        The :class:`PredictReport`: the files written, the image's size (px) and area
        (km²), windows, seconds, device, accumulator bytes, pixels per code, void pixels
        and the reader's decisions.

    Raises:
        ValueError: A size argument is out of range (patch or batch size, downsample or
            readers below 1, 0 or over 5 channels, mean and std of different lengths, block or
            stripe not a multiple of 16 or of the block).
        InputError: Only one of `dsm` and `dtm` is given, or the image or DSM/DTM is
            unusable (named; e.g. too few bands for a 5-channel model); nothing is written.
        FlairPipelineError: The device is unavailable or the model's output is not the
            expected ``logits``.
    """
    _check_args(patch_size, batch_size, mean, std, block_size, stripe_width)
    if downsample < 1:
        raise ValueError("downsample must be >= 1")
    n_readers = default_readers() if readers is None else readers
    if n_readers < 1:
        raise ValueError("readers must be >= 1")
    window = patch_size * downsample
    stride = stride_for(window, overlap)
    channels = len(mean)
    if (dsm is None) != (dtm is None):
        raise InputError("give both a DSM and a DTM (elevation = DSM - DTM), or neither")
    dev = resolve_device(device)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        # a fixed GDAL block cache (MB): its default, 5 % of RAM, would grow with the image
        # masks of the probabilities inside the TIFF: a .msk beside a temp name would be lost
        stack.enter_context(
            rasterio.Env(
                GDAL_NUM_THREADS="ALL_CPUS", GDAL_CACHEMAX=256, GDAL_TIFF_INTERNAL_MASK=True
            )
        )
        src = stack.enter_context(ImageSource(image))
        elev = None
        if channels == 5 and dsm is not None and dtm is not None:
            src.check(4)
            elev = stack.enter_context(ElevationSource(dsm, dtm, src, elevation_scale))
        elif channels == 5 and src.count < 5:
            raise InputError(
                f"{src.path}: {src.count} bands and no --dsm/--dtm, but the model needs 5 "
                "channels (R, G, B, NIR, elevation): give the DSM and DTM"
            )
        else:
            src.check(channels)
        model = model.to(dev).eval()
        run = _Run(
            model,
            src,
            elev,
            channels=channels,
            patch=window,
            stride=stride,
            batch=batch_size,
            mean=mean,
            std=std,
            dev=dev,
            block=block_size,
            stripe=stripe_width,
            extra=extra_inputs,
            downsample=downsample,
            readers=n_readers,
        )
        tmp_out = stack.enter_context(atomic_path(out))
        stage = _stage_path(Path(out))
        stack.callback(lambda: stage.unlink(missing_ok=True))
        writer = _Writer(src, stage, block_size)
        if probabilities is not None:
            writer.open_probs(stack.enter_context(atomic_path(probabilities)))
        with (
            writer,
            task(progress, Path(out).name, run.n_windows(), "windows") as bar,
        ):
            run.run(writer.submit, probabilities is not None, bar)
        with rasterio.open(stage, "r+") as staged:  # tags travel into the COG
            staged.update_tags(
                FLAIR_VOID_PIXELS=str(writer.void_pixels),
                FLAIR_NODATA=f"{MAP_NODATA}: no data in the ortho (its nodata, mask or alpha)",
            )
            if src.decisions:
                staged.update_tags(FLAIR_DECISIONS=" | ".join(src.decisions))
        rasterio.shutil.copy(
            stage,
            tmp_out,
            driver="COG",
            compress="DEFLATE",
            blocksize=block_size,
            overview_resampling="nearest",
        )
        style_file = write_map_style(out) if style else None
    seconds = time.perf_counter() - start
    res_x, res_y = abs(src.transform.a), abs(src.transform.e)
    return PredictReport(
        out=Path(out),
        probabilities=Path(probabilities) if probabilities else None,
        height=src.height,
        width=src.width,
        n_windows=run.n_windows(),
        seconds=seconds,
        device=str(dev),
        buffer_bytes=run.buffer_bytes,
        km2=src.height * src.width * res_x * res_y / 1e6,
        class_pixels={c: int(n) for c, n in enumerate(writer.class_pixels) if c and n},
        void_pixels=writer.void_pixels,
        style=style_file,
        decisions=list(src.decisions),
    )


#: Stage files of versions before the pid was in their name: ``.<stem>.<8 chars>.stage.tif``.
_LEGACY_STAGE = re.compile(r"^\.(?P<stem>.+)\.[A-Za-z0-9_]{8}\.stage\.tif$")
#: A legacy stage file untouched this long is no live run's (a run rewrites it block by
#: block; the final COG copy only reads it, and takes minutes, not an hour).
LEGACY_STAGE_AGE_S = 3600.0


def _stage_path(out: Path) -> Path:
    """A fresh stage name for `out`, after deleting the stage files dead runs left.

    The name carries host and pid (:func:`flair_pipeline.io.temp_path_for` of
    ``<out name>.stage.tif``): stage files of dead processes of this host are deleted, those
    of live processes (another prediction into the same map) and of other hosts are kept.
    Stage files named by earlier versions (no pid) are deleted once untouched for
    :data:`LEGACY_STAGE_AGE_S`.

    Returns:
        The path of this process's stage file, beside `out` (not created here).
    """
    target = out.with_name(f"{out.name}.stage.tif")
    with contextlib.suppress(OSError):
        reap_dead_temps(target)
        now = time.time()
        for p in out.parent.glob(".*.stage.tif"):
            m = _LEGACY_STAGE.match(p.name)
            if m and m["stem"] == out.stem and now - p.stat().st_mtime > LEGACY_STAGE_AGE_S:
                p.unlink(missing_ok=True)
    return temp_path_for(target)


class _Writer:
    """Writes finished rows from a background thread, in order, into the output files."""

    def __init__(self, src: ImageSource, stage: Path, block: int) -> None:
        self.profile: dict[str, Any] = {
            "driver": "GTiff",
            "height": src.height,
            "width": src.width,
            "dtype": "uint8",
            "crs": src.crs,
            "transform": src.transform,
            "tiled": True,
            "blockxsize": block,
            "blockysize": block,
            "compress": "deflate",
            "zlevel": 1,
        }
        self.src = src
        self.map = rasterio.open(stage, "w", count=1, nodata=MAP_NODATA, **self.profile)
        self.map.write_colormap(1, map_colormap())
        self.map.set_band_description(1, MAP_DESCRIPTION)
        self.probs: rasterio.io.DatasetWriter | None = None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flair-write")
        self.pending: list[Future[None]] = []
        self.class_pixels = np.zeros(N_CLASSES_MERGED + 1, dtype=np.int64)
        self.void_pixels = 0

    def open_probs(self, path: Path) -> None:
        # probabilities have no free value for nodata (0 is a probability): a mask instead
        self.probs = rasterio.open(path, "w", count=N_CLASSES_MERGED, **self.profile)
        for i, name in enumerate(MERGED_NAMES, start=1):
            self.probs.set_band_description(i, f"p({name}) x 255")

    def submit(self, row: int, col: int, codes: np.ndarray, probs: torch.Tensor | None) -> None:
        while self.pending and (self.pending[0].done() or len(self.pending) > 4):
            self.pending.pop(0).result()  # re-raises a write error; bounds queued blocks
        arr = probs.numpy() if probs is not None else None
        self.pending.append(self.pool.submit(self._write, row, col, codes, arr))

    def _write(self, row: int, col: int, codes: np.ndarray, probs: np.ndarray | None) -> None:
        win = rasterio.windows.Window(col, row, codes.shape[1], codes.shape[0])
        valid = self.src.read_valid(row, col, codes.shape[0], codes.shape[1])
        void = ~valid
        n_void = int(void.sum())
        if n_void:
            codes[void] = MAP_NODATA
            if probs is not None:
                probs[:, void] = 0
        self.void_pixels += n_void
        self.class_pixels += np.bincount(codes.ravel(), minlength=N_CLASSES_MERGED + 1)
        self.map.write(codes, 1, window=win)
        if probs is not None and self.probs is not None:
            self.probs.write(probs, window=win)
            if self.src.may_have_voids:
                self.probs.write_mask(np.where(valid, 255, 0).astype(np.uint8), window=win)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for f in self.pending:
                f.result()
        finally:
            self.pool.shutdown(wait=True)
            self.map.close()
            if self.probs is not None:
                self.probs.close()
