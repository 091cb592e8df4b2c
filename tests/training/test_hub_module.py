"""FLAIR-HUB's Lightning module: weighted losses, task weights, a step that learns, checkpoints.

Expected losses are computed here with a log-softmax written out over the pixels, not by
the module's own function; a tiny model (resnet18 on 32 px, narrow U-TAE) keeps each test
within seconds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from flair_pipeline.errors import ConfigError
from flair_pipeline.models.hub_inputs import IGNORE, dates_key, pad_key
from flair_pipeline.training.hub_module import HubModule
from flair_pipeline.training.module import NonFiniteLossError

COSIA, LPIS, S2 = "AERIAL_LABEL-COSIA", "ALL_LABEL-LPIS", "SENTINEL2_TS"
UTAE = {
    "encoder_widths": [8, 16],
    "decoder_widths": [8, 16],
    "out_conv": [8, 1],
    "n_head": 4,
    "d_model": 16,
    "d_k": 4,
    "collapse_hidden": 8,
    "dropout": 0.0,
}
#: COSIA's weights as IGN's config_supervision.yaml sets them: classes 15-18 at 0
COSIA_W = [1.0] * 15 + [0.0] * 4
LPIS_W = [1.0] * 23


def hub(tasks: dict[str, int], **kw: Any) -> HubModule:
    torch.manual_seed(0)
    inputs = {"AERIAL_RGBI": 4, S2: 10}
    cw = {COSIA: COSIA_W, LPIS: LPIS_W}
    return HubModule(
        {"inputs": inputs, "tasks": tasks, "encoder": "resnet18", "utae": UTAE, **kw.pop("m", {})},
        {t: cw[t] for t in tasks},
        kw.pop("task_weights", {}),
        **kw,
    )


def batch(seed: int = 1, b: int = 2, side: int = 32) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    cosia = torch.randint(0, 19, (b, side, side), generator=g)
    cosia[:, 0, :4] = IGNORE
    return {
        "AERIAL_RGBI": torch.randn(b, 4, side, side, generator=g),
        S2: torch.randn(b, 3, 10, 10, 10, generator=g),
        dates_key(S2): torch.tensor([[-60, 10, 90]] * b),
        pad_key(S2): torch.zeros(b, 3, dtype=torch.bool),
        COSIA: cosia,
        LPIS: torch.randint(0, 23, (b, side, side), generator=g),
        "patch_id": [f"p{i}" for i in range(b)],
        "domain": ["D001_2020", "D002_2021"][:b],
    }


def plain_ce(logits: torch.Tensor, y: torch.Tensor, weights: list[float]) -> float:
    """Sum over pixels of w[y] * -log softmax(z)[y], over the sum of w[y], pixel by pixel."""
    z = logits.detach().double().permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
    num = den = 0.0
    for zi, yi in zip(z, y.reshape(-1).tolist(), strict=True):
        if yi == IGNORE:
            continue
        logp = zi[yi] - math.log(float(torch.exp(zi - zi.max()).sum())) - float(zi.max())
        num += weights[yi] * -float(logp)
        den += weights[yi]
    return num / den


def test_a_weight_0_class_contributes_nothing_to_the_loss() -> None:
    m = hub({COSIA: 19}).eval()
    b = batch()
    b[COSIA][:, 8:16] = 17  # a band of a weight-0 class (COSIA 15-18)
    with torch.no_grad():
        out = m(b)
        loss = float(m.losses(b, out)["loss"])
    assert loss == pytest.approx(plain_ce(out[COSIA], b[COSIA], COSIA_W), rel=1e-5)
    # the logits under the weight-0 band do not matter at all
    out2 = dict(out)
    out2[COSIA] = out[COSIA].clone()
    out2[COSIA][:, :, 8:16] = torch.randn_like(out2[COSIA][:, :, 8:16]) * 10
    assert float(m.losses(b, out2)["loss"]) == pytest.approx(loss, rel=1e-6)
    # a batch with only weight-0 or ignored pixels gives 0, not NaN
    b[COSIA][:] = 16
    b[COSIA][0, 0] = IGNORE
    assert float(m.losses(b, out)["loss"]) == 0.0


def test_task_weights_scale_their_task_and_aux_is_added() -> None:
    b = batch()
    m = hub({COSIA: 19, LPIS: 23}, task_weights={LPIS: 0.25}).eval()
    with torch.no_grad():
        out = m(b)
        losses = m.losses(b, out)
    lpis = plain_ce(out[LPIS], b[LPIS], LPIS_W)
    cosia = plain_ce(out[COSIA], b[COSIA], COSIA_W)
    assert float(losses[LPIS]) == pytest.approx(0.25 * lpis, rel=1e-5)
    assert float(losses["loss"]) == pytest.approx(cosia + 0.25 * lpis, rel=1e-5)
    # IGN: task_weight * (CE + mean over series of aux_loss_weight * aux CE)
    aux = hub({COSIA: 19}, m={"aux_series": (S2,)}, aux_loss_weight=1.5).eval()
    with torch.no_grad():
        out = aux(b)
        got = float(aux.losses(b, out)["loss"])
    expected = plain_ce(out[COSIA], b[COSIA], COSIA_W) + 1.5 * plain_ce(
        out[f"{S2}__{COSIA}"], b[COSIA], COSIA_W
    )
    assert got == pytest.approx(expected, rel=1e-5)


def test_one_optimisation_step_lowers_the_loss_on_a_fixed_batch() -> None:
    m = hub({COSIA: 19, LPIS: 23}, lr=1e-3, scheduler="none")
    opt = m.configure_optimizers()
    b = batch()
    m.train()  # both losses in training mode: BatchNorm on the batch's own statistics
    before = m.training_step(b, 0)
    before.backward()
    opt.step()
    with torch.no_grad():
        after = float(m.losses(b, m(b))["loss"])
    assert after < before.item()


def test_nan_loss_stops_training_with_one_line() -> None:
    m = hub({COSIA: 19}).train()
    b = batch()
    b["AERIAL_RGBI"][0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 0 .*check the inputs"):
        m.training_step(b, 0)


def test_checkpoint_save_load_gives_the_same_logits(tmp_path: Path) -> None:
    cfg = {"recipe": "LC-test", "epochs": 1}
    m = hub({COSIA: 19, LPIS: 23}, m={"aux_series": (S2,)}, hub_config=cfg, scheduler="plateau")
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    # batch_size=None: the loader yields the prepared contract batches as they are
    train = DataLoader([batch(1), batch(2)], batch_size=None)
    trainer.fit(m, train_dataloaders=train, val_dataloaders=DataLoader([batch(3)], batch_size=None))
    ckpt = tmp_path / "hub.ckpt"
    trainer.save_checkpoint(ckpt)
    assert set(trainer.callback_metrics) >= {
        "train_loss",
        "val_loss",
        "val_miou",
        f"val_miou_{COSIA}",
        f"val_miou_{LPIS}",
    }
    back = HubModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    m.eval()
    assert back.hparams["hub_config"] == cfg
    assert back.hparams["model_kwargs"]["encoder_weights"] is None
    b = batch(4)
    with torch.no_grad():
        want, got = m(b), back(b)
    assert set(got) == set(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_val_miou_is_flair_hub_s_over_scored_classes() -> None:
    m = hub({COSIA: 19}).eval()
    b = batch(b=1)
    y = torch.full((1, 32, 32), IGNORE)
    y[0, :8] = 0  # class 0: 256 px
    y[0, 8:16] = 1  # class 1: 256 px
    y[0, 16:24] = 17  # weight 0: not scored
    b[COSIA] = y
    # feed the confusion matrix directly with a prediction made up here
    pred = torch.zeros(1, 32, 32, dtype=torch.long)
    pred[0, 12:16] = 2  # 128 px of class 1 predicted as 2 (rows 8-11: predicted 0)
    # the weight-0 truth (rows 16-23) is predicted 0: not counted (class 17 is not scored)
    m.val_confusion[0].update(pred, y)
    logged: dict[str, float] = {}
    m.log = lambda name, value, **_: logged.__setitem__(name, float(value))  # type: ignore[method-assign]
    m.on_validation_epoch_end()
    # truth 0 -> pred 0: 256 px; truth 1 -> pred 0: 128 px, pred 2: 128 px
    iou0 = 256 / (256 + 128)  # TP 256, FP 128, FN 0
    iou1 = 0 / (0 + 0 + 256)  # TP 0, FN 256
    iou2 = 0 / (0 + 128 + 0)  # TP 0, FP 128
    # 15 scored classes (0..14); classes 3..14 absent: IoU 0 as IGN counts them
    expected = (iou0 + iou1 + iou2) / 15
    assert logged[f"val_miou_{COSIA}"] == pytest.approx(expected)
    assert logged["val_miou"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"optimizer": "adam"}, "optimizer"),
        ({"scheduler": "step"}, "scheduler"),
        ({"task_weights": {LPIS: 1.0}}, "tasks the model lacks"),
    ],
)
def test_bad_settings_are_refused(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        hub({COSIA: 19}, **kw)


def test_class_weights_must_cover_every_class() -> None:
    with pytest.raises(ConfigError, match=r"class_weights\['AERIAL_LABEL-COSIA'\] must be 19"):
        HubModule({"inputs": {"AERIAL_RGBI": 4}, "tasks": {COSIA: 19}}, {COSIA: [1.0] * 18}, {})
