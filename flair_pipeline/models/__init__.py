"""The segmentation models of the pipeline behind one interface.

:func:`build_model` builds FLAIR's three baselines by name. Every model takes a dict of
tensors (``img`` and, depending on the model, ``meta`` or ``s2``/``dates``/``pad_mask``) and
returns a dict with ``logits`` (plus ``aux`` for U-T&T), lists the keys it needs in
``required_inputs`` and keeps in ``hparams_dict`` the keyword arguments that rebuild it, so
training, checkpoints and evaluation never special-case a model.
"""

from __future__ import annotations

from typing import Any

from flair_pipeline.errors import ConfigError
from flair_pipeline.model_registry import MODEL_NAMES, get_model
from flair_pipeline.models.metadata_mlp import MetadataEncoding, MetadataMLP, UNetMeta
from flair_pipeline.models.unet import FlairModel, UNet, build_unet, count_parameters
from flair_pipeline.models.utae import UTAE
from flair_pipeline.models.utt import UTT

__all__ = [
    "MODEL_NAMES",
    "UTAE",
    "UTT",
    "FlairModel",
    "MetadataEncoding",
    "MetadataMLP",
    "UNet",
    "UNetMeta",
    "build_model",
    "build_unet",
    "count_parameters",
]


def build_model(
    name: str,
    *,
    in_channels: int = 5,
    classes: int = 13,
    encoder_weights: str | None = None,
    meta_dim: int | None = None,
    s2_bands: int = 10,
    utae: dict[str, Any] | None = None,
    fusion: dict[str, Any] | None = None,
) -> FlairModel:
    """Build model `name` of :mod:`flair_pipeline.model_registry`.

    Arguments a model does not use must be left at their default, so a config that sets,
    e.g., U-TAE options for a plain U-Net is flagged, not ignored.

    Args:
        name: A model name of the registry (``unet``, ``unet-meta``, ``utt``).
        in_channels: Aerial bands of the input (5: R, G, B, NIR, elevation).
        classes: Output classes (13 after FLAIR's merge).
        encoder_weights: Pretrained encoder weights for smp (``imagenet``) or None.
        meta_dim: Length of the encoded aerial metadata vector (metadata models only).
        s2_bands: Sentinel-2 bands of the series (U-T&T only).
        utae: U-TAE options (U-T&T only).
        fusion: Fusion options (U-T&T only).

    Returns:
        The untrained network, on the CPU, returning ``{"logits": (B, classes, H, W)}``.

    Raises:
        ConfigError: Unknown name, an argument the model does not use, or a metadata
            model without `meta_dim`.
    """
    spec = get_model(name)
    common = {"in_channels": in_channels, "classes": classes, "encoder_weights": encoder_weights}
    unused = {
        "meta_dim": meta_dim is not None and not spec.needs_meta,
        "s2_bands": s2_bands != 10 and not spec.needs_s2,
        "utae": bool(utae) and not spec.needs_s2,
        "fusion": bool(fusion) and not spec.needs_s2,
    }
    bad = [k for k, v in unused.items() if v]
    if bad:
        raise ConfigError(f"model {name!r} does not use {', '.join(bad)}")
    extra: dict[str, Any] = {}
    if spec.needs_meta:
        if meta_dim is None or meta_dim <= 0:
            raise ConfigError(
                f"model {name!r} needs meta_dim (the MetadataEncoding.dim of the training "
                f"records), got {meta_dim!r}"
            )
        extra["meta_dim"] = meta_dim
    if spec.needs_s2:
        extra.update(s2_bands=s2_bands, utae=utae, fusion=fusion)
    model: FlairModel = spec.model_class()(**common, **extra)
    return model
