"""FLAIR-HUB's multimodal model: one encoder per modality, fused per stage, one decoder per task.

Written from IGN's ``src/flair_hub/models/flair_model.py`` (IGNF/FLAIR-HUB 3d5693b:
``FLAIR_HUB_Model``, ``FusionHandler``) and our U-T&T (:mod:`flair_pipeline.models.utt`);
the batch is :mod:`flair_pipeline.models.hub_inputs`'s contract.

* **Mono-temporal inputs** (``AERIAL_RGBI``, ``AERIAL-RLT_PAN``, ``DEM_ELEV``, ``SPOT_RGBI``):
  one smp encoder each, all of the architecture `encoder` (any smp encoder, timm ``tu-``
  encoders included), as IGN builds one ``FLAIR_Monotemp`` encoder per modality. An input
  smaller than the reference (SPOT, 64 px against the aerial 512 px) is resized bilinearly
  to the reference's size *before* its encoder, so every stage of every encoder has the
  same size and fusion needs no further resizing (IGN resizes the feature maps instead;
  resizing the input costs more compute on SPOT but keeps the encoders' strides aligned).
  The reference is ``AERIAL_RGBI`` when it is an input, else the largest mono input.
* **Series** (``SENTINEL2_TS``, ``SENTINEL1-ASC_TS``, ``SENTINEL1-DESC_TS``): one U-TAE
  (:class:`~flair_pipeline.models.utae.UTAE`) each, with IGN's ``multitemp_model``
  defaults (``configs/train/config_models.yaml``: widths 64/64/64/128 and 32/32/64/128,
  ``str_conv_k 3, s 1, p 1`` so that FLAIR-HUB's 10 x 10 px windows are never
  downsampled). Its last feature map reaches every encoder stage as in U-T&T, through a
  :class:`~flair_pipeline.models.utt.FusionModule` per stage (cropped + collapsed
  branches; at FLAIR-HUB's 10 px windows with ``crop_px`` 10 the crop is the whole map),
  instead of IGN's per-stage U-TAE maps.
* **Fusion** per encoder stage (IGN's ``FusionHandler``): the stage features of every
  modality (a series: its fusion module's output) are concatenated and a 1x1 convolution
  brings them to the reference encoder's stage width. With a single modality there is
  nothing to fuse and the features pass unchanged (IGN's case 1), so an aerial-only model
  is a plain U-Net. Stage 0 (the raw input, which the smp decoder drops) is the
  reference's.
* **Modality dropout** (training only): each sample drops modality ``m`` with probability
  ``modality_dropout[m]``, which zeroes that modality's stage features (its contribution
  to the fusion convolutions) for that sample. A sample that would lose every modality
  keeps its first one (the reference, or the first series of a series-only model). IGN
  instead replaces a whole batch's feature maps by random tensors (``modality_dropout``).
* **Heads**: one smp U-Net decoder + segmentation head per task. A series-only model has
  no encoder stages: each task's head is a 1x1 convolution over the series' concatenated
  feature maps (IGN's ``nn.Conv2d`` decoder of that case), centre-cropped to ``crop_px``.
  Logits are resized bilinearly to the size of the batch's first task label (FLAIR-HUB's
  ``img_size``; labels are at the aerial size, so SPOT-only models predict at it too);
  without a label (prediction) they stay at the reference mono input's size, or, for a
  series-only model, at the crop's.
* **Auxiliary heads** for the series in `aux_series`: the U-TAE's own ``out_conv``, whose
  last width is the sum of the tasks' class counts (IGN's ``task_nclasses``), split per
  task, cropped and resized like the logits, under :func:`~flair_pipeline.models.hub_inputs.aux_key`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base import initialization as smp_init
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
from torch import nn

from flair_pipeline.errors import ConfigError
from flair_pipeline.models.hub_inputs import MONO, SERIES, TASKS, aux_key, dates_key, pad_key
from flair_pipeline.models.utae import UTAE
from flair_pipeline.models.utt import FUSION_DEFAULTS, UTAE_DEFAULTS, FusionModule, centre_crop

#: U-TAE settings: IGN's ``multitemp_model`` (``configs/train/config_models.yaml``; its
#: ``agg_mode att_group`` and ``pad_value``/``padding_mode`` are what our U-TAE does), our
#: U-TAE's own options (``decoder_norm``, ``n_groups``, ``dropout``) at their defaults, and
#: the fusion's (``crop_px``: 10 px = FLAIR-HUB's 102.4 m patch at 10.24 m; the width of
#: the collapsed branch's MLP). ``out_conv[-1]`` is replaced by the tasks' class count.
HUB_UTAE_DEFAULTS: dict[str, Any] = {
    **UTAE_DEFAULTS,  # FLAIR-2's U-T&T: same widths, heads and norms as IGN's multitemp_model
    "out_conv": [32, 19],
    "str_conv_k": 3,  # FLAIR-HUB's 10 px windows: no striding (FLAIR-2's 40 px use 4/2/1)
    "str_conv_s": 1,
    "str_conv_p": 1,
    "crop_px": FUSION_DEFAULTS["crop_px"],
    "collapse_hidden": FUSION_DEFAULTS["collapse_hidden"],
}
_FUSION_KEYS = ("crop_px", "collapse_hidden")
#: smp's U-Net decoder widths (``smp.Unet``'s default, FLAIR's U-Net's).
DECODER_CHANNELS: tuple[int, ...] = (256, 128, 64, 32, 16)


def resolve_utae(given: Mapping[str, Any] | None, n_classes: int) -> dict[str, Any]:
    """U-TAE + fusion options: :data:`HUB_UTAE_DEFAULTS` overridden by `given`.

    Args:
        given: Options from the config, or None.
        n_classes: Sum of the tasks' class counts (the last ``out_conv`` width).

    Returns:
        Every option, lists for sequences, ``out_conv[-1]`` = `n_classes`.

    Raises:
        ConfigError: An unknown key (typos must not pass), or ``crop_px`` below 1.
    """
    given = dict(given or {})
    unknown = sorted(set(given) - set(HUB_UTAE_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"FLAIR-HUB utae options: unknown keys {unknown}; known: {sorted(HUB_UTAE_DEFAULTS)}"
        )
    out = {**HUB_UTAE_DEFAULTS, **given}
    out = {k: list(v) if isinstance(v, tuple | list) else v for k, v in out.items()}
    out["out_conv"] = [*out["out_conv"][:-1], n_classes]
    if int(out["crop_px"]) < 1:
        raise ConfigError(f"FLAIR-HUB utae.crop_px must be >= 1, got {out['crop_px']}")
    return out


def _check_names(inputs: Mapping[str, int], tasks: Mapping[str, int]) -> None:
    """Refuse unknown modality or task names and empty selections.

    Raises:
        ConfigError: Naming the offending key and the known ones.
    """
    bad = sorted(set(inputs) - set(MONO) - set(SERIES))
    if bad or not inputs:
        raise ConfigError(
            f"FLAIR-HUB model inputs {sorted(inputs)}: unknown {bad}, or none; "
            f"known: {list(MONO) + list(SERIES)}"
        )
    bad = sorted(set(tasks) - set(TASKS))
    if bad or not tasks:
        raise ConfigError(
            f"FLAIR-HUB model tasks {sorted(tasks)}: unknown {bad}, or none; known: {list(TASKS)}"
        )
    for name, n in {**inputs, **tasks}.items():
        if int(n) < 1:
            raise ConfigError(f"FLAIR-HUB model: {name} needs a count >= 1, got {n}")


def build_encoder(name: str, in_channels: int, weights: str | None) -> tuple[nn.Module, list[int]]:
    """An smp encoder (depth 5) named `name` (``resnet34``, ``tu-resnet18``, ...).

    Args:
        name: smp's encoder name.
        in_channels: Input channels (smp adapts pretrained first convolutions).
        weights: smp's pretrained weights name (``imagenet``) or None.

    Returns:
        The encoder and its 6 stage widths (stage 0: the input; 0 for a stage the
        encoder does not have, smp's convention).

    Raises:
        ConfigError: The encoder is unknown or its weights cannot be obtained.
    """
    try:
        encoder: Any = smp.encoders.get_encoder(
            name, in_channels=in_channels, depth=5, weights=weights
        )
    except Exception as exc:  # unknown names, hub and network errors come in many classes
        raise ConfigError(
            f"FLAIR-HUB encoder {name!r} (weights {weights!r}): smp cannot build it "
            f"({type(exc).__name__}: {str(exc)[:200]}); use an smp encoder name "
            "(e.g. resnet34, tu-resnet18) and weights None on an offline machine"
        ) from exc
    module: nn.Module = encoder
    return module, [int(c) for c in encoder.out_channels]


class TaskDecoder(nn.Module):
    """smp's U-Net decoder and segmentation head for one task (as ``smp.Unet`` builds them)."""

    def __init__(self, encoder_channels: Sequence[int], classes: int, vgg: bool) -> None:
        super().__init__()
        self.decoder = UnetDecoder(
            encoder_channels=list(encoder_channels),
            decoder_channels=DECODER_CHANNELS,
            n_blocks=5,
            add_center_block=vgg,
        )
        self.head = smp.base.SegmentationHead(
            in_channels=DECODER_CHANNELS[-1], out_channels=classes, kernel_size=3
        )
        smp_init.initialize_decoder(self.decoder)
        smp_init.initialize_head(self.head)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Stage features (stage 0 first) -> logits (B, classes, H, W).

        Args:
            features: The fused encoder stages.

        Returns:
            The task's logits at the decoder's output size.
        """
        out: torch.Tensor = self.head(self.decoder(features))
        return out


class HubModel(nn.Module):
    """FLAIR-HUB's multimodal, multi-task segmentation model (see the module docstring)."""

    def __init__(
        self,
        *,
        inputs: dict[str, int],
        tasks: dict[str, int],
        encoder: str = "resnet34",
        encoder_weights: str | None = None,
        utae: dict[str, Any] | None = None,
        modality_dropout: dict[str, float] | None = None,
        aux_series: tuple[str, ...] = (),
    ) -> None:
        """Build the model.

        Args:
            inputs: Modality -> channels (a series: channels per date).
            tasks: Task -> class count.
            encoder: smp encoder of every mono-temporal input.
            encoder_weights: smp pretrained weights (``imagenet``) or None.
            utae: U-TAE and fusion options (:data:`HUB_UTAE_DEFAULTS`).
            modality_dropout: Modality -> probability of dropping it per training sample.
            aux_series: Series given auxiliary heads.

        Raises:
            ConfigError: Unknown modality, task or option; a probability outside [0, 1];
                an aux series that is not a series input; an unbuildable encoder.
        """
        super().__init__()
        _check_names(inputs, tasks)
        self.mono = [m for m in MONO if m in inputs]
        self.series = [s for s in SERIES if s in inputs]
        self.tasks = {t: int(tasks[t]) for t in TASKS if t in tasks}
        self.modalities = [*self.mono, *self.series]
        dropout = dict(modality_dropout or {})
        bad = sorted(set(dropout) - set(self.modalities))
        if bad or not all(0.0 <= float(p) <= 1.0 for p in dropout.values()):
            raise ConfigError(
                f"FLAIR-HUB modality_dropout {dropout}: keys must be inputs "
                f"({self.modalities}; unknown: {bad}) and values in [0, 1]"
            )
        self.dropout_p = {m: float(dropout.get(m, 0.0)) for m in self.modalities}
        bad = sorted(set(aux_series) - set(self.series))
        if bad:
            raise ConfigError(
                f"FLAIR-HUB aux_series {bad}: not series inputs of the model ({self.series})"
            )
        self.aux_series = [s for s in self.series if s in aux_series]
        self.utae_kw = resolve_utae(utae, sum(self.tasks.values()))
        self.crop_px = int(self.utae_kw["crop_px"])
        self.in_channels = {m: int(c) for m, c in inputs.items()}
        utae_args = {k: v for k, v in self.utae_kw.items() if k not in _FUSION_KEYS}
        utaes = {s: UTAE(input_dim=self.in_channels[s], **utae_args) for s in self.series}
        #: channels of a U-TAE's feature map (the input of its out_conv)
        self.series_width = {s: int(u.feature_channels) for s, u in utaes.items()}
        self.utaes = nn.ModuleDict(utaes)
        encoders = {
            m: build_encoder(encoder, self.in_channels[m], encoder_weights) for m in self.mono
        }
        self.encoders = nn.ModuleDict({m: e for m, (e, _) in encoders.items()})
        if self.mono:
            #: widths of the encoders' 6 stages (stage 0: the input; smp marks unused ones 0)
            self.stage_widths = encoders[self.mono[0]][1]
            self._build_mono_heads(encoder)
        else:
            width = sum(self.series_width.values())
            self.series_heads = nn.ModuleDict(
                {t: nn.Conv2d(width, k, 1) for t, k in self.tasks.items()}
            )

    def _build_mono_heads(self, encoder: str) -> None:
        """Fusion modules and convolutions per stage, and one decoder per task.

        Args:
            encoder: The encoder's name (smp adds a centre block for VGG).
        """
        widths = self.stage_widths
        hidden = int(self.utae_kw["collapse_hidden"])
        self.series_fusion = nn.ModuleDict(
            {
                s: nn.ModuleList(
                    FusionModule(self.series_width[s], max(c, 1), self.crop_px, hidden)
                    for c in widths[1:]
                )
                for s in self.series
            }
        )
        n = len(self.modalities)
        self.fuse = nn.ModuleList(
            nn.Conv2d(n * c, c, 1) if n > 1 and c > 0 else nn.Identity() for c in widths[1:]
        )
        vgg = encoder.startswith("vgg")
        self.decoders = nn.ModuleDict(
            {t: TaskDecoder(widths, k, vgg) for t, k in self.tasks.items()}
        )

    # -- forward -----------------------------------------------------------------------
    def _keep_masks(self, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Per modality, a float (B,) mask: 0 where modality dropout drops it.

        In evaluation, or with every probability at 0, every mask is all ones. A sample
        whose every modality was drawn keeps the first one (``self.modalities[0]``).

        Args:
            batch_size: B.
            device: Where the masks go.

        Returns:
            Modality -> float32 (B,) tensor of 0 and 1.
        """
        ones = torch.ones(batch_size, device=device)
        if not self.training or not any(self.dropout_p.values()):
            return dict.fromkeys(self.modalities, ones)
        keep = {
            m: (torch.rand(batch_size, device=device) >= p).float()
            for m, p in self.dropout_p.items()
        }
        none_left = torch.stack(list(keep.values())).sum(0) == 0
        first = self.modalities[0]
        keep[first] = torch.where(none_left, ones, keep[first])
        return keep

    def _check_batch(self, batch: Mapping[str, Any]) -> None:
        """Every input the model reads is in `batch`, with the channels it was built for.

        Raises:
            ValueError: Naming the missing key or the wrong shape.
        """
        needed = [*self.mono, *(k for s in self.series for k in (s, dates_key(s), pad_key(s)))]
        missing = [k for k in needed if k not in batch]
        if missing:
            raise ValueError(
                f"FLAIR-HUB model: batch lacks {missing} (needs {needed}; has {sorted(map(str, batch))})"
            )
        for m in self.mono:
            x = batch[m]
            want = self.in_channels[m]
            if x.ndim != 4 or x.shape[1] != want:
                raise ValueError(f"FLAIR-HUB model: {m} is {tuple(x.shape)}, expected B×{want}×H×W")
        for s in self.series:
            x = batch[s]
            want = self.in_channels[s]
            if x.ndim != 5 or x.shape[2] != want:
                raise ValueError(
                    f"FLAIR-HUB model: {s} is {tuple(x.shape)}, expected B×T×{want}×h×w"
                )

    def _series_maps(
        self, batch: Mapping[str, torch.Tensor], size: tuple[int, int]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Each series' U-TAE feature map, and its auxiliary logits when asked.

        Args:
            batch: The contract batch.
            size: (H, W) the auxiliary logits are resized to.

        Returns:
            (series -> (B, F, h, w) feature map, aux key -> (B, K_t, *size) logits).
        """
        fmaps: dict[str, torch.Tensor] = {}
        aux: dict[str, torch.Tensor] = {}
        for s in self.series:
            logits, fmaps[s] = self.utaes[s](batch[s], batch[dates_key(s)], batch[pad_key(s)])
            if s in self.aux_series:
                crop = centre_crop(logits, self.crop_px)
                crop = F.interpolate(crop, size=size, mode="bilinear", align_corners=False)
                parts = torch.split(crop, list(self.tasks.values()), dim=1)
                for t, part in zip(self.tasks, parts, strict=True):
                    aux[aux_key(s, t)] = part
        return fmaps, aux

    def _mono_size(self, batch: Mapping[str, torch.Tensor]) -> tuple[int, int]:
        """(H, W) of the reference mono input: the aerial image, else the largest.

        Returns:
            The size every mono input is resized to, and the logits' size.
        """
        if "AERIAL_RGBI" in self.mono:
            h, w = batch["AERIAL_RGBI"].shape[-2:]
            return int(h), int(w)
        h, w = max((tuple(batch[m].shape[-2:]) for m in self.mono), key=lambda s: s[0] * s[1])
        return int(h), int(w)

    def _out_size(self, batch: Mapping[str, Any]) -> tuple[int, int]:
        """(H, W) of the logits: the first task label's, else the reference's, else the crop.

        Returns:
            The size of the batch's first task label when it holds one (FLAIR-HUB's
            ``img_size``: labels are at the aerial size, larger than SPOT's); else the
            reference mono input's size; else (a series-only model predicting)
            (crop_px, crop_px) clamped to the series' size.
        """
        for t in self.tasks:
            if t in batch:
                h, w = batch[t].shape[-2:]
                return int(h), int(w)
        if self.mono:
            return self._mono_size(batch)
        h, w = batch[self.series[0]].shape[-2:]
        return min(self.crop_px, int(h)), min(self.crop_px, int(w))

    def forward(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Logits per task (and auxiliary logits) from a contract batch.

        Args:
            batch: :mod:`~flair_pipeline.models.hub_inputs`'s batch: mono inputs float32
                B×C×H×W, series float32 B×T×C×h×w with their int64 dates and bool
                padding masks (B×T); other keys (labels, ids) are ignored, except that a
                series-only model reads its first task label's size.

        Returns:
            ``{task: float32 B×K×H×W}`` (H×W: the first task label's size when the batch
            holds one, else the reference mono input's, see :meth:`_out_size`) and ``{aux_key(s, task): B×K×H×W}`` for `aux_series`.

        Raises:
            ValueError: An input is missing or has the wrong number of channels.
        """
        self._check_batch(batch)
        size = self._out_size(batch)
        first = batch[self.modalities[0]]
        keep = self._keep_masks(first.shape[0], first.device)
        fmaps, out = self._series_maps(batch, size)
        if not self.mono:
            maps = [
                centre_crop(fmaps[s], self.crop_px) * keep[s][:, None, None, None]
                for s in self.series
            ]
            for t, head in self.series_heads.items():
                logits = head(torch.cat(maps, 1))
                out[t] = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            return out
        features = self._fused_features(batch, self._mono_size(batch), fmaps, keep)
        for t, dec in self.decoders.items():
            logits = dec(features)
            if tuple(logits.shape[-2:]) != size:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            out[t] = logits
        return out

    def _fused_features(
        self,
        batch: Mapping[str, torch.Tensor],
        size: tuple[int, int],
        fmaps: Mapping[str, torch.Tensor],
        keep: Mapping[str, torch.Tensor],
    ) -> list[torch.Tensor]:
        """Encode every mono input, add the series' stage maps, fuse per stage.

        Args:
            batch: The contract batch.
            size: The reference size every mono input is resized to.
            fmaps: Each series' U-TAE feature map.
            keep: Each modality's (B,) dropout mask.

        Returns:
            The fused stage features, stage 0 (the reference input) first.
        """
        per_mod: dict[str, list[torch.Tensor]] = {}
        for m in self.mono:
            x = batch[m]
            if tuple(x.shape[-2:]) != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            k = keep[m][:, None, None, None]
            per_mod[m] = [f * k.to(f.dtype) for f in self.encoders[m](x)]
        ref = per_mod[self.mono[0]]
        for s in self.series:
            k = keep[s][:, None, None, None]
            fusion = [*self.series_fusion[s].children()]
            per_mod[s] = [ref[0]] + [
                (fusion[i - 1](fmaps[s], tuple(ref[i].shape[-2:])) * k).to(ref[i].dtype)
                for i in range(1, len(ref))
            ]
        fused = [ref[0]]
        for i, conv in enumerate(self.fuse, start=1):
            if self.stage_widths[i] == 0 or len(self.modalities) == 1:
                fused.append(ref[i])
            else:
                fused.append(conv(torch.cat([per_mod[m][i] for m in self.modalities], 1)))
        return fused
