"""The training step learns a tiny task from its labels, and nothing from shuffled labels.

Replaces "the loss goes down" (which a model memorising noise also passes): a U-Net is
trained with ``FlairModule.training_step`` (augmentation on, class weights, AdamW as
configured) on 32 x 32 px images whose four quadrants each take one of four classes, a
class being a colour plus noise. The control trains the same way on the same images with
their masks shuffled between images. Validation mIoU is computed here with numpy on the
argmax of held-out images; the chance level is that of a uniform random prediction.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from flair_pipeline.training.module import FlairModule

SIDE, N_TRAIN, N_VAL, BATCH, STEPS, LR = 32, 16, 8, 8, 32, 3e-3  # 16 epochs
#: R, G, B, NIR, elevation of the four classes (0..3), far apart against the noise (σ 25)
COLOURS = torch.tensor(
    [[200, 40, 40, 90, 10], [40, 200, 40, 120, 30], [40, 40, 200, 60, 50], [200, 200, 40, 200, 70]],
    dtype=torch.float32,
)


def images(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 5, 32, 32) float 0..255 images and their (n, 32, 32) long masks."""
    quadrants = torch.randint(0, 4, (n, 2, 2), generator=g)
    msk = quadrants.repeat_interleave(SIDE // 2, 1).repeat_interleave(SIDE // 2, 2)
    img = COLOURS[msk].permute(0, 3, 1, 2) + torch.randn(n, 5, SIDE, SIDE, generator=g) * 25
    return img.clamp(0, 255), msk


def miou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean IoU over the classes present in truth or prediction."""
    ious = []
    for c in np.union1d(np.unique(pred), np.unique(truth)):
        inter = np.sum((pred == c) & (truth == c))
        union = np.sum((pred == c) | (truth == c))
        ious.append(inter / union)
    return float(np.mean(ious))


def val_miou_after_training(shuffle: bool) -> tuple[float, float]:
    """(validation mIoU of the trained model, that of a uniform random prediction)."""
    g = torch.Generator().manual_seed(0)
    img, msk = images(N_TRAIN, g)
    vimg, vmsk = images(N_VAL, g)
    if shuffle:  # same images, same class shares, masks of other images
        msk = msk[torch.roll(torch.arange(N_TRAIN), 1)]
    torch.manual_seed(0)
    stats = {"mean": COLOURS.mean(0).tolist(), "std": [80.0] * 5}
    m = FlairModule("unet", {}, stats, optimizer="adamw", lr=LR, scheduler="none")
    opt = m.configure_optimizers()
    m.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a Trainer: warns, logs nothing
        for step in range(STEPS):
            i = torch.arange(step * BATCH, (step + 1) * BATCH) % N_TRAIN
            loss = m.training_step({"img": img[i], "msk": msk[i]}, step)
            opt.zero_grad()
            loss.backward()
            opt.step()
    m.eval()
    with torch.no_grad():
        pred = m({"img": vimg})["logits"].argmax(1).numpy()
    truth = vmsk.numpy()
    chance = miou(np.random.default_rng(0).integers(0, 4, truth.shape), truth)
    return miou(pred, truth), chance


def test_learns_real_labels_and_not_shuffled_ones() -> None:
    real, chance = val_miou_after_training(shuffle=False)
    control, _ = val_miou_after_training(shuffle=True)
    assert 0.1 < chance < 0.25  # 4 classes: about 1/7
    assert real > 0.8, f"val mIoU {real:.3f} on real labels (chance {chance:.3f})"
    assert control < chance + 0.15, f"val mIoU {control:.3f} on shuffled labels"
