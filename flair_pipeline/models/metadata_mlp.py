"""FLAIR's metadata branch: encode a patch's aerial metadata, add it to the U-Net's bottom.

FLAIR shows that where, when and with which camera a patch was shot helps segmentation
across domains. The encoding follows the paper: sinusoidal positional encodings of the
location (32 values each for x and y), the altitude, one-hot camera and year, and cyclic
(sin/cos) day of year and time of day. A shallow MLP maps it to one vector per sample,
added to every pixel of the last encoder stage.

Vocabularies (cameras, years) come from the training records; each one-hot has a reserved
"unknown" slot at index 0 so a camera or year never seen in training (another domain, a
manifest without camera metadata) still encodes instead of crashing.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from flair_pipeline.errors import ConfigError
from flair_pipeline.model_registry import MODELS
from flair_pipeline.models.unet import FlairModel, build_unet

#: Index of the reserved "unknown" slot in the camera and year one-hots.
UNKNOWN_INDEX = 0
_TIME = re.compile(r"^\s*(\d{1,2})\s*[hH:]\s*(\d{1,2})")


def sinusoid(values: torch.Tensor, size: int, wavelengths: tuple[float, float]) -> torch.Tensor:
    """(N,) -> (N, size): sin/cos at `size // 2` wavelengths, geometric from min to max.

    Wavelengths are in the values' unit (metres), so the encoding resolves both the
    kilometre scale (neighbouring patches) and the country scale (climate, landscape)
    without ever wrapping around over France. NaN values (missing) encode as zeros, which
    no real value produces (each sin/cos pair has norm 1), so the MLP can tell them apart.

    Args:
        values: (N,) float values (metres).
        size: Encoding length (even).
        wavelengths: (shortest, longest) wavelength, in the values' unit.

    Returns:
        float32 (N, size): one (sin, cos) pair per wavelength, interleaved.
    """
    n = size // 2
    lo, hi = wavelengths
    lam = torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64)
    ang = 2 * math.pi * values.double()[:, None] / lam[None, :]
    out = torch.stack([ang.sin(), ang.cos()], dim=-1).reshape(len(values), 2 * n)
    return torch.nan_to_num(out, nan=0.0).float()


def _float(record: Mapping[str, Any], key: str) -> float:
    try:
        return float(record[key])
    except (KeyError, TypeError, ValueError):
        return math.nan


def _date(record: Mapping[str, Any]) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(record.get("date", ""))[:10])
    except ValueError:
        return None


def _minutes(record: Mapping[str, Any]) -> float | None:
    m = _TIME.match(str(record.get("time", "")))
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        return None
    return int(m.group(1)) * 60 + int(m.group(2))


@dataclass
class MetadataEncoding:
    """Turns aerial-metadata records into fixed-size float vectors.

    Holds only plain data (vocabularies and encoding sizes) so `to_dict()` can live in a
    checkpoint and the exact same encoding is rebuilt at evaluation time.
    """

    cameras: list[str] = field(default_factory=list)
    years: list[int] = field(default_factory=list)
    xy_size: int = 32
    z_size: int = 8
    xy_wavelengths: tuple[float, float] = (1_000.0, 2_000_000.0)
    z_wavelengths: tuple[float, float] = (100.0, 20_000.0)

    def __post_init__(self) -> None:
        self.cameras = [str(c) for c in self.cameras]
        self.years = [int(y) for y in self.years]
        self.xy_wavelengths = tuple(float(v) for v in self.xy_wavelengths)  # type: ignore[assignment]
        self.z_wavelengths = tuple(float(v) for v in self.z_wavelengths)  # type: ignore[assignment]
        if self.xy_size % 2 or self.z_size % 2 or self.xy_size <= 0 or self.z_size <= 0:
            raise ConfigError(
                f"metadata encoding sizes must be even and > 0, got "
                f"xy_size={self.xy_size}, z_size={self.z_size}"
            )
        if len(set(self.cameras)) != len(self.cameras) or len(set(self.years)) != len(self.years):
            raise ConfigError("metadata encoding: duplicate camera or year in the vocabulary")

    @classmethod
    def fit(cls, records: Iterable[Mapping[str, Any]], **kwargs: Any) -> MetadataEncoding:
        """Vocabularies from training records: every non-empty camera and every year seen.

        Args:
            records: Aerial-metadata records of the train split.
            **kwargs: Other fields of the encoding (sizes, wavelengths).

        Returns:
            The encoding, vocabularies sorted.
        """
        cams: set[str] = set()
        years: set[int] = set()
        for r in records:
            if str(r.get("camera", "") or "").strip():
                cams.add(str(r["camera"]).strip())
            d = _date(r)
            if d is not None:
                years.add(d.year)
        return cls(sorted(cams), sorted(years), **kwargs)

    @property
    def dim(self) -> int:
        """Length of one encoded vector."""
        return 2 * self.xy_size + self.z_size + len(self.cameras) + len(self.years) + 2 + 4

    def camera_index(self, camera: object) -> int:
        """One-hot position of `camera` (UNKNOWN_INDEX if not in the vocabulary).

        Args:
            camera: A camera name (any value; stripped text).

        Returns:
            1 + its vocabulary index, or UNKNOWN_INDEX.
        """
        name = str(camera or "").strip()
        return self.cameras.index(name) + 1 if name in self.cameras else UNKNOWN_INDEX

    def year_index(self, year: int | None) -> int:
        """One-hot position of `year` (UNKNOWN_INDEX if None or not in the vocabulary).

        Args:
            year: A flight year, or None.

        Returns:
            1 + its vocabulary index, or UNKNOWN_INDEX.
        """
        return self.years.index(year) + 1 if year in self.years else UNKNOWN_INDEX

    def encode(self, records: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """(B, dim) float32: [pe(x) | pe(y) | pe(z) | camera | year | date | time].

        Missing or malformed fields never raise: numbers become zero encodings, camera and
        year the unknown slot, date and time (0, 0) (again a value no real input gives).

        Args:
            records: Aerial-metadata records (``patch_centroid_x/y/z`` in Lambert-93 m,
                ``camera``, ``date``, ``time``).

        Returns:
            float32 (B, :attr:`dim`).
        """
        b = len(records)
        xs = torch.tensor([_float(r, "patch_centroid_x") for r in records], dtype=torch.float64)
        ys = torch.tensor([_float(r, "patch_centroid_y") for r in records], dtype=torch.float64)
        zs = torch.tensor([_float(r, "patch_centroid_z") for r in records], dtype=torch.float64)
        cam = torch.zeros(b, len(self.cameras) + 1)
        year = torch.zeros(b, len(self.years) + 1)
        cyc = torch.zeros(b, 4)
        for i, r in enumerate(records):
            cam[i, self.camera_index(r.get("camera"))] = 1.0
            d = _date(r)
            year[i, self.year_index(d.year if d else None)] = 1.0
            if d is not None:
                a = 2 * math.pi * (d.timetuple().tm_yday - 1) / 365.25
                cyc[i, 0], cyc[i, 1] = math.sin(a), math.cos(a)
            minutes = _minutes(r)
            if minutes is not None:
                a = 2 * math.pi * minutes / 1440
                cyc[i, 2], cyc[i, 3] = math.sin(a), math.cos(a)
        parts = [
            sinusoid(xs, self.xy_size, self.xy_wavelengths),
            sinusoid(ys, self.xy_size, self.xy_wavelengths),
            sinusoid(zs, self.z_size, self.z_wavelengths),
            cam,
            year,
            cyc,
        ]
        return torch.cat(parts, dim=1).float()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (lists, ints, floats, strings).

        Returns:
            The fields; wavelength pairs as lists.
        """
        d = asdict(self)
        d["xy_wavelengths"] = list(self.xy_wavelengths)
        d["z_wavelengths"] = list(self.z_wavelengths)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetadataEncoding:
        """Inverse of :meth:`to_dict`; an optional ``dim`` key is checked, not trusted.

        Args:
            data: A dict written by :meth:`to_dict`, maybe with ``dim``.

        Returns:
            The encoding.

        Raises:
            ConfigError: Unknown or missing keys, or a ``dim`` that differs from the one the
                vocabularies give (corrupt checkpoint).
        """
        data = dict(data)
        dim = data.pop("dim", None)
        try:
            enc = cls(**data)
        except TypeError as exc:
            raise ConfigError(f"metadata encoding: bad keys {sorted(data)} ({exc})") from exc
        if dim is not None and int(dim) != enc.dim:
            raise ConfigError(
                f"metadata encoding: stored dim {dim} != {enc.dim} from its "
                "vocabularies (corrupt checkpoint?)"
            )
        return enc


class MetadataMLP(nn.Module):
    """Shallow MLP from the encoded metadata to one vector per sample.

    Dropout 0.4 as in FLAIR: the metadata is a strong, easily memorised per-domain signal,
    and the image must stay the main source of the prediction.
    """

    def __init__(
        self, dim: int, out_channels: int, hidden: Sequence[int] = (64, 128), dropout: float = 0.4
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            d = h
        layers.append(nn.Linear(d, out_channels))
        self.net = nn.Sequential(*layers)

    def forward(self, meta: torch.Tensor) -> torch.Tensor:
        """(B, dim) -> (B, out_channels).

        Args:
            meta: Encoded metadata (B, dim) float32.

        Returns:
            float32 (B, out_channels).
        """
        out: torch.Tensor = self.net(meta)
        return out


class UNetMeta(FlairModel):
    """U-Net whose bottom encoder stage receives the metadata vector (FLAIR's "+ metadata").

    The vector is added, not concatenated, so the smp decoder is reused unchanged.
    """

    name = "unet-meta"
    required_inputs = MODELS[name].inputs  # the registry's, spelled once

    def __init__(
        self,
        meta_dim: int,
        in_channels: int = 5,
        classes: int = 13,
        encoder_weights: str | None = None,
    ) -> None:
        super().__init__(
            {
                "in_channels": in_channels,
                "classes": classes,
                "encoder_weights": None,
                "meta_dim": meta_dim,
            }
        )
        net = build_unet(in_channels, classes, encoder_weights)
        self.meta_dim = meta_dim
        self.encoder, self.decoder = net.encoder, net.decoder
        self.segmentation_head = net.segmentation_head
        self.mlp = MetadataMLP(meta_dim, net.encoder.out_channels[-1])

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Logits (B, classes, H, W) from `img` (B, C, H, W) and `meta` (B, meta_dim).

        Args:
            batch: The batch; ``img`` and ``meta`` are read.

        Returns:
            ``{"logits": (B, classes, H, W)}``.

        Raises:
            ValueError: a missing input or `meta` not of shape (B, meta_dim).
        """
        self.check_inputs(batch)
        meta = batch["meta"]
        if meta.ndim != 2 or meta.shape[1] != self.meta_dim:
            raise ValueError(
                f"model 'unet-meta': batch['meta'] must be (B, {self.meta_dim}), "
                f"got {tuple(meta.shape)}"
            )
        features = list(self.encoder(batch["img"]))
        bottom = self.mlp(meta.to(features[-1].dtype))
        features[-1] = features[-1] + bottom[..., None, None]
        return {"logits": self.segmentation_head(self.decoder(features))}
