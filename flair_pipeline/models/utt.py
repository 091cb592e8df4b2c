"""U-T&T: FLAIR-2's fusion of the aerial U-Net and a U-TAE on the Sentinel-2 series.

The aerial patch (512 px at 0.2 m = 102.4 m) covers only about 10 x 10 Sentinel-2 pixels in
the centre of the 40 x 40 window fed to U-TAE; the rest of the window is context. Each U-Net
encoder stage therefore receives two additions computed from U-TAE's last feature map:

* a *cropped* branch: the centre crop over the patch footprint, a 1x1 convolution to the
  stage's channels, bilinear resizing to the stage's size (spatially aligned detail);
* a *collapsed* branch: the spatial mean of the whole window, an MLP, broadcast over the
  stage (the temporal/phenological context of the surroundings), computed per sample.

Modality dropout (training only) zeroes the satellite contribution of random samples so the
U-Net does not come to depend on a series that may be cloudy or missing. The U-TAE's own
13-class output is returned as "aux" for an auxiliary loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flair_pipeline.errors import ConfigError
from flair_pipeline.model_registry import MODELS
from flair_pipeline.models.unet import FlairModel, build_unet
from flair_pipeline.models.utae import UTAE

#: U-TAE settings of FLAIR's U-T&T (the paper's U-TAE with a 13-class head).
UTAE_DEFAULTS: dict[str, Any] = {
    "encoder_widths": [64, 64, 64, 128],
    "decoder_widths": [32, 32, 64, 128],
    "out_conv": [32, 13],
    "str_conv_k": 4,
    "str_conv_s": 2,
    "str_conv_p": 1,
    "n_head": 16,
    "d_model": 256,
    "d_k": 4,
    "encoder_norm": "group",
    "decoder_norm": "batch",
    "n_groups": 4,
    "dropout": 0.2,
}
#: crop_px: 102.4 m / 10 m = 10.24 S2 px, rounded to 10 so that the crop of an even window
#: (40 px) is exactly centred; collapse_hidden: width of the collapsed branch's MLP.
FUSION_DEFAULTS: dict[str, Any] = {"crop_px": 10, "collapse_hidden": 64, "modality_dropout": 0.0}


def _resolve(
    kind: str, given: Mapping[str, Any] | None, defaults: dict[str, Any]
) -> dict[str, Any]:
    """Defaults overridden by `given`; unknown keys are a ConfigError (typos must not pass).

    Args:
        kind: Which options (``utae``, ``fusion``), named in the error.
        given: Options set by the config, or None.
        defaults: Every known option with its default.

    Returns:
        The options, tuples turned into lists (as checkpoints store them).

    Raises:
        ConfigError: `given` holds a key `defaults` does not know.
    """
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"U-T&T {kind}: unknown keys {unknown}; known: {sorted(defaults)}")
    out = {**defaults, **given}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre `size` x `size` crop of (B, C, H, W) (clamped to the map's size).

    Args:
        x: Feature maps (B, C, H, W).
        size: Side of the crop in pixels.

    Returns:
        A view (B, C, min(size, H), min(size, W)).
    """
    h, w = x.shape[-2:]
    ch, cw = min(size, h), min(size, w)
    h0, w0 = (h - ch) // 2, (w - cw) // 2
    return x[..., h0 : h0 + ch, w0 : w0 + cw]


class FusionModule(nn.Module):
    """Cropped + collapsed contribution of the U-TAE map to one U-Net encoder stage."""

    def __init__(self, in_channels: int, out_channels: int, crop_px: int, hidden: int) -> None:
        super().__init__()
        self.crop_px = crop_px
        self.crop_proj = nn.Conv2d(in_channels, out_channels, 1)
        self.collapse = nn.Sequential(
            nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_channels)
        )

    def forward(self, fmap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, F, h, w) -> (B, out_channels, *size).

        Args:
            fmap: U-TAE's feature maps at Sentinel-2 resolution.
            size: Output (height, width), the aerial decoder's.

        Returns:
            The centre crop projected and resized, plus the whole-map summary broadcast.
        """
        # 1x1 conv before resizing: both are linear and bilinear weights sum to 1, so the
        # order does not change the result, and the conv runs on 10x10 instead of 256x256.
        cropped = self.crop_proj(centre_crop(fmap, self.crop_px))
        cropped = F.interpolate(cropped, size=size, mode="bilinear", align_corners=False)
        collapsed = self.collapse(fmap.mean(dim=(2, 3)))  # (B, C): one summary per sample
        out: torch.Tensor = cropped + collapsed[:, :, None, None]
        return out


class UTT(FlairModel):
    """U-Net (aerial) + U-TAE (Sentinel-2) with a fusion module per encoder stage."""

    name = "utt"
    required_inputs = MODELS[name].inputs  # the registry's, spelled once

    def __init__(
        self,
        in_channels: int = 5,
        classes: int = 13,
        encoder_weights: str | None = None,
        s2_bands: int = 10,
        utae: Mapping[str, Any] | None = None,
        fusion: Mapping[str, Any] | None = None,
    ) -> None:
        utae_kw = _resolve("utae", utae, {**UTAE_DEFAULTS, "out_conv": [32, classes]})
        fusion_kw = _resolve("fusion", fusion, FUSION_DEFAULTS)
        if utae_kw["out_conv"][-1] != classes:
            raise ConfigError(
                f"U-T&T utae.out_conv[-1] ({utae_kw['out_conv'][-1]}) must be "
                f"the class count {classes} (the aux head)"
            )
        p = float(fusion_kw["modality_dropout"])
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"U-T&T fusion.modality_dropout must be in [0, 1], got {p}")
        if int(fusion_kw["crop_px"]) < 1:
            raise ConfigError(f"U-T&T fusion.crop_px must be >= 1, got {fusion_kw['crop_px']}")
        super().__init__(
            {
                "in_channels": in_channels,
                "classes": classes,
                "encoder_weights": None,
                "s2_bands": s2_bands,
                "utae": utae_kw,
                "fusion": fusion_kw,
            }
        )
        net = build_unet(in_channels, classes, encoder_weights)
        self.encoder, self.decoder = net.encoder, net.decoder
        self.segmentation_head = net.segmentation_head
        self.utae = UTAE(input_dim=s2_bands, **utae_kw)
        self.modality_dropout = p
        # Stage 0 is the raw input, which the smp decoder drops: fuse into stages 1..5.
        self.fusion = nn.ModuleList(
            FusionModule(
                self.utae.feature_channels,
                c,
                int(fusion_kw["crop_px"]),
                int(fusion_kw["collapse_hidden"]),
            )
            for c in self.encoder.out_channels[1:]
        )

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Fused logits (B, classes, H, W) and the U-TAE's auxiliary logits.

        `batch` holds ``img`` (B, C, H, W), ``s2`` (B, T, bands, h, w), ``dates`` (B, T) and
        ``pad_mask`` (B, T).

        Returns:
            ``{'logits': ..., 'aux': ...}``; ``aux`` covers the whole super-area window.

        Raises:
            ValueError: an input the model needs is missing from `batch`.
        """
        self.check_inputs(batch)
        img = batch["img"]
        aux, fmap = self.utae(batch["s2"], batch["dates"], batch["pad_mask"])
        features = list(self.encoder(img))
        keep = None
        if self.training and self.modality_dropout > 0:
            keep = torch.rand(img.shape[0], device=img.device) >= self.modality_dropout
            keep = keep.to(fmap.dtype)[:, None, None, None]
        for i, fuse in enumerate(self.fusion, start=1):
            add = fuse(fmap, tuple(features[i].shape[-2:]))
            features[i] = features[i] + (add if keep is None else add * keep).to(features[i].dtype)
        logits = self.segmentation_head(self.decoder(features))
        return {"logits": logits, "aux": aux}
