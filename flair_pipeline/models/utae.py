"""U-TAE: a U-Net over image time series with lightweight temporal attention.

Written from Garnot & Landrieu, "Panoptic segmentation of satellite image time series with
convolutional temporal attention networks" (ICCV 2021), as used by FLAIR's U-T&T for the
Sentinel-2 branch. A shared convolutional encoder processes every date; an L-TAE
(lightweight temporal attention encoder) at the lowest resolution computes, per pixel and
per head, one attention weight for each date; those masks, upsampled, collapse the skip
features of every scale over time; a convolutional decoder then works on single maps.

Series have different lengths, so batches are padded and `pad_mask` marks padded dates.
Padded dates never enter the encoder (it only sees valid dates, so no normalisation layer
sees them either) and receive exactly zero attention: their values cannot change any
output, in training as in evaluation. The L-TAE normalises each date on its own (a
LayerNorm per date instead of the original GroupNorm over channels *and* dates) for the
same reason.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from flair_pipeline.errors import ConfigError


def norm_layer(kind: str, channels: int, n_groups: int = 4) -> nn.Module:
    """'group' (batch-independent, safe for per-date encoders) or 'batch'.

    Args:
        kind: ``group`` or ``batch``.
        channels: Channels normalised.
        n_groups: Groups for GroupNorm (gcd with `channels`).

    Returns:
        The normalisation layer.

    Raises:
        ConfigError: `kind` is neither.
    """
    if kind == "group":
        return nn.GroupNorm(math.gcd(n_groups, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ConfigError(f"U-TAE norm must be 'group' or 'batch', got {kind!r}")


def conv_layer(
    c_in: int, c_out: int, norm: str, k: int = 3, s: int = 1, p: int = 1, n_groups: int = 4
) -> nn.Sequential:
    """Conv - norm - ReLU; reflect padding avoids dark borders on small S2 windows.

    Args:
        c_in: Input channels.
        c_out: Output channels.
        norm: ``group`` or ``batch``.
        k: Kernel size.
        s: Stride.
        p: Padding (reflect when > 0).
        n_groups: Groups for GroupNorm.

    Returns:
        The three layers.
    """
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, s, p, padding_mode="reflect" if p else "zeros"),
        norm_layer(norm, c_out, n_groups),
        nn.ReLU(inplace=True),
    )


class DownBlock(nn.Module):
    """Strided conv (downsampling) then two convs with a residual connection."""

    def __init__(
        self, c_in: int, c_out: int, k: int, s: int, p: int, norm: str, n_groups: int
    ) -> None:
        super().__init__()
        self.down = conv_layer(c_in, c_in, norm, k, s, p, n_groups)
        self.conv1 = conv_layer(c_in, c_out, norm, n_groups=n_groups)
        self.conv2 = conv_layer(c_out, c_out, norm, n_groups=n_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Halve the spatial size of `x` (N, C, H, W), then a residual convolution.

        Args:
            x: Feature maps (N, C_in, H, W).

        Returns:
            (N, C_out, H', W'), H' and W' set by the strided convolution.
        """
        x = self.conv1(self.down(x))
        out: torch.Tensor = x + self.conv2(x)
        return out


class UpBlock(nn.Module):
    """Transposed conv (upsampling), concatenation with the projected skip, two convs."""

    def __init__(
        self, c_in: int, c_out: int, c_skip: int, k: int, s: int, p: int, norm: str, n_groups: int
    ) -> None:
        super().__init__()
        self.skip = conv_layer(c_skip, c_skip, norm, 1, 1, 0, n_groups)
        self.up = nn.Sequential(
            nn.ConvTranspose2d(c_in, c_out, k, s, p),
            norm_layer(norm, c_out, n_groups),
            nn.ReLU(inplace=True),
        )
        self.conv1 = conv_layer(c_out + c_skip, c_out, norm, n_groups=n_groups)
        self.conv2 = conv_layer(c_out, c_out, norm, n_groups=n_groups)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample `x` to `skip`'s size, concatenate the projected skip, convolve.

        Args:
            x: Decoder features (N, C, h, w).
            skip: Encoder features of the stage (N, C_skip, H, W).

        Returns:
            (N, C_out, H, W).
        """
        x = self.up(x)
        if x.shape[-2:] != skip.shape[-2:]:  # odd sizes: strided conv floors, upsampling doubles
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = self.conv1(torch.cat([x, self.skip(skip)], dim=1))
        out: torch.Tensor = x + self.conv2(x)
        return out


def date_encoding(days: torch.Tensor, size: int, period: float = 1000.0) -> torch.Tensor:
    """(B, T) day-of-year -> (B, T, size) transformer sinusoids with T = `period`.

    Args:
        days: (B, T) day of year.
        size: Encoding length.
        period: The sinusoids' base period.

    Returns:
        float32 (B, T, size): sin at even, cos at odd positions.
    """
    i = torch.arange(size, device=days.device)
    denom = torch.pow(period, 2 * (i // 2) / size)
    ang = days.float()[..., None] / denom
    return torch.where(i % 2 == 0, torch.sin(ang), torch.cos(ang))


class LTAE(nn.Module):
    """Lightweight temporal attention encoder (Garnot & Landrieu 2020), per pixel.

    Each head has a learnt master query; keys come from the date's features plus its date
    encoding; the values are the head's channel group. Returns the aggregated map and the
    per-head attention (n_head, B, T, H, W) that U-TAE reuses at every scale.
    """

    def __init__(
        self,
        in_channels: int,
        n_head: int = 16,
        d_k: int = 4,
        d_model: int = 256,
        out_channels: int | None = None,
        dropout: float = 0.2,
        period: float = 1000.0,
    ) -> None:
        super().__init__()
        if d_model % n_head:
            raise ConfigError(f"L-TAE: d_model {d_model} must be a multiple of n_head {n_head}")
        out_channels = out_channels or in_channels
        self.n_head, self.d_k, self.d_model, self.period = n_head, d_k, d_model, period
        self.in_norm = nn.LayerNorm(in_channels)
        self.in_proj = nn.Linear(in_channels, d_model)
        self.query = nn.Parameter(torch.randn(n_head, d_k) * math.sqrt(2.0 / d_k))
        self.key = nn.Linear(d_model, n_head * d_k)
        self.attn_dropout = nn.Dropout(dropout)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, out_channels), nn.BatchNorm1d(out_channels), nn.ReLU(True)
        )
        self.out_dropout = nn.Dropout(dropout)
        self.out_norm = nn.GroupNorm(math.gcd(n_head, out_channels), out_channels)

    def forward(
        self, x: torch.Tensor, dates: torch.Tensor, pad_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """X (B, T, C, H, W) -> (out (B, out, H, W), attention (n_head, B, T, H, W)).

        Args:
            x: (B, T, C, H, W) features.
            dates: (B, T) day of year.
            pad_mask: (B, T) True at padded dates (attention weight 0).

        Returns:
            The attention-weighted projection and the attention weights.
        """
        b, t, c, h, w = x.shape
        seq = x.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c)
        pe = date_encoding(dates, self.d_model // self.n_head, self.period).repeat(
            1, 1, self.n_head
        )
        pe = pe[:, None, None].expand(b, h, w, t, self.d_model).reshape(b * h * w, t, -1)
        v = self.in_proj(self.in_norm(seq)) + pe.to(seq.dtype)  # (N, T, d_model)
        k = self.key(v).view(-1, t, self.n_head, self.d_k)
        scores = torch.einsum("nthd,hd->nht", k, self.query.to(k.dtype)) / math.sqrt(self.d_k)
        pad = pad_mask[:, None, None, None, :].expand(b, h, w, 1, t).reshape(b * h * w, 1, t)
        scores = scores.masked_fill(pad, torch.finfo(scores.dtype).min)
        # Multiplying by the valid mask makes padded weights exactly 0, and an all-padded
        # series (uniform softmax over the fill value) an all-zero attention.
        attn = torch.softmax(scores, dim=-1) * (~pad).to(scores.dtype)
        attn = self.attn_dropout(attn)  # (N, heads, T)
        vh = v.view(-1, t, self.n_head, self.d_model // self.n_head)
        out = torch.einsum("nht,nthd->nhd", attn, vh).reshape(-1, self.d_model)
        out = self.out_dropout(self.mlp(out))
        out = out.view(b, h, w, -1).permute(0, 3, 1, 2)
        out = self.out_norm(out)
        attn = attn.view(b, h, w, self.n_head, t).permute(3, 0, 4, 1, 2)
        return out, attn


def temporal_aggregate(x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
    """Collapse (B, T, C, h, w) over time with attention (heads, B, T, H, W) resized to h, w.

    Channels are split into one group per head (the paper's "att_group") when C is a
    multiple of the head count; otherwise (narrow models, e.g. U-TAE width 8 with 16 heads)
    every channel uses the head-averaged attention (the paper's "att_mean") rather than
    refusing the configuration. Bilinear resizing keeps padded dates at weight 0 and valid
    weights summing to 1.

    Args:
        x: (B, T, C, h, w) features.
        attn: (heads, B, T, H, W) attention weights.

    Returns:
        (B, C, h, w).
    """
    heads, b, t, hh, ww = attn.shape
    _, _, c, h, w = x.shape
    if (hh, ww) != (h, w):
        attn = F.interpolate(
            attn.reshape(heads * b, t, hh, ww), size=(h, w), mode="bilinear", align_corners=False
        ).view(heads, b, t, h, w)
    attn = attn.to(x.dtype)
    if c % heads:
        return torch.einsum("btyx,btcyx->bcyx", attn.mean(0), x)
    xg = x.view(b, t, heads, c // heads, h, w)
    return torch.einsum("kbtyx,btkcyx->bkcyx", attn, xg).reshape(b, c, h, w)


class UTAE(nn.Module):
    """U-TAE: a U-Net over an image time series with lightweight temporal attention.

    U-TAE; forward returns (logits (B, out_conv[-1], H, W), features (B, F, H, W)),
    the features being the input of the final 1x1 convolution (FLAIR's fusion uses them).

    `encoder_norm="group"` (the paper's default) keeps each date's encoding independent of
    the other dates and samples; "batch" also stays pad-invariant (only valid dates are
    encoded) but makes a date's features depend on the rest of the batch in training.
    """

    def __init__(
        self,
        input_dim: int = 10,
        encoder_widths: Sequence[int] = (64, 64, 64, 128),
        decoder_widths: Sequence[int] = (32, 32, 64, 128),
        out_conv: Sequence[int] = (32, 13),
        str_conv_k: int = 4,
        str_conv_s: int = 2,
        str_conv_p: int = 1,
        n_head: int = 16,
        d_model: int = 256,
        d_k: int = 4,
        encoder_norm: str = "group",
        decoder_norm: str = "batch",
        n_groups: int = 4,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        enc, dec, outc = list(encoder_widths), list(decoder_widths), list(out_conv)
        if len(enc) != len(dec) or len(enc) < 2:
            raise ConfigError(
                f"U-TAE: encoder_widths {enc} and decoder_widths {dec} need the "
                "same length, at least 2"
            )
        if dec[-1] != enc[-1]:
            raise ConfigError(
                f"U-TAE: decoder_widths[-1] ({dec[-1]}) must equal "
                f"encoder_widths[-1] ({enc[-1]}), the L-TAE output"
            )
        if not outc:
            raise ConfigError("U-TAE: out_conv needs at least one width (the class count)")
        self.n_stages = len(enc)
        self.in_conv = nn.Sequential(
            conv_layer(input_dim, enc[0], encoder_norm, n_groups=n_groups),
            conv_layer(enc[0], enc[0], encoder_norm, n_groups=n_groups),
        )
        self.down = nn.ModuleList(
            DownBlock(
                enc[i], enc[i + 1], str_conv_k, str_conv_s, str_conv_p, encoder_norm, n_groups
            )
            for i in range(self.n_stages - 1)
        )
        self.ltae = LTAE(enc[-1], n_head, d_k, d_model, enc[-1], dropout)
        self.up = nn.ModuleList(
            UpBlock(
                dec[i],
                dec[i - 1],
                enc[i - 1],
                str_conv_k,
                str_conv_s,
                str_conv_p,
                decoder_norm,
                n_groups,
            )
            for i in range(self.n_stages - 1, 0, -1)
        )
        widths = [dec[0], *outc[:-1]]
        self.head_body = nn.Sequential(
            *(
                conv_layer(a, b, decoder_norm, n_groups=n_groups)
                for a, b in itertools.pairwise(widths)
            )
        )
        self.out = nn.Conv2d(widths[-1], outc[-1], 1)
        self.feature_channels = widths[-1]

    def _encode(self, x: torch.Tensor, valid: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features of every stage, (B, T, C_i, h_i, w_i), zero at padded dates.

        Args:
            x: (B, T, C, H, W) input series.
            valid: (B, T) True at real dates.

        Returns:
            One tensor per encoder stage.
        """
        b, t = valid.shape
        feats = []
        y = self.in_conv(x[valid])
        for i in range(self.n_stages):
            if i:
                y = self.down[i - 1](y)
            full = y.new_zeros((b, t, *y.shape[1:]))
            full[valid] = y
            feats.append(full)
        return feats

    def forward(
        self, x: torch.Tensor, dates: torch.Tensor, pad_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """X (B, T, C, H, W), dates (B, T) day of year, pad_mask (B, T) True = padded.

        Args:
            x: (B, T, C, H, W) series (normalised reflectance).
            dates: (B, T) day of year.
            pad_mask: (B, T) True at padded dates; None when nothing is padded.

        Returns:
            (logits (B, out, H, W), the last decoder's feature map (B, C, H, W)).

        Raises:
            ValueError: `x` is not 5-D.
        """
        if x.ndim != 5:
            raise ValueError(f"U-TAE input must be (B, T, C, H, W), got {tuple(x.shape)}")
        b, t = x.shape[:2]
        if pad_mask is None:
            pad_mask = torch.zeros(b, t, dtype=torch.bool, device=x.device)
        pad_mask = pad_mask.to(device=x.device, dtype=torch.bool)
        if dates.shape != (b, t) or pad_mask.shape != (b, t):
            raise ValueError(
                f"U-TAE: dates {tuple(dates.shape)} and pad_mask "
                f"{tuple(pad_mask.shape)} must both be (B, T) = ({b}, {t})"
            )
        feats = self._encode(x, ~pad_mask)
        y, attn = self.ltae(feats[-1], dates.to(x.device), pad_mask)
        for i, up in enumerate(self.up):
            skip = temporal_aggregate(feats[-2 - i], attn)
            y = up(y, skip)
        fmap = self.head_body(y)
        return self.out(fmap), fmap
