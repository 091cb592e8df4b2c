"""The Lightning module's own arithmetic: normalisation, the loss, validation, optimisers.

Each expected value is computed here from the raw inputs: normalisation with numpy, the
weighted cross-entropy from the model's logits by a log-softmax written out, the validation
confusion matrix by counting pixels, the mIoU by hand from that matrix. A tiny U-Net on
32 px patches keeps every test well under a second of compute.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch

from flair_pipeline.training.augment import augment_batch
from flair_pipeline.training.module import FlairModule, NonFiniteLossError

MEAN, STD = [100.0, 80.0, 60.0, 120.0], [50.0, 40.0, 30.0, 20.0]
S2_MEAN, S2_STD = [0.1 * (k + 1) for k in range(10)], [0.05 * (k + 1) for k in range(10)]


def module(**kw: Any) -> FlairModule:
    torch.manual_seed(0)
    stats = {"mean": MEAN, "std": STD}
    return FlairModule("unet", {"in_channels": 4}, stats, **kw)


def batch(seed: int = 1, n: int = 2, side: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    msk = torch.randint(0, 13, (n, side, side), generator=g)
    msk[:, 0, :3] = 255  # a few invalid pixels
    return {"img": torch.rand(n, 4, side, side, generator=g) * 255, "msk": msk}


def weighted_ce(logits: torch.Tensor, msk: torch.Tensor) -> float:
    """Mean cross-entropy weighted 1 for classes 0..11, 0 for "other" (12), 255 ignored."""
    z = logits.double().permute(0, 2, 3, 1).reshape(-1, logits.shape[1]).numpy()
    y = msk.reshape(-1).numpy()
    keep = y != 255
    z, y = z[keep], y[keep]
    logp = z - z.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    w = np.where(y == 12, 0.0, 1.0)
    return float((w * -logp[np.arange(len(y)), y]).sum() / w.sum())


def test_inputs_are_normalised_per_band() -> None:
    m = module(s2_options=None)
    b = batch()
    got = m.prepare(b)["img"].numpy()
    img = b["img"].numpy().astype(np.float64)
    for c in range(4):
        np.testing.assert_allclose(got[:, c], (img[:, c] - MEAN[c]) / STD[c], rtol=1e-5)
    assert set(m.prepare(b)) == {"img"}  # the mask is not a model input


def test_sentinel2_and_metadata_are_passed_normalised() -> None:
    torch.manual_seed(0)
    stats = {"mean": MEAN, "std": STD, "s2_mean": S2_MEAN, "s2_std": S2_STD}
    m = FlairModule("unet", {"in_channels": 4}, stats)
    g = torch.Generator().manual_seed(3)
    s2 = torch.rand(2, 3, 10, 8, 8, generator=g)
    dates, pad = torch.tensor([[1, 5, 9], [2, 6, 7]]), torch.tensor([[0, 0, 1], [0, 0, 0]]).bool()
    meta = torch.rand(2, 7, generator=g)
    out = m.prepare({**batch(), "s2": s2, "dates": dates, "pad_mask": pad, "meta": meta})
    raw = s2.numpy().astype(np.float64)
    for k in range(10):
        expected = (raw[:, :, k] - S2_MEAN[k]) / S2_STD[k]
        np.testing.assert_allclose(out["s2"][:, :, k].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert out["dates"] is dates and out["pad_mask"] is pad and out["meta"] is meta


def test_channels_last_only_changes_the_memory_layout() -> None:
    b = batch()
    plain = module().prepare(b)["img"]
    cl = module(channels_last=True).prepare(b)["img"]
    assert cl.is_contiguous(memory_format=torch.channels_last)
    assert not plain.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(plain, cl)


def test_uint8_masks_become_long_with_the_same_values() -> None:
    m = module()
    b = batch()
    small = {**b, "msk": b["msk"].to(torch.uint8)}
    out = m.on_after_batch_transfer(small, 0)
    assert out["msk"].dtype == torch.long
    assert torch.equal(out["msk"], b["msk"])
    assert small["msk"].dtype == torch.uint8  # the loader's batch is left as it was
    same = m.on_after_batch_transfer(b, 0)
    assert same["msk"] is b["msk"]
    assert m.on_after_batch_transfer([1, 2], 0) == [1, 2]
    images_only = {"img": b["img"]}  # a prediction batch has no mask
    assert m.on_after_batch_transfer(images_only, 0) is images_only


def _step(m: FlairModule, b: dict[str, torch.Tensor]) -> float:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a Trainer: warns, logs nothing
        return float(m.training_step(b, 0))


def test_training_loss_is_the_weighted_cross_entropy_without_other_and_invalid() -> None:
    m = module(augment=False).eval()
    b = batch()
    b["msk"][:, 5:9, 5:20] = 12  # "other": weight 0
    with torch.no_grad():
        logits = m(b)["logits"]
    assert _step(m, b) == pytest.approx(weighted_ce(logits, b["msk"]), rel=1e-5)


def test_training_augments_with_the_module_seeded_generator() -> None:
    b = batch(n=4)
    m = module(augment=True, seed=7).eval()
    augmented = augment_batch(b, torch.Generator().manual_seed(7))
    with torch.no_grad():
        logits = m(augmented)["logits"]
    expected = weighted_ce(logits, augmented["msk"])
    plain = weighted_ce(m(b)["logits"].detach(), b["msk"])
    assert abs(expected - plain) > 1e-4  # the draw of seed 7 does change this batch
    assert _step(m, b) == pytest.approx(expected, rel=1e-5)


def test_a_nan_input_stops_training_with_the_last_good_step() -> None:
    m = module(augment=False).eval()
    m.last_good_step = 41
    b = batch()
    b["img"][0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError) as err:
        _step(m, b)
    assert str(err.value) == (
        "loss is nan at step 0 (epoch 0); training stopped, the last good checkpoint is kept "
        "(step 41); lower train.lr or check the inputs for NaN"
    )


def test_validation_counts_every_valid_pixel_and_logs_the_miou() -> None:
    m = module().eval()
    logged: dict[str, float] = {}
    m.log = lambda name, value, **_: logged.__setitem__(name, float(value))  # type: ignore[method-assign]
    batches = [batch(seed=s) for s in (4, 5)]
    cm = np.zeros((13, 13), np.int64)
    for b in batches:
        with torch.no_grad():
            pred = m(b)["logits"].argmax(1).numpy().ravel()
            m.validation_step(b, 0)
        y = b["msk"].numpy().ravel()
        for t, p in zip(y, pred, strict=True):
            if t != 255:
                cm[t, p] += 1
    assert np.array_equal(m.val_confusion.compute().numpy(), cm)
    m.on_validation_epoch_end()
    ious = []
    for c in range(12):  # FLAIR's mIoU: classes 0..11 present in truth or prediction
        tp, fp, fn = cm[c, c], cm[:, c].sum() - cm[c, c], cm[c, :].sum() - cm[c, c]
        if tp + fp + fn:
            ious.append(tp / (tp + fp + fn))
    assert logged["val_miou"] == pytest.approx(float(np.mean(ious)), abs=1e-6)
    assert math.isfinite(logged["val_loss"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # compute() before update(): the point here
        assert m.val_confusion.compute().sum() == 0  # reset for the next epoch


@pytest.mark.parametrize(
    ("optimizer", "scheduler"), [("sgd", "plateau"), ("adamw", "cosine"), ("sgd", "none")]
)
def test_optimiser_and_scheduler_follow_the_recipe(optimizer: str, scheduler: str) -> None:
    m = module(optimizer=optimizer, scheduler=scheduler, lr=0.03, weight_decay=0.001, epochs=17)
    got = m.configure_optimizers()
    opt = got["optimizer"] if isinstance(got, dict) else got
    group = opt.param_groups[0]
    assert group["lr"] == 0.03 and group["weight_decay"] == 0.001
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.model.parameters()))
    if optimizer == "adamw":
        assert type(opt) is torch.optim.AdamW
    else:
        assert type(opt) is torch.optim.SGD and group["momentum"] == 0.9
    if scheduler == "cosine":
        assert isinstance(got, dict) and got["lr_scheduler"].T_max == 17
        assert got["lr_scheduler"].optimizer is opt
        assert m._plateau is None
    elif scheduler == "plateau":
        assert got is opt
        assert m._plateau is not None and m._plateau.mode == "max" and m._plateau.patience == 10
        assert m._plateau.optimizer is opt
    else:
        assert got is opt and m._plateau is None


def test_plateau_state_travels_in_the_checkpoint() -> None:
    m = module(scheduler="plateau")
    m.configure_optimizers()
    assert m._plateau is not None
    for value in (0.5, 0.4, 0.3):  # no improvement after the first: 2 bad epochs
        m._plateau.step(value)
    ckpt: dict[str, Any] = {}
    m.on_save_checkpoint(ckpt)
    assert ckpt["plateau_scheduler"]["num_bad_epochs"] == 2
    assert ckpt["plateau_scheduler"]["best"] == 0.5
    fresh = module(scheduler="plateau")
    fresh.on_load_checkpoint(ckpt)  # before configure_optimizers, as Lightning resumes
    fresh.configure_optimizers()
    assert fresh._plateau is not None and fresh._plateau.num_bad_epochs == 2
    assert fresh._plateau.best == 0.5
    again = module(scheduler="plateau")
    again.configure_optimizers()
    again.on_load_checkpoint(ckpt)  # after: loaded into the live scheduler
    assert again._plateau is not None and again._plateau.num_bad_epochs == 2
    none: dict[str, Any] = {}
    module(scheduler="cosine").on_save_checkpoint(none)
    assert "plateau_scheduler" not in none


def test_buffers_and_hyper_parameters() -> None:
    torch.manual_seed(0)
    stats = {"mean": MEAN, "std": STD, "s2_mean": S2_MEAN, "s2_std": S2_STD}
    m = FlairModule("unet", {"in_channels": 4}, stats, seed=5, encoder_weights=None)
    assert m.img_mean.shape == (1, 4, 1, 1) and m.img_std.flatten().tolist() == STD
    assert m.s2_mean.shape == (1, 1, 10, 1, 1) and m.s2_std.flatten().tolist() == pytest.approx(
        S2_STD
    )
    assert m.class_weight.tolist() == [1.0] * 12 + [0.0]
    assert "encoder_weights" not in m.hparams and m.hparams.seed == 5
    assert torch.equal(
        torch.rand(3, generator=m._generator),
        torch.rand(3, generator=torch.Generator().manual_seed(5)),
    )
    assert m.last_good_step == 0
    assert not hasattr(module(), "s2_mean")


def test_each_finished_batch_is_the_last_good_step() -> None:
    m = module()
    m.last_good_step = 41
    m.on_train_batch_end()
    assert m.last_good_step == m.global_step == 0  # no Trainer attached: step 0


class _Batches(torch.utils.data.Dataset):
    """The samples of `batches` in order (a DataLoader of their size gives them back)."""

    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self.samples = [
            {k: v[i] for k, v in b.items()} for b in batches for i in range(len(b["img"]))
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.samples[i]


def _trainer() -> Any:
    import lightning as L

    return L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def test_a_real_validation_epoch_logs_the_mean_weighted_loss_and_the_miou() -> None:
    """Through Lightning's own loop: ``val_loss`` is one value per epoch, the mean of each
    batch's weighted cross-entropy (computed here by hand, class "other" weighted 0);
    ``val_miou`` is the epoch's, shown in the progress bar."""
    m = module().eval()
    batches = [batch(seed=s) for s in (4, 5)]
    for b in batches:
        b["msk"][:, 5:9, 5:20] = 12  # "other": weight 0
    with torch.no_grad():
        per_batch = [weighted_ce(m(b)["logits"], b["msk"]) for b in batches]
    assert abs(per_batch[0] - per_batch[1]) > 1e-4  # a last-batch value would differ
    trainer = _trainer()
    loader = torch.utils.data.DataLoader(_Batches(batches), batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no workers, few batches: Lightning's hints
        (metrics,) = trainer.validate(m, loader, verbose=False)
    assert set(metrics) == {"val_loss", "val_miou"}
    assert metrics["val_loss"] == pytest.approx(np.mean(per_batch), rel=1e-5)
    assert set(trainer.logged_metrics) == {"val_loss", "val_miou"}  # no per-step values
    assert set(trainer.progress_bar_metrics) == {"val_miou"}
    assert 0 <= metrics["val_miou"] <= 1


def test_the_plateau_scheduler_steps_on_the_miou_but_not_in_the_sanity_check() -> None:
    from lightning.pytorch.trainer.states import RunningStage

    m = module(scheduler="plateau").eval()
    m.configure_optimizers()
    assert m._plateau is not None
    logged: dict[str, float] = {}
    m.log = lambda name, value, **_: logged.__setitem__(name, float(value))  # type: ignore[method-assign]
    trainer = _trainer()
    m.trainer = trainer
    trainer.state.stage = RunningStage.SANITY_CHECKING  # Lightning's check before training
    with torch.no_grad():
        m.validation_step(batch(seed=4), 0)
    m.on_validation_epoch_end()
    assert m._plateau.last_epoch == 0 and m._plateau.best == -math.inf
    trainer.state.stage = RunningStage.VALIDATING
    with torch.no_grad():
        m.validation_step(batch(seed=5), 0)
    m.on_validation_epoch_end()
    assert m._plateau.last_epoch == 1 and m._plateau.best == logged["val_miou"] > 0


@pytest.mark.parametrize("resumed", [False, True])
def test_from_config_reads_every_value_from_the_config(
    resumed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every hyper-parameter of a training run comes from its own config field: each set
    here to a value unlike its default (and unlike the others), the expected dict spelled
    by hand. A resumed run asks for no encoder weights (the checkpoint has them)."""
    import flair_pipeline.training.module as module_py
    from flair_pipeline.config import config_from_dict
    from flair_pipeline.model_registry import architecture
    from flair_pipeline.training.model_card import card_for_training

    asked: list[str | None] = []
    real_build = module_py.build_model

    def build_model(name: str, *, encoder_weights: str | None = None, **kw: Any) -> Any:
        asked.append(encoder_weights)  # recorded, then built without a download
        return real_build(name, encoder_weights=None, **kw)

    monkeypatch.setattr(module_py, "build_model", build_model)
    s2 = {"window": 12, "filter_clouds": True, "cloud_threshold": 33}
    s2 |= {"cloud_max_fraction": 0.25, "monthly_average": True}
    train = {"optimizer": "adamw", "lr": 0.003, "weight_decay": 0.01, "scheduler": "cosine"}
    train |= {"epochs": 7, "augment": False, "aux_weight": 0.125, "seed": 4, "downsample": 2}
    train |= {"encoder_weights": "imagenet", "utae_width": 8}
    cfg = config_from_dict(
        {
            "train": train,
            "sampling": {"resolution": 0.25, "elevation_scale": 4.0},
            "sentinel2": {**s2, "max_size": 60},
        }
    )
    stats = {"mean": [*MEAN, 10.0], "std": [*STD, 5.0], "s2_mean": S2_MEAN, "s2_std": S2_STD}
    kwargs = architecture(
        "utt",
        in_channels=5,
        meta_dim=None,
        patch_m=12.0,
        utae_width=cfg.train.utae_width,
        modality_dropout=cfg.train.modality_dropout,
    )
    card = card_for_training(cfg, "utt", stats, patch_px=48)
    m = FlairModule.from_config(cfg, card, channels_last=True, resumed=resumed)
    expected = {
        "model_name": "utt",
        "model_kwargs": kwargs,
        "stats": stats,
        "optimizer": "adamw",
        "lr": 0.003,
        "weight_decay": 0.01,
        "scheduler": "cosine",
        "epochs": 7,
        "augment": False,
        "aux_weight": 0.125,
        "seed": 4,
        "patch_size": 48,
        "resolution": 0.25,
        "downsample": 2,
        "elevation_scale": 4.0,
        "meta_encoding": None,
        "s2_options": s2,
        "channels_last": True,
    }
    assert dict(m.hparams) == expected
    assert asked == [None if resumed else "imagenet"]
    vocabulary = {"camera": ["UCE-M3-f100"], "year": [2021]}
    plain_card = card_for_training(cfg, "unet", stats, patch_px=48, meta_encoding=vocabulary)
    plain = FlairModule.from_config(cfg, plain_card)
    assert plain.hparams["s2_options"] is None  # a model without Sentinel-2
    assert plain.hparams["channels_last"] is False
    assert plain.hparams["meta_encoding"] == vocabulary
    assert asked[-1] == "imagenet"  # a new run (not resumed) by default
