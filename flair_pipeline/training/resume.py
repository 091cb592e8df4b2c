"""What a checkpoint must carry so that ``train --resume`` reproduces an uninterrupted run.

Lightning's checkpoint already holds the weights, the optimizer, the epoch-interval
schedulers and the early-stopping state. It does not hold the random streams that decide
what the next epoch sees, nor the logs of the epochs already done (the CSV logger
deletes ``metrics.csv`` when it starts). :class:`ResumeState` is a Lightning callback whose
state travels in every checkpoint (``checkpoint["callbacks"]["ResumeState"]``) and holds:

* the augmentation generator of :class:`~flair_pipeline.training.module.FlairModule`,
* the global torch, numpy and Python random states (dropout, modality dropout),
* one curve row per finished epoch (``epoch``, ``train_loss``, ``val_loss``, ``val_miou``),
* every row the CSV logger wrote (``log_rows``), which :class:`KeptCSVLogger` writes back
  into ``logs/metrics.csv`` when the run resumes, so the log has every epoch once.

The loaders' order needs no random state: each epoch's order is a function of (seed,
epoch) (:class:`~flair_pipeline.training.samples.EpochSampler`), the state only says which
epoch comes next (``next_epoch``, set on the samplers at restore), and the worker base seed comes
from a generator seeded with ``seed`` in every process, so a resumed process with
persistent workers draws the same seeds as the uninterrupted one (issue 30: it used to
draw the base seed again from the restored loader generator, shifting every later
shuffle when ``num_workers > 0``).

The rows are taken at ``on_train_epoch_end``, which runs before the checkpoint callbacks
(Lightning orders them last), so a checkpoint written at the end of epoch *k* holds the
rows of epochs 0..k and the random states as they stand after epoch *k*. Lightning logs
epoch *k*'s training row just after that checkpoint; the state carries it ahead of time.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from flair_pipeline.errors import InputError
from flair_pipeline.training.samples import EpochSampler

STATE_KEY = "ResumeState"
VERSION = 2  # 1 also held the loader generators (order drawn from them, issue 30)
CURVE_KEYS = ("train_loss", "val_loss", "val_miou")
LogRow = dict[str, float | int]


class KeptCSVLogger(CSVLogger):
    """Lightning's CSV logger, remembering every row it logs and keeping earlier ones.

    Args:
        *args: Passed to :class:`~lightning.pytorch.loggers.CSVLogger`.
        prior: Rows of the epochs a resumed run continues (:func:`saved_log_rows`);
            written back into ``metrics.csv`` by :meth:`start`, before any new row.
        **kwargs: Passed to :class:`~lightning.pytorch.loggers.CSVLogger`.
    """

    def __init__(self, *args: Any, prior: list[LogRow] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prior = [dict(r) for r in prior or []]
        self.history: list[LogRow] = [dict(r) for r in self.prior]

    @rank_zero_only
    def start(self) -> None:
        """Open ``metrics.csv`` (Lightning deletes an old one) and write the prior rows."""
        writer = self.experiment
        if self.prior:
            writer.metrics = [dict(r) for r in self.prior]
            writer.save()

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Log one row as Lightning does, and remember it for the checkpoint."""
        super().log_metrics(metrics, step)
        row: LogRow = {k: _plain(v) for k, v in metrics.items()}
        if step is not None:
            row["step"] = int(step)
        self.history.append(row)


def _plain(value: Any) -> float | int:
    """A logged value as the CSV writer stores it (a tensor's ``item()``).

    Args:
        value: A tensor or a number.

    Returns:
        The Python number.
    """
    return value.item() if isinstance(value, torch.Tensor) else value


class ResumeState(Callback):
    """Saves and restores the random streams and the logs (see the module docstring).

    The module's augmentation generator is read from the module at save and restore time.

    Args:
        logger: The run's CSV logger, whose rows travel in the checkpoint.
        samplers: The shuffled loaders' :class:`EpochSampler` objects: set to the epoch
            that follows the checkpoint as soon as it is restored, because Lightning
            makes the first loader iterator (whose workers at once prefetch indices)
            before it tells the samplers the epoch.
    """

    def __init__(
        self, logger: KeptCSVLogger | None = None, samplers: Sequence[EpochSampler] = ()
    ) -> None:
        self.logger = logger
        self.samplers = list(samplers)
        self._next_epoch = 0
        self.rows: list[dict[str, float]] = []
        self._train_row: LogRow | None = None
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
        # the row Lightning's logger writes for this epoch right after the checkpoint:
        # the epoch-aggregated training metrics, at Lightning's epoch-end step
        train = {k: _plain(v) for k, v in metrics.items() if k.startswith("train_")}
        self._train_row = {**train, "epoch": trainer.current_epoch, "step": trainer.global_step - 1}
        self._next_epoch = trainer.current_epoch + 1

    def state_dict(self) -> dict[str, Any]:
        """Augmentation and global random streams, the curve rows and the log rows so far.

        Returns:
            ``version``, ``next_epoch``, the random states (augmentation, torch, numpy, Python),
            the curve rows and the ``metrics.csv`` rows, as Lightning saves in the checkpoint.
        """
        module = self._module
        logged = list(self.logger.history) if self.logger is not None else []
        if self._train_row is not None:
            logged.append(dict(self._train_row))
        return {
            "version": VERSION,
            "next_epoch": self._next_epoch,
            "augment_rng": module._generator.get_state() if module is not None else None,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": _numpy_state(),
            "python_rng": random.getstate(),
            "curves": [dict(r) for r in self.rows],
            "log_rows": logged,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the random streams and curve rows of a checkpoint.

        Raises:
            InputError: the checkpoint's resume state is of another version.
        """
        if state_dict.get("version") != VERSION:
            raise InputError(
                f"checkpoint resume state version {state_dict.get('version')!r} does not match "
                f"this code (version {VERSION}: the data order is no longer drawn from saved "
                "loader generators); train without --resume"
            )
        # restored now, during Lightning's restore and before the fit loop makes its first
        # loader iterator (Lightning's own set_epoch comes after that iterator's prefetch)
        for sampler in self.samplers:
            sampler.set_epoch(int(state_dict["next_epoch"]))
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

    Returns:
        ``np.random.get_state()``'s tuple with the key array as an int64 tensor.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return name, torch.from_numpy(np.asarray(keys, np.int64)), pos, has_gauss, cached


def _set_numpy_state(state: tuple[Any, ...]) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def saved_curves(path: str | Path) -> list[dict[str, float]]:
    """The curve rows stored in checkpoint `path` (empty for a checkpoint without them).

    Args:
        path: A checkpoint written by training.

    Returns:
        One dict per epoch (epoch, losses, validation mIoU).

    Raises:
        InputError: `path` is unreadable or unsafe (:func:`load_checkpoint`).
    """
    from flair_pipeline.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    state = (ckpt.get("callbacks") or {}).get(STATE_KEY) or {}
    return [dict(r) for r in state.get("curves", [])]


def saved_log_rows(path: str | Path) -> list[LogRow]:
    """The ``metrics.csv`` rows stored in checkpoint `path` (empty without them).

    Args:
        path: A checkpoint written by training.

    Returns:
        The rows in logging order.

    Raises:
        InputError: `path` is unreadable or unsafe (:func:`load_checkpoint`).
    """
    from flair_pipeline.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    state = (ckpt.get("callbacks") or {}).get(STATE_KEY) or {}
    return [dict(r) for r in state.get("log_rows", [])]
