"""Loading a trained model for evaluation and prediction, with clear errors.

A Lightning checkpoint of :class:`FlairModule` carries the model's name and constructor
arguments, the normalisation statistics and the patch geometry, so a checkpoint file is
all a user needs to predict: no config has to be kept in sync by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from flair_pipeline.errors import InputError


@dataclass
class Inference:
    """A model ready to predict, and how its inputs must look."""

    module: Any  # FlairModule, in eval mode: module(batch) normalises, then runs the model
    model: torch.nn.Module  # expects normalised inputs: model({"img": …}) -> {"logits": …}
    name: str
    mean: list[float]
    std: list[float]
    s2_mean: list[float] | None
    s2_std: list[float] | None
    patch_size: int  # side in pixels the model was trained on (after downsampling)
    downsample: int
    resolution: float  # metres per aerial pixel of the training patches (before downsample)
    elevation_scale: float
    hparams: dict[str, Any]

    @property
    def in_channels(self) -> int:
        """Aerial channels the model takes (one normalisation mean per channel)."""
        return len(self.mean)


def read_hparams(path: str | Path) -> dict[str, Any]:
    """The hyper-parameters stored in a checkpoint; InputError naming it if unusable."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"checkpoint {p}: file not found")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=False, mmap=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint"
        raise InputError(f"checkpoint {p}: not a readable PyTorch checkpoint ({exc})") from exc
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or "model_name" not in hp:
        raise InputError(f"checkpoint {p}: not a flair_pipeline model checkpoint")
    return dict(hp)


def check_model(path: str | Path, expected: str) -> dict[str, Any]:
    """Hyper-parameters of `path`, which must hold a model of kind `expected`."""
    hp = read_hparams(path)
    if hp["model_name"] != expected:
        raise InputError(f"checkpoint {path}: holds a {hp['model_name']!r} model, not {expected!r}")
    return hp


def load_inference(path: str | Path, device: str | torch.device = "cpu") -> Inference:
    """The model of checkpoint `path`, in eval mode on `device`."""
    from flair_pipeline.training.module import FlairModule

    hp = read_hparams(path)
    try:
        module = FlairModule.load_from_checkpoint(str(path), map_location="cpu")
    except Exception as exc:
        raise InputError(
            f"checkpoint {path}: does not load into {hp['model_name']} ({exc})"
        ) from exc
    module = module.to(device).eval()
    stats = hp["stats"]
    ds = int(hp.get("downsample", 1))
    return Inference(
        module=module,
        model=module.model,
        name=hp["model_name"],
        mean=list(stats["mean"]),
        std=list(stats["std"]),
        s2_mean=stats.get("s2_mean"),
        s2_std=stats.get("s2_std"),
        patch_size=int(hp.get("patch_size", 512)) // ds,
        downsample=ds,
        resolution=float(hp.get("resolution", 0.2)),
        elevation_scale=float(hp.get("elevation_scale", 5.0)),
        hparams=hp,
    )
