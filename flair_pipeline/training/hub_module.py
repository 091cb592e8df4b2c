"""The Lightning module of FLAIR-HUB's models: per-task weighted losses, aux loss, mIoU per task.

Written from IGN's ``src/flair_hub/tasks/tasks_module.py`` (IGNF/FLAIR-HUB 3d5693b,
``SegmentationTask.step``): the loss of a batch is, summed over the tasks,
``task_weight_t * (CE_t + mean_s(aux_loss_weight * CE_aux_{s,t}))`` where ``CE_t`` is the
class-weighted cross-entropy of task ``t``'s logits (class weights from the config: IGN's
``value_weights``, COSIA's classes 15-18 at 0) and the mean runs over the series given an
auxiliary head. Pixels labelled :data:`~flair_pipeline.models.hub_inputs.IGNORE` are not
scored. Inputs arrive normalised (the dataset's job, :mod:`flair_pipeline.training.hub_data`).

Validation keeps one confusion matrix per task; ``val_miou_<task>`` is FLAIR-HUB's mIoU over
the scored classes (:func:`flair_pipeline.metrics.scored_iou`) and ``val_miou`` their mean.
"""

from __future__ import annotations

import math
from typing import Any, cast

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassConfusionMatrix

from flair_pipeline.errors import ConfigError
from flair_pipeline.metrics import scored_iou
from flair_pipeline.models.hub import HubModel
from flair_pipeline.models.hub_inputs import IGNORE, aux_key
from flair_pipeline.training.module import NonFiniteLossError, build_optimizer

OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("cosine", "plateau", "none")


def weighted_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Class-weighted mean cross-entropy, :data:`IGNORE` pixels left out.

    The same value as ``F.cross_entropy(logits, target, weight, ignore_index=IGNORE)``
    whenever a pixel of positive weight exists; 0 (not NaN, which would stop training) for
    a batch without one, e.g. a multi-task batch whose patches have no crop-type label.

    Args:
        logits: float B×K×H×W.
        target: int64 B×H×W class indices or :data:`IGNORE`.
        weight: float (K,) class weights.

    Returns:
        The 0-d float32 loss.
    """
    nll = F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="none")
    valid = target != IGNORE
    w = weight.to(nll.dtype)[torch.where(valid, target, 0)] * valid
    return (nll * w).sum() / w.sum().clamp_min(1e-12)


class HubModule(L.LightningModule):
    """Trains a :class:`~flair_pipeline.models.hub.HubModel` on contract batches.

    Every constructor argument is saved as a hyper-parameter, so
    ``HubModule.load_from_checkpoint(path)`` rebuilds the module (``model_kwargs`` is saved
    with ``encoder_weights`` None: the checkpoint carries the trained weights, reloading
    must not download any) and ``hub_config`` lets evaluation rebuild the data pipeline.
    """

    def __init__(
        self,
        model_kwargs: dict[str, Any],
        class_weights: dict[str, list[float]],
        task_weights: dict[str, float],
        *,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        epochs: int = 1,
        aux_loss_weight: float = 1.5,
        seed: int = 0,
        hub_config: dict[str, Any] | None = None,
    ) -> None:  # pragma: no mutate block
        """Build the model and the per-task weights and metrics.

        Args:
            model_kwargs: :class:`~flair_pipeline.models.hub.HubModel`'s keyword arguments.
            class_weights: Task -> one weight per class (0: not scored, not learnt).
            task_weights: Task -> weight of its loss (IGN's ``task_weight``, default 1).
            optimizer: ``adamw`` or ``sgd`` (momentum 0.9).
            lr: Learning rate.
            weight_decay: Weight decay.
            scheduler: ``cosine`` (over `epochs`), ``plateau`` (on ``val_miou``) or ``none``.
            epochs: Epochs of the run (the cosine schedule's length).
            aux_loss_weight: Weight of each auxiliary loss (IGN's ``aux_loss_weight``: 1.5).
            seed: The run's seed (recorded; the trainer seeds the generators).
            hub_config: The training config as JSON, kept for evaluation.

        Raises:
            ConfigError: Unknown optimizer or scheduler; class weights missing for a task
                or not one per class; negative weights; task weights of unknown tasks.
        """
        super().__init__()
        self.save_hyperparameters()
        # the checkpoint carries the weights: rebuilding must not fetch them again
        self.hparams["model_kwargs"] = {**model_kwargs, "encoder_weights": None}
        if optimizer not in OPTIMIZERS or scheduler not in SCHEDULERS:
            raise ConfigError(
                f"HubModule: optimizer {optimizer!r} / scheduler {scheduler!r}: "
                f"expected one of {OPTIMIZERS} / {SCHEDULERS}"
            )
        self.model = HubModel(**model_kwargs)
        self.tasks = dict(self.model.tasks)
        self._check_weights(class_weights, task_weights)
        self.task_weights = {t: float(task_weights.get(t, 1.0)) for t in self.tasks}
        #: scored classes per task: those of positive weight (FLAIR-HUB's metrics)
        self.scored = {t: [i for i, w in enumerate(class_weights[t]) if w > 0] for t in self.tasks}
        for i, t in enumerate(self.tasks):
            self.register_buffer(f"class_weight_{i}", torch.tensor(class_weights[t]).float())
        self.val_confusion = torch.nn.ModuleList(
            MulticlassConfusionMatrix(k, ignore_index=IGNORE) for k in self.tasks.values()
        )
        self._plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self._plateau_state: dict[str, Any] | None = None

    def _check_weights(
        self, class_weights: dict[str, list[float]], task_weights: dict[str, float]
    ) -> None:
        """One non-negative class weight per class of every task; known task weights.

        Raises:
            ConfigError: Naming the task and what was found.
        """
        for t, k in self.tasks.items():
            w = class_weights.get(t)
            if w is None or len(w) != k or any(not float(x) >= 0 for x in w):
                raise ConfigError(
                    f"HubModule: class_weights[{t!r}] must be {k} weights >= 0, got {w}"
                )
        bad = sorted(set(task_weights) - set(self.tasks))
        if bad:
            raise ConfigError(f"HubModule: task_weights for tasks the model lacks: {bad}")

    def class_weight(self, task: str) -> torch.Tensor:
        """The class weights of `task` (a buffer: on the module's device).

        Args:
            task: A task of the model.

        Returns:
            float32 (K,).
        """
        return self.get_buffer(f"class_weight_{list(self.tasks).index(task)}")

    def confusions(self) -> dict[str, MulticlassConfusionMatrix]:
        """Each task's validation confusion matrix (torchmetrics, on the module's device).

        Returns:
            Task -> its metric, in task order.
        """
        metrics = cast(list[MulticlassConfusionMatrix], list(self.val_confusion))
        return dict(zip(self.tasks, metrics, strict=True))

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The model's logits per task and auxiliary logits.

        Args:
            batch: A contract batch (:mod:`flair_pipeline.models.hub_inputs`).

        Returns:
            ``{task: B×K×H×W, aux_key(s, task): B×K×H×W}``.
        """
        out: dict[str, torch.Tensor] = self.model(batch)
        return out

    def losses(
        self, batch: dict[str, Any], out: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Each task's weighted loss (main + aux) and their sum under ``"loss"``.

        Args:
            batch: The contract batch with every task's labels (int64 B×H×W).
            out: The model's outputs for it.

        Returns:
            ``{task: task_weight * (CE + mean aux CE * aux_loss_weight), "loss": sum}``.

        Raises:
            ValueError: The batch lacks a task's labels.
        """
        losses: dict[str, torch.Tensor] = {}
        aux_w = float(self.hparams["aux_loss_weight"])
        for t in self.tasks:
            if t not in batch:
                raise ValueError(f"HubModule: batch lacks the labels of task {t!r}")
            y, w = batch[t].long(), self.class_weight(t)
            loss = weighted_cross_entropy(out[t], y, w)
            aux = [
                aux_w * weighted_cross_entropy(out[aux_key(s, t)], y, w)
                for s in self.model.aux_series
            ]
            if aux:
                loss = loss + torch.stack(aux).mean()
            losses[t] = self.task_weights[t] * loss
        losses["loss"] = torch.stack(list(losses.values())).sum()
        return losses

    def training_step(self, batch: dict[str, Any], _: int) -> torch.Tensor:
        """The summed loss of a batch (modality dropout active: training mode).

        Args:
            batch: A contract batch.

        Returns:
            The scalar loss.

        Raises:
            NonFiniteLossError: The loss is NaN or infinite.
        """
        losses = self.losses(batch, self(batch))
        loss = losses["loss"]
        if not torch.isfinite(loss):
            per_task = {t: v.item() for t, v in losses.items() if t != "loss"}
            raise NonFiniteLossError(
                f"loss is {loss.item()} at step {self.global_step} (epoch {self.current_epoch}; "
                f"per task {per_task}); training stopped; lower the learning rate or check "
                "the inputs for NaN"
            )
        n = len(batch.get("patch_id", [])) or None
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, Any], _: int) -> None:
        """Log ``val_loss`` and add the batch to each task's confusion matrix."""
        out = self(batch)
        n = len(batch.get("patch_id", [])) or None
        self.log("val_loss", self.losses(batch, out)["loss"], on_epoch=True, batch_size=n)
        for t, cm in self.confusions().items():
            cm.update(out[t].argmax(1), batch[t].long())

    def on_validation_epoch_end(self) -> None:
        """Log ``val_miou_<task>`` and their mean ``val_miou``; step the plateau scheduler."""
        mious = []
        for t, cm in self.confusions().items():
            matrix = cm.compute().detach().cpu().numpy()
            cm.reset()
            miou = scored_iou(matrix, self.scored[t])[1]
            miou = 0.0 if math.isnan(miou) else miou
            self.log(f"val_miou_{t}", miou)
            mious.append(miou)
        val_miou = sum(mious) / len(mious)
        self.log("val_miou", val_miou, prog_bar=True)
        if self._plateau is not None and not self.trainer.sanity_checking:
            self._plateau.step(val_miou)

    def configure_optimizers(self) -> Any:
        """AdamW or SGD (momentum 0.9), with a cosine, plateau or no schedule.

        Returns:
            ``{"optimizer", "lr_scheduler"}`` for the cosine schedule (over ``epochs``); the
            bare optimizer otherwise, the plateau scheduler (if any) being stepped in
            :meth:`on_validation_epoch_end` as :class:`~flair_pipeline.training.module.FlairModule` does.
        """
        hp = self.hparams
        opt = build_optimizer(self.model.parameters(), hp)
        if hp["scheduler"] == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, hp["epochs"]))
            return {"optimizer": opt, "lr_scheduler": sched}
        if hp["scheduler"] == "plateau":
            self._plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=10)
            if self._plateau_state is not None:
                self._plateau.load_state_dict(self._plateau_state)
        return opt

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Save the plateau scheduler's state (Lightning does not see it)."""
        if self._plateau is not None:
            checkpoint["plateau_scheduler"] = self._plateau.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the plateau scheduler's state saved by :meth:`on_save_checkpoint`."""
        self._plateau_state = checkpoint.get("plateau_scheduler")
        if self._plateau is not None and self._plateau_state is not None:
            self._plateau.load_state_dict(self._plateau_state)
