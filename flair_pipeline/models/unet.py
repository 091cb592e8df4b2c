"""FLAIR's U-Net baseline (smp, ResNet34 encoder) and what every model of the package shares.

The U-Net is built by segmentation-models-pytorch so the architecture and its parameter
count (24.44 M for 5 bands and 13 classes) match FLAIR's published baseline. Pretrained
encoder weights can come from smp's hub download ("imagenet") or from a local file, because
training machines are often offline and a failed download must say so instead of
silently training from random weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import nn

from flair_pipeline.errors import ConfigError
from flair_pipeline.model_registry import MODELS

ENCODER = "resnet34"


class FlairModel(nn.Module):
    """Base of the models returned by :func:`flair_pipeline.models.build_model`.

    Every model takes a dict of tensors and returns a dict, so the training code never needs
    to know which inputs a model uses: it passes what the loader gives and the model checks
    that its `required_inputs` are there, naming the missing key instead of failing deep
    inside a convolution.
    """

    name: str = "model"
    required_inputs: tuple[str, ...] = ("img",)

    def __init__(self, hparams: Mapping[str, Any]) -> None:
        super().__init__()
        #: build_model kwargs that rebuild this architecture (JSON-able).
        self.hparams_dict: dict[str, Any] = dict(hparams)

    def check_inputs(self, batch: Mapping[str, torch.Tensor]) -> None:
        """Check that `batch` holds every input the model needs.

        Args:
            batch: The batch's tensors by key.

        Raises:
            ValueError: A required key is missing, naming it and the keys present.
        """
        for key in self.required_inputs:
            if key not in batch:
                raise ValueError(
                    f"model {self.name!r} needs batch key {key!r} "
                    f"(required: {', '.join(self.required_inputs)}; got: {', '.join(batch)})"
                )


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a weights file (a bare state dict or {'state_dict': ...}).

    Args:
        obj: What ``torch.load`` returned.
        path: The weights file, named in the error.

    Returns:
        Parameter name -> tensor.

    Raises:
        ConfigError: `obj` is not a dict of tensors.
    """
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"encoder weights {path}: not a state dict of tensors")
    return dict(obj)


def load_encoder_weights(model: smp.Unet, path: str | Path) -> None:
    """Load a local weights file (encoder or whole U-Net state dict) into `model`.

    Load a local weights file into `model`: either the encoder's state dict or a whole
    U-Net's (keys prefixed ``encoder.``, ``decoder.``, ...).

    Loading is strict because a partial match would leave layers at random init without
    anyone noticing.

    Args:
        model: The U-Net, modified in place.
        path: A local ``.pth``/``.pt`` weights file.

    Raises:
        ConfigError: The file is missing, unreadable, not a state dict, or does not match
            the model's keys and shapes, naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"encoder weights {p}: file not found (train.encoder_weights must be None, "
            "'imagenet' or the path of a local weights file)"
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a weights file"
        raise ConfigError(f"encoder weights {p}: cannot be read as torch weights ({exc})") from exc
    state = _unwrap_state_dict(obj, p)
    whole = any(k.startswith("encoder.") for k in state)
    target: nn.Module = model if whole else model.encoder
    try:
        target.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        kind = "U-Net" if whole else "encoder"
        msg = str(exc).splitlines()
        raise ConfigError(
            f"encoder weights {p}: keys or shapes do not fit a {ENCODER} {kind} with "
            f"{model.encoder.out_channels[0]} input channels: {' '.join(msg[:3])[:400]}"
        ) from exc


def build_unet(
    in_channels: int = 5, classes: int = 13, encoder_weights: str | None = None
) -> smp.Unet:
    """smp.Unet with a ResNet34 encoder, as in FLAIR's baseline.

    Args:
        in_channels: Input bands (5: R, G, B, NIR, elevation).
        classes: Output classes.
        encoder_weights: None = random init; "imagenet" = smp's download (smp adapts the
            first convolution to `in_channels`); any other string = a local weights file.

    Returns:
        The U-Net, on the CPU.

    Raises:
        ConfigError: The ImageNet weights cannot be downloaded, or the local file cannot
            be loaded (:func:`load_encoder_weights`).
    """
    if encoder_weights == "imagenet":
        try:
            return smp.Unet(
                ENCODER, encoder_weights="imagenet", in_channels=in_channels, classes=classes
            )
        except Exception as exc:  # hub, network and cache errors come in many classes
            raise ConfigError(
                f"encoder_weights='imagenet': could not get the {ENCODER} ImageNet weights "
                f"from smp's hub ({type(exc).__name__}: {str(exc)[:200]}); on an offline "
                "machine download them once and pass a local file, or use None"
            ) from exc
    model = smp.Unet(ENCODER, encoder_weights=None, in_channels=in_channels, classes=classes)
    if encoder_weights is not None:
        load_encoder_weights(model, encoder_weights)
    return model


class UNet(FlairModel):
    """The plain U-Net baseline behind the uniform dict interface."""

    name = "unet"
    required_inputs = MODELS[name].inputs  # the registry's, spelled once

    def __init__(
        self, in_channels: int = 5, classes: int = 13, encoder_weights: str | None = None
    ) -> None:
        # The weights end up in the checkpoint's state dict, so rebuilding must neither
        # download again nor need the original file: hparams keep encoder_weights=None.
        super().__init__({"in_channels": in_channels, "classes": classes, "encoder_weights": None})
        net = build_unet(in_channels, classes, encoder_weights)
        # The smp parts are attributes of every U-Net-based model under the same names, so
        # their state-dict keys match across "unet", "unet-meta" and "utt" (warm starts).
        self.encoder, self.decoder = net.encoder, net.decoder
        self.segmentation_head = net.segmentation_head

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Logits (B, classes, H, W) from ``batch['img']`` (B, C, H, W) float32.

        Args:
            batch: The batch; ``img`` is read.

        Returns:
            ``{"logits": (B, classes, H, W)}``.

        Raises:
            ValueError: an input the model needs is missing from `batch`.
        """
        self.check_inputs(batch)
        features = self.encoder(batch["img"])
        return {"logits": self.segmentation_head(self.decoder(features))}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    Args:
        model: Any torch module.

    Returns:
        The sum of ``numel`` over parameters with ``requires_grad``.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
