"""The Lightning module: normalisation, augmentation, losses, validation mIoU.

Normalisation statistics are buffers of the module (so they travel in every checkpoint)
and are applied here, not in the loaders: the model itself always sees normalised
inputs, and evaluation and large-area prediction reuse the same numbers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassConfusionMatrix

from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.metrics import Scores
from flair_pipeline.models import build_model
from flair_pipeline.models.utt import centre_crop
from flair_pipeline.nomenclature import INVALID, N_CLASSES_MERGED
from flair_pipeline.training.augment import augment_batch
from flair_pipeline.training.model_card import ModelCard, card_from_hparams
from flair_pipeline.training.stats import class_weights

if TYPE_CHECKING:
    from flair_pipeline.config import PipelineConfig


class NonFiniteLossError(FlairPipelineError):
    """The loss became NaN or infinite: training cannot meaningfully continue."""


class FlairModule(L.LightningModule):
    """Wraps a model from :func:`flair_pipeline.models.build_model` for training.

    Everything needed to rebuild and use the model (name, constructor kwargs, statistics,
    metadata vocabulary, patch geometry) is saved in the checkpoint twice: as Lightning's
    hyper-parameters (the arguments of this constructor, which Lightning passes back) and
    as the typed, versioned model card (``model_card``, :attr:`card`) that evaluation and
    prediction read. ``patch_size`` is the side of a training patch in aerial pixels at
    ``resolution`` (before downsampling); the model sees ``patch_size // downsample`` px
    (:class:`~flair_pipeline.training.model_card.PatchGeometry`).
    """

    # buffers registered in __init__ (nn.Module's attribute lookup types them as Tensor | Module)
    img_mean: torch.Tensor
    img_std: torch.Tensor
    s2_mean: torch.Tensor
    s2_std: torch.Tensor
    class_weight: torch.Tensor

    # Not mutated (mutmut): save_hyperparameters reads __init__'s arguments from the
    # caller's frame, which mutmut's trampoline would replace (docs/testing.md).
    def __init__(
        self,
        model_name: str,
        model_kwargs: dict[str, Any],
        stats: dict[str, Any],
        *,
        optimizer: str = "sgd",
        lr: float = 0.02,
        weight_decay: float = 0.0,
        scheduler: str = "plateau",
        epochs: int = 200,
        augment: bool = True,
        aux_weight: float = 0.5,
        seed: int = 0,
        patch_size: int = 512,
        resolution: float = 0.2,
        downsample: int = 1,
        elevation_scale: float = 5.0,
        meta_encoding: dict[str, Any] | None = None,
        s2_options: dict[str, Any] | None = None,
        channels_last: bool = False,
        encoder_weights: str | None = None,
    ) -> None:  # pragma: no mutate block
        super().__init__()
        # encoder_weights only initialise a new model: a checkpoint carries trained weights,
        # so reloading must neither download ImageNet weights nor need the original file
        self.save_hyperparameters(ignore=["encoder_weights"])
        self.model = build_model(model_name, encoder_weights=encoder_weights, **model_kwargs)
        c = len(stats["mean"])
        self.register_buffer("img_mean", torch.tensor(stats["mean"]).view(1, c, 1, 1))
        self.register_buffer("img_std", torch.tensor(stats["std"]).view(1, c, 1, 1))
        if stats.get("s2_mean") is not None:
            k = len(stats["s2_mean"])
            self.register_buffer("s2_mean", torch.tensor(stats["s2_mean"]).view(1, 1, k, 1, 1))
            self.register_buffer("s2_std", torch.tensor(stats["s2_std"]).view(1, 1, k, 1, 1))
        self.register_buffer("class_weight", class_weights())
        self.val_confusion = MulticlassConfusionMatrix(N_CLASSES_MERGED, ignore_index=INVALID)
        self._generator = torch.Generator().manual_seed(seed)
        self.last_good_step = 0
        self._plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self._plateau_state: dict[str, Any] | None = None
        #: what the upgrader decided for the card this module was built from (kept on resume)
        self._card_upgraded: tuple[str, ...] = ()

    @classmethod
    def from_config(
        cls,
        cfg: PipelineConfig,
        card: ModelCard,
        *,
        channels_last: bool = False,
        resumed: bool = False,
    ) -> FlairModule:
        """The module of a training run: the model of `card`, the recipe of `cfg.train`.

        The card fixes the network, its inputs, statistics and patch geometry (its values
        win over `cfg`'s ``sampling`` and ``train.downsample``); `cfg.train` gives only the
        optimisation recipe (optimiser, learning rate, schedule, augmentation, seed).

        Args:
            cfg: The pipeline configuration.
            card: The model card (:func:`~flair_pipeline.training.model_card.card_for_training`,
                or a checkpoint's when resuming).
            channels_last: Feed the model channels-last images (CUDA).
            resumed: A resumed run: no encoder weights are loaded (the checkpoint has them).

        Returns:
            The module, its model freshly initialised.

        Raises:
            ConfigError: Unknown model, or model arguments it does not use.
        """
        t = cfg.train
        module = cls(
            **_card_kwargs(card),
            optimizer=t.optimizer,
            lr=t.lr,
            weight_decay=t.weight_decay,
            scheduler=t.scheduler,
            epochs=t.epochs,
            augment=t.augment,
            aux_weight=t.aux_weight,
            seed=t.seed,
            channels_last=channels_last,
            encoder_weights=None if resumed else t.encoder_weights,
        )
        module._card_upgraded = card.upgraded
        return module

    @classmethod
    def for_inference(cls, card: ModelCard, *, channels_last: bool = False) -> FlairModule:
        """An untrained module shaped by `card`, to receive a checkpoint's weights.

        Args:
            card: The checkpoint's model card.
            channels_last: Feed the model channels-last images (CUDA).

        Returns:
            The module (training settings at their defaults: they play no part in inference).

        Raises:
            ConfigError: Unknown model, or model arguments it does not use.
        """
        return cls(**_card_kwargs(card), augment=False, channels_last=channels_last)

    @property
    def card(self) -> ModelCard:
        """This module's model card, from its hyper-parameters.

        A module resumed from an upgraded checkpoint keeps that card's ``upgraded`` lines.

        Raises:
            InputError: The hyper-parameters do not make a valid card.
        """
        card = card_from_hparams(dict(self.hparams), "FlairModule")
        return card.model_copy(update={"upgraded": self._card_upgraded})

    # -- inputs ------------------------------------------------------------------------
    def prepare(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Normalised model inputs from a loader batch (mask and index left out).

        Args:
            batch: A loader batch: ``img`` (B×C×H×W float), maybe ``meta``, and with
                Sentinel-2 ``s2``, ``dates`` and ``pad_mask``.

        Returns:
            ``img`` standardised by the stored per-channel mean and std (channels-last
            when ``channels_last`` is set), ``meta`` as given, ``s2`` standardised, and
            ``dates`` and ``pad_mask`` as given, each only when the batch has it.
        """
        img = (batch["img"] - self.img_mean) / self.img_std
        if self.hparams["channels_last"]:
            img = img.contiguous(memory_format=torch.channels_last)
        inputs = {"img": img}
        if "meta" in batch:
            inputs["meta"] = batch["meta"]
        if "s2" in batch:
            inputs["s2"] = (batch["s2"] - self.s2_mean) / self.s2_std
            inputs["dates"], inputs["pad_mask"] = batch["dates"], batch["pad_mask"]
        return inputs

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The wrapped model's outputs (``logits``, maybe ``aux``) for a normalised batch.

        Args:
            batch: A loader batch, normalised here by :meth:`prepare`.

        Returns:
            ``logits`` (B×13×H×W, one channel a merged class) and, for U-T&T, ``aux``
            (the U-TAE Sentinel-2 branch's own 13-class logits, on its 10 m window).
        """
        outputs: dict[str, torch.Tensor] = self.model(self.prepare(batch))
        return outputs

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], _: int) -> Any:
        """Packed batches carry uint8 masks (less to collate and copy); losses want long.

        Returns:
            `batch` with ``msk`` cast to int64 when it is present in another dtype; any
            other batch unchanged.
        """
        if isinstance(batch, dict) and "msk" in batch and batch["msk"].dtype != torch.long:
            batch = {**batch, "msk": batch["msk"].long()}
        return batch

    # -- steps -------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], _: int) -> torch.Tensor:
        """Weighted cross-entropy on the (augmented) batch, plus the weighted aux loss.

        Args:
            batch: A loader batch with ``msk`` (B×H×W int64 merged-class indices,
                ``INVALID`` ignored).

        Returns:
            The scalar loss: class-weighted cross-entropy of the logits, plus
            ``aux_weight`` times that of the aux map (when the model has one and the
            weight is above 0).

        Raises:
            NonFiniteLossError: the loss is NaN or infinite.
        """
        if self.hparams["augment"]:
            batch = augment_batch(batch, self._generator)
        out = self(batch)
        loss = F.cross_entropy(
            out["logits"].float(), batch["msk"], weight=self.class_weight, ignore_index=INVALID
        )
        if "aux" in out and self.hparams["aux_weight"] > 0:
            aux = F.cross_entropy(
                self._aux_to_patch(out["aux"], batch["msk"].shape[-2:]),
                batch["msk"],
                weight=self.class_weight,
                ignore_index=INVALID,
            )
            self.log("train_aux_loss", aux, on_step=False, on_epoch=True)
            loss = loss + self.hparams["aux_weight"] * aux
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss is {loss.item()} at step {self.global_step} (epoch {self.current_epoch}); "
                f"training stopped, the last good checkpoint is kept (step {self.last_good_step})"
                "; lower train.lr or check the inputs for NaN"
            )
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_train_batch_end(self, *_: Any) -> None:
        """Remember the last step whose loss was finite."""
        self.last_good_step = self.global_step

    def _aux_to_patch(self, aux: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """The aux map cropped to the patch footprint and resized to the mask.

        The aux map's centre crop over the patch footprint (the very crop the fusion
        uses, so loss and fusion cannot drift apart), resized to the mask.

        Returns:
            The cropped aux logits as float32, B×C×`size`, resized bilinearly.
        """
        crop_px = int(self.model.hparams_dict["fusion"]["crop_px"])
        centre = centre_crop(aux, crop_px).float()
        return F.interpolate(centre, size=tuple(size), mode="bilinear", align_corners=False)

    def validation_step(self, batch: dict[str, torch.Tensor], _: int) -> None:
        """Log the validation loss and add the batch to the confusion matrix."""
        out = self(batch)
        loss = F.cross_entropy(
            out["logits"].float(), batch["msk"], weight=self.class_weight, ignore_index=INVALID
        )
        self.log("val_loss", loss, on_step=False, on_epoch=True)
        self.val_confusion.update(out["logits"].argmax(1), batch["msk"])

    def on_validation_epoch_end(self) -> None:
        """Log ``val_miou`` from the epoch's confusion matrix; step the plateau scheduler."""
        cm = self.val_confusion.compute().double()
        self.val_confusion.reset()
        miou = miou_from_confusion(cm)
        self.log("val_miou", miou, prog_bar=True)
        if self._plateau is not None and not self.trainer.sanity_checking:
            self._plateau.step(float(miou))

    def configure_optimizers(self) -> Any:
        """SGD (momentum 0.9) or AdamW, with a cosine or plateau schedule (``train.*``).

        Returns:
            ``{"optimizer", "lr_scheduler"}`` for the cosine schedule (over ``epochs``);
            the bare optimizer otherwise, the plateau scheduler (if any) being kept here
            and stepped in :meth:`on_validation_epoch_end`.
        """
        hp = self.hparams
        opt = build_optimizer(self.model.parameters(), hp)
        if hp["scheduler"] == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=hp["epochs"])
            return {"optimizer": opt, "lr_scheduler": sched}
        if hp["scheduler"] == "plateau":
            # stepped here, right after validation, not by Lightning: Lightning steps plateau
            # schedulers after the epoch-end checkpoint is written and skips that step when
            # resuming, so a resumed run would diverge (issue 15: resume that reproduces)
            self._plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=10)
            if self._plateau_state is not None:
                self._plateau.load_state_dict(self._plateau_state)
        return opt

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Save the model card and the plateau scheduler's state (Lightning sees neither)."""
        checkpoint["model_card"] = self.card.model_dump(mode="json")
        if self._plateau is not None:
            checkpoint["plateau_scheduler"] = self._plateau.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the plateau scheduler's state saved by :meth:`on_save_checkpoint`."""
        self._plateau_state = checkpoint.get("plateau_scheduler")
        if self._plateau is not None and self._plateau_state is not None:
            self._plateau.load_state_dict(self._plateau_state)


def build_optimizer(params: Any, hp: Any) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum 0.9 (FLAIR's baselines), from a module's hyper-parameters.

    Args:
        params: The parameters to optimise.
        hp: The hyper-parameters: ``optimizer`` (``"adamw"`` or ``"sgd"``), ``lr``,
            ``weight_decay``.

    Returns:
        The optimizer.
    """
    if hp["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=hp["lr"], weight_decay=hp["weight_decay"])
    return torch.optim.SGD(params, lr=hp["lr"], momentum=0.9, weight_decay=hp["weight_decay"])


def _card_kwargs(card: ModelCard) -> dict[str, Any]:
    """The model-defining arguments of :class:`FlairModule`, from `card`.

    Returns:
        Keyword arguments: model name and architecture, normalisation stats, patch size
        (px), resolution (m), downsampling, elevation scale, metadata encoding and
        Sentinel-2 options (None without Sentinel-2).
    """
    return {
        "model_name": card.model,
        "model_kwargs": dict(card.architecture),
        "stats": card.normalisation.as_stats(),
        "patch_size": card.patch.patch_px,
        "resolution": card.patch.resolution_m,
        "downsample": card.patch.downsample,
        "elevation_scale": card.inputs.elevation_scale,
        "meta_encoding": card.meta_encoding,
        "s2_options": card.sentinel2.model_dump() if card.sentinel2 else None,
    }


def miou_from_confusion(cm: torch.Tensor) -> torch.Tensor:
    """FLAIR's mIoU of a validation confusion matrix (0 when no class occurs).

    FLAIR's mIoU (:class:`Scores`, the evaluation's own metric) of a validation matrix;
    0 rather than NaN when no class occurs, so checkpoint selection can still compare.

    Args:
        cm: The confusion matrix (rows truth, columns prediction), on any device.

    Returns:
        The mIoU in [0, 1] as a 0-d float32 tensor on the CPU.
    """
    miou = Scores.from_confusion(cm.detach().cpu().numpy()).miou
    return torch.tensor(0.0 if math.isnan(miou) else miou)
