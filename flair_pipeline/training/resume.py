"""What a checkpoint must carry so that ``train --resume`` reproduces an uninterrupted run.

Lightning's checkpoint already holds the weights, the optimizer, the epoch-interval
schedulers and the early-stopping state. It does not hold the random streams that decide
what the next epoch sees, nor the curves of the epochs already done (the CSV logger
starts a fresh file on resume). :class:`ResumeState` is a Lightning callback whose state
travels in every checkpoint (``checkpoint["callbacks"]["ResumeState"]``) and holds:

* the sampler generators of the loaders (the shuffled order of every later epoch),
* the augmentation generator of :class:`~flair_pipeline.training.module.FlairModule`,
* the global torch, numpy and Python random states (dropout, modality dropout),
* one curve row per finished epoch (``epoch``, ``train_loss``, ``val_loss``, ``val_miou``).

The rows are taken at ``on_train_epoch_end``, which runs before the checkpoint callbacks
(Lightning orders them last), so a checkpoint written at the end of epoch *k* holds the
rows of epochs 0..k and the random states as they stand after epoch *k*.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from flair_pipeline.errors import InputError

STATE_KEY = "ResumeState"
VERSION = 1
CURVE_KEYS = ("train_loss", "val_loss", "val_miou")


class ResumeState(Callback):
    """Saves and restores the random streams and the curves (see the module docstring).

    `generators` are the loaders' ``torch.Generator`` objects (train first), in the order
    they are passed to the trainer; the module's augmentation generator is read from the
    module at save and restore time.
    """

    def __init__(self, generators: list[torch.Generator]) -> None:
        self.generators = generators
        self.rows: list[dict[str, float]] = []
        self._pending: dict[str, Any] | None = None
        self._module: Any = None

    @property
    def state_key(self) -> str:
        """Key of this callback's state in the checkpoint."""
        return STATE_KEY

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """Append the epoch's curve row (losses, mIoU) to the state saved next."""
        metrics = trainer.callback_metrics
        row = {"epoch": float(trainer.current_epoch)}
        for key in CURVE_KEYS:
            if key in metrics:
                row[key] = float(metrics[key])
        self.rows = [r for r in self.rows if int(r["epoch"]) != int(row["epoch"])] + [row]

    def state_dict(self) -> dict[str, Any]:
        """Loader and augmentation random streams and the curve rows so far."""
        module = self._module
        return {
            "version": VERSION,
            "loader_rng": [g.get_state() for g in self.generators],
            "augment_rng": module._generator.get_state() if module is not None else None,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": _numpy_state(),
            "python_rng": random.getstate(),
            "curves": [dict(r) for r in self.rows],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the random streams and curve rows of a checkpoint.

        Raises:
            InputError: the checkpoint's resume state is of another version or loader count.
        """
        if state_dict.get("version") != VERSION or len(state_dict["loader_rng"]) != len(
            self.generators
        ):
            raise InputError(
                f"checkpoint resume state version {state_dict.get('version')!r} with "
                f"{len(state_dict.get('loader_rng', []))} loader generator(s) does not match "
                f"this code (version {VERSION}, {len(self.generators)}); train without --resume"
            )
        # restored now, during Lightning's restore and before the fit loop builds the epoch's
        # loader iterator (which draws its base seed from the loader generator at creation)
        for g, s in zip(self.generators, state_dict["loader_rng"], strict=True):
            g.set_state(s)
        torch.set_rng_state(state_dict["torch_rng"])
        _set_numpy_state(state_dict["numpy_rng"])
        random.setstate(state_dict["python_rng"])
        self.rows = [dict(r) for r in state_dict["curves"]]
        self._pending = state_dict

    def setup(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        """Keep the module: its augmentation generator is saved with the loaders'."""
        self._module = module

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """The augmentation generator, once the module is attached to the trainer."""
        state, self._pending = self._pending, None
        if state is not None and state.get("augment_rng") is not None:
            generator = cast(torch.Generator, module._generator)  # FlairModule's
            generator.set_state(state["augment_rng"])


def _numpy_state() -> tuple[Any, ...]:
    """Numpy's global random state in a form a checkpoint can carry.

    Numpy's global state with its key as a tensor: Lightning loads checkpoints with
    ``weights_only=True``, which refuses numpy arrays.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return name, torch.from_numpy(np.asarray(keys, np.int64)), pos, has_gauss, cached


def _set_numpy_state(state: tuple[Any, ...]) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def saved_curves(path: str | Path) -> list[dict[str, float]]:
    """The curve rows stored in checkpoint `path` (empty for a checkpoint without them)."""
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=False, mmap=True)
    state = (ckpt.get("callbacks") or {}).get(STATE_KEY) or {}
    return [dict(r) for r in state.get("curves", [])]
