"""U-T&T's auxiliary loss is computed on the centre crop of the U-TAE map over the patch.

The aerial patch covers only the centre of the Sentinel-2 window (FLAIR-2: 102.4 m, i.e.
10 S2 px of a 40 px window); the aux loss compares the U-TAE output with the patch's mask,
so it must use exactly those pixels, resized to the mask. The expected crops below are
written by hand from that geometry, not taken from ``centre_crop``.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from flair_pipeline.training.module import FlairModule

UTAE = {
    "encoder_widths": [8, 8, 16],
    "decoder_widths": [8, 8, 16],
    "out_conv": [8, 13],
    "n_head": 4,
    "d_model": 16,
    "d_k": 4,
    "dropout": 0.0,
}
STATS = {"mean": [100.0] * 5, "std": [50.0] * 5, "s2_mean": [0.1] * 10, "s2_std": [0.05] * 10}


def module(crop_px: int) -> FlairModule:
    torch.manual_seed(0)
    kwargs = {"utae": UTAE, "fusion": {"crop_px": crop_px}}
    return FlairModule("utt", kwargs, STATS, augment=False, aux_weight=0.5).eval()


def test_aux_map_is_cropped_to_the_patch_footprint() -> None:
    # a 40 px window at 10 m, patch 102.4 m ~ 10 px centred: rows and columns 15..24
    aux = torch.zeros(1, 13, 40, 40)
    rows = torch.arange(40.0)[:, None].expand(40, 40)
    cols = torch.arange(40.0)[None, :].expand(40, 40)
    aux[0, :] = rows * 1000 + cols  # every pixel says where it came from
    out = module(10)._aux_to_patch(aux, torch.Size([10, 10]))
    expected = torch.arange(15.0, 25.0)[:, None] * 1000 + torch.arange(15.0, 25.0)[None, :]
    assert out.shape == (1, 13, 10, 10)
    torch.testing.assert_close(out[0, 3], expected, rtol=0, atol=1e-3)


def test_training_loss_adds_half_the_aux_loss_on_the_centre_crop() -> None:
    m = module(4)
    with torch.no_grad():  # a sharper aux head, so that different crops differ clearly
        m.model.utae.out.weight.mul_(50.0)
    g = torch.Generator().manual_seed(1)
    batch = {
        "img": torch.rand(2, 5, 32, 32, generator=g) * 255,
        "s2": torch.rand(2, 3, 10, 16, 16, generator=g),
        "dates": torch.tensor([[10, 100, 200], [20, 120, 220]]),
        "pad_mask": torch.zeros(2, 3, dtype=torch.bool),
    }

    def resized(crop: torch.Tensor) -> torch.Tensor:
        return F.interpolate(crop, size=(32, 32), mode="bilinear", align_corners=False)

    with torch.no_grad():
        out = m(batch)
    # 16 px window, 4 px crop: rows and columns 6..9 (by hand: (16 - 4) / 2 = 6); the mask
    # is what that crop predicts, so any other region fits it worse
    msk = resized(out["aux"][..., 6:10, 6:10]).argmax(1)
    msk[:, :6, :] = 12  # "other": weight 0 in both losses
    msk[:, -3:, :] = 255  # invalid pixels: ignored by both losses
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a Trainer: warns, logs nothing
        loss = m.training_step({**batch, "msk": msk}, 0)
    weight = torch.ones(13)
    weight[12] = 0.0  # "other" is not trained on (FLAIR)

    def ce(logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, msk, weight=weight, ignore_index=255)

    aux = float(ce(resized(out["aux"][..., 6:10, 6:10])))
    main = float(ce(out["logits"]))
    assert float(loss) == pytest.approx(main + 0.5 * aux, rel=1e-6)
    unweighted = float(F.cross_entropy(resized(out["aux"][..., 6:10, 6:10]), msk, ignore_index=255))
    assert abs(unweighted - aux) > 1e-3 * aux  # the class weights matter to this batch
    # the test can tell the crop apart: the whole map, a corner or a one-pixel shift give
    # aux losses farther from this one than the float error of the comparison above
    for wrong in (out["aux"], out["aux"][..., :4, :4], out["aux"][..., 7:11, 7:11]):
        assert abs(float(ce(resized(wrong))) - aux) > 1e-3 * aux


@pytest.mark.parametrize(
    ("aux_weight", "logged"), [(0.5, {"train_loss", "train_aux_loss"}), (0.0, {"train_loss"})]
)
def test_a_real_training_epoch_logs_one_value_per_epoch(aux_weight: float, logged: set) -> None:
    """Through Lightning's fit loop: the loss (and, when weighted in, the aux loss) is
    logged once per epoch under its own name, the loss also in the progress bar."""
    import lightning as L

    torch.manual_seed(0)
    kwargs = {"utae": UTAE, "fusion": {"crop_px": 4}}
    m = FlairModule("utt", kwargs, STATS, augment=False, aux_weight=aux_weight)
    g = torch.Generator().manual_seed(2)
    samples = [
        {
            "img": torch.rand(5, 32, 32, generator=g) * 255,
            "s2": torch.rand(3, 10, 16, 16, generator=g),
            "dates": torch.tensor([10, 100, 200]),
            "pad_mask": torch.zeros(3, dtype=torch.bool),
            "msk": torch.randint(0, 13, (32, 32), generator=g),
        }
        for _ in range(4)
    ]
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no workers, no validation: Lightning's hints
        trainer.fit(m, torch.utils.data.DataLoader(samples, batch_size=2))
    assert set(trainer.logged_metrics) == logged
    assert set(trainer.progress_bar_metrics) == {"train_loss"}
