"""Loading a trained model for evaluation and prediction, with clear errors.

A Lightning checkpoint of :class:`FlairModule` carries its model card
(:mod:`~flair_pipeline.training.model_card`: the model's name and architecture, its inputs,
the normalisation statistics, the classes and the patch geometry), so a checkpoint file is
all a user needs to predict: no config has to be kept in sync by hand. Checkpoints written
before the card existed are upgraded from their hyper-parameters when read.

Checkpoints are what people download and share, so every read goes through
:func:`load_checkpoint`: ``torch.load(weights_only=True)``, whose unpickler builds tensors,
containers and numbers only and refuses any other Python object instead of calling it
(issue 30: a ``__reduce__`` payload ran ``os.system`` under ``weights_only=False``).
Lightning's own reads (``load_from_checkpoint``, ``Trainer.fit(ckpt_path=...)``) get
``weights_only=True`` explicitly too, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot turn
them unsafe. The project's checkpoints hold nothing beyond torch's default allow-list
(tensors, dicts, lists, tuples, strings, numbers, ``OrderedDict``, ``torch.Size``): the
resume state keeps numpy's random key as a tensor for that reason, and
``tests/training/test_train.py`` checks each model's checkpoint with
``torch.serialization.get_unsafe_globals_in_checkpoint``. :data:`SAFE_GLOBALS`, the
project's own additions to that list, is therefore empty.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from flair_pipeline.errors import InputError
from flair_pipeline.training.model_card import ModelCard, card_from_checkpoint


@dataclass
class Inference:
    """A model ready to predict, and its card (how its inputs must look)."""

    module: Any  # FlairModule, in eval mode: module(batch) normalises, then runs the model
    model: torch.nn.Module  # expects normalised inputs: model({"img": …}) -> {"logits": …}
    card: ModelCard
    path: Path  # the checkpoint file, for messages

    @property
    def name(self) -> str:
        """The model's registry name."""
        return self.card.model

    @property
    def in_channels(self) -> int:
        """Aerial channels the model takes."""
        return len(self.card.inputs.aerial_channels)


# Types beyond torch's default weights-only allow-list that the project's checkpoints hold:
# none (see the module docstring); a new one is added here, never by weights_only=False.
SAFE_GLOBALS: tuple[Any, ...] = ()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The contents of checkpoint `path`, read without running any code it may carry.

    Args:
        path: A checkpoint file written by ``flair-pipeline train`` (Lightning format).

    Returns:
        The checkpoint's dictionary (tensors memory-mapped, on the CPU).

    Raises:
        InputError: one line naming `path`: missing, not a PyTorch checkpoint, or holding
            Python objects outside the allow-list (which are refused, never called).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"checkpoint {p}: file not found")
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            ckpt = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:  # the weights-only unpickler refused an object
        raise InputError(
            f"checkpoint {p}: refused, it holds Python objects ({_unsafe_globals(p)}) that no "
            "flair_pipeline checkpoint contains and that could run code when loaded; nothing "
            "was executed. Use a checkpoint written by `flair-pipeline train` from a source "
            "you trust"
        ) from None
    except Exception as exc:  # zip and torch errors all mean "not a checkpoint"
        raise InputError(
            f"checkpoint {p}: not a readable PyTorch checkpoint ({_one_line(exc)})"
        ) from exc
    if not isinstance(ckpt, dict):
        raise InputError(
            f"checkpoint {p}: holds a {type(ckpt).__name__}, not a flair_pipeline model checkpoint"
        )
    return ckpt


def _unsafe_globals(path: Path) -> str:
    """The refused globals of `path` ("module.name, ..."), found without unpickling.

    Returns:
        Up to five sorted, comma-separated global names, or "unknown globals" when the
        scanner cannot open the file (a legacy, non-zip checkpoint).
    """
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # a legacy (non-zip) file: the scanner cannot open it
        names = []
    return ", ".join(sorted(set(names))[:5]) or "unknown globals"


def _one_line(exc: BaseException) -> str:
    """`exc`'s message folded onto one line, at most 300 characters.

    Returns:
        The message with whitespace runs collapsed (the exception's type name when it is
        empty), cut to 297 characters plus "..." when longer than 300.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def read_hparams(path: str | Path) -> dict[str, Any]:
    """The Lightning hyper-parameters stored in a checkpoint, read safely.

    Args:
        path: A checkpoint written by ``flair-pipeline train``.

    Returns:
        Its hyper-parameters (``FlairModule``'s constructor arguments).

    Raises:
        InputError: one line naming `path` when it is unreadable, unsafe or not a
            flair_pipeline model checkpoint.
    """
    p = Path(path)
    ckpt = load_checkpoint(p)
    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, dict) or "model_name" not in hp:
        raise InputError(f"checkpoint {p}: not a flair_pipeline model checkpoint")
    return dict(hp)


def read_card(path: str | Path) -> ModelCard:
    """The model card of a checkpoint, upgraded when it predates cards.

    Args:
        path: A checkpoint written by ``flair-pipeline train``.

    Returns:
        Its card (:func:`~flair_pipeline.training.model_card.card_from_checkpoint`).

    Raises:
        InputError: one line naming `path` when it is unreadable, unsafe, not a
            flair_pipeline model checkpoint, or its card is invalid or too new.
    """
    return card_from_checkpoint(load_checkpoint(path), str(path))


def check_model(path: str | Path, expected: str) -> ModelCard:
    """The card of checkpoint `path`, which must hold a model of kind `expected`.

    Args:
        path: A checkpoint.
        expected: The model name it must hold.

    Returns:
        Its card.

    Raises:
        InputError: One line naming `path`: unreadable, or another model.
    """
    card = read_card(path)
    if card.model != expected:
        raise InputError(f"checkpoint {path}: holds a {card.model!r} model, not {expected!r}")
    return card


def load_inference(path: str | Path, device: str | torch.device = "cpu") -> Inference:
    """The model of checkpoint `path`, built from its card, in eval mode on `device`.

    Args:
        path: A checkpoint written by ``flair-pipeline train`` (any card version, or none).
        device: Where to put the model.

    Returns:
        The model and its card.

    Raises:
        InputError: One line naming `path`: unreadable, unsafe, an invalid card, or
            weights that do not fit the card's model.
    """
    from flair_pipeline.training.module import FlairModule

    p = Path(path)
    ckpt = load_checkpoint(p)
    card = card_from_checkpoint(ckpt, str(p))
    dev = torch.device(device)
    try:
        module = FlairModule.for_inference(card, channels_last=dev.type == "cuda")
        module.load_state_dict(ckpt["state_dict"])
    except Exception as exc:
        raise InputError(
            f"checkpoint {p}: does not load into {card.model} ({_one_line(exc)})"
        ) from exc
    module = module.to(dev).eval()
    return Inference(module=module, model=module.model, card=card, path=p)
