"""Training and prediction normalise one patch identically: same stats, band order, floats.

The statistics travel in the checkpoint (FlairModule buffers and hyper-parameters);
training normalises in ``FlairModule.prepare``, large-area prediction in ``predict_map``
with the checkpoint's ``mean``/``std`` as ``load_inference`` gives them. Both are checked
against ``(pixel - mean[band]) / std[band]`` computed here with numpy on the raw GeoTIFF.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import rasterio
import torch
from affine import Affine
from torch import nn

from flair_pipeline.evaluation.predict import predict_map
from flair_pipeline.training.checkpoint import load_inference
from flair_pipeline.training.module import FlairModule
from flair_pipeline.training.records import PatchRecord
from flair_pipeline.training.samples import PatchDataset, collate

# per-band statistics far apart, so a swapped or reversed band order cannot pass
MEAN = [10.5, 60.25, 110.0, 160.75, 210.0]
STD = [2.0, 4.5, 8.0, 16.25, 32.0]
SIDE = 64


class Spy(nn.Module):
    """The checkpoint's model, keeping every normalised ``img`` batch it is given."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.seen.append(batch["img"].detach().cpu().clone())
        return self.inner(batch)


def write_patch(path: Path) -> np.ndarray:
    """A 5-band uint8 64 x 64 IMG (R, G, B, NIR, elevation), 0.2 m, Lambert-93."""
    rng = np.random.default_rng(3)
    base = np.array([20, 70, 120, 170, 220])[:, None, None]  # each band near its own mean
    arr = np.clip(base + rng.integers(-20, 21, (5, SIDE, SIDE)), 0, 255).astype(np.uint8)
    profile = dict(
        driver="GTiff",
        width=SIDE,
        height=SIDE,
        count=5,
        dtype="uint8",
        crs="EPSG:2154",
        transform=Affine(0.2, 0, 700000.0, 0, -0.2, 6600000.0),
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
    return arr


def save_checkpoint(module: FlairModule, path: Path) -> None:
    """The two things ``load_inference`` reads from a Lightning checkpoint."""
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": L.__version__,
        },
        path,
    )


def test_one_patch_is_normalised_the_same_in_training_and_prediction(tmp_path: Path) -> None:
    img = tmp_path / "IMG_1.tif"
    raw = write_patch(img)
    expected = (raw.astype(np.float32) - np.float32(MEAN)[:, None, None]) / np.float32(STD)[
        :, None, None
    ]
    torch.manual_seed(0)
    stats = {"mean": MEAN, "std": STD}
    module = FlairModule("unet", {}, stats, patch_size=SIDE, augment=False).eval()

    # training: the loader's sample, then the module's own normalisation
    rec = PatchRecord("1", "D001_2020", "Z1", "train", img, None)
    batch = collate([PatchDataset([rec], with_mask=False)[0]])
    trained = module.prepare(batch)["img"][0].numpy()

    # prediction: the checkpoint's statistics, one window covering the whole patch
    ckpt = tmp_path / "m.ckpt"
    save_checkpoint(module, ckpt)
    inf = load_inference(ckpt)
    norm = inf.card.normalisation
    assert list(norm.mean) == MEAN and list(norm.std) == STD and inf.card.patch.model_px == SIDE
    spy = Spy(inf.model)
    predict_map(
        spy,
        img,
        tmp_path / "map.tif",
        patch_size=inf.card.patch.model_px,
        overlap=0.0,
        batch_size=1,
        mean=norm.mean,
        std=norm.std,
        device="cpu",
    )
    assert len(spy.seen) == 1 and spy.seen[0].shape == (1, 5, SIDE, SIDE)
    predicted = spy.seen[0][0].numpy()

    np.testing.assert_allclose(trained, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(predicted, expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(trained, predicted)  # the same float32 result, bit for bit
