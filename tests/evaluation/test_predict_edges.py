"""Prediction windows on the first and last rows and columns of square and non-square images.

A 1x1-convolution model gives each pixel logits from that pixel alone, so the blended map
must equal its per-pixel argmax everywhere, edges included; the image's border rows and
columns hold their own extreme values so that a border left unpredicted (or predicted from
the wrong window) shows. The windows handed to ``extra_inputs`` are checked against the
image size by hand: the first at 0, the last flush with the far edge, extents from the
origin and the 0.2 m pixel size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from flair_pipeline.evaluation.predict import predict_map
from flair_pipeline.evaluation.windows import PatchWindow
from flair_pipeline.io import write_geotiff

X0, Y0, RES = 702_345.6, 6_601_234.4, 0.2
MEAN, STD = [110.0, 100.0, 90.0, 120.0], [40.0, 35.0, 30.0, 45.0]
PATCH = 16


class PixelModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(4, 13, 1)
        with torch.no_grad():
            self.conv.weight.mul_(4.0)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.conv(batch["img"])}


def _image(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(h * 1000 + w)
    img = rng.integers(60, 196, (4, h, w)).astype(np.uint8)
    img[:, 0, :], img[:, -1, :] = 0, 255  # borders far from the middle values
    img[:, :, 0] = np.array([255, 0, 255, 0], np.uint8)[:, None]
    img[:, :, -1] = np.array([0, 255, 0, 255], np.uint8)[:, None]
    return img


def _argmax(model: PixelModel, img: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(img).float()[None]
    x = (x - torch.tensor(MEAN).view(1, -1, 1, 1)) / torch.tensor(STD).view(1, -1, 1, 1)
    with torch.no_grad():
        return (model({"img": x})["logits"][0].argmax(0) + 1).numpy().astype(np.uint8)


SHAPES = [(17, 40), (40, 17), (33, 33), (12, 30)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_map_is_exact_on_every_edge(tmp_path: Path, shape: tuple[int, int]) -> None:
    h, w = shape
    img = _image(h, w)
    src = write_geotiff(tmp_path / "o.tif", img, from_origin(X0, Y0, RES, RES), "EPSG:2154")
    model = PixelModel()
    windows: list[PatchWindow] = []

    def extra(wins: list[PatchWindow]) -> dict[str, torch.Tensor]:
        windows.extend(wins)
        return {}

    predict_map(
        model,
        src,
        tmp_path / "m.tif",
        patch_size=PATCH,
        overlap=0.25,
        batch_size=3,
        mean=MEAN,
        std=STD,
        device="cpu",
        block_size=16,
        stripe_width=32,
        extra_inputs=extra,
    )
    with rasterio.open(tmp_path / "m.tif") as out:
        got = out.read(1)
    expected = _argmax(model, img)
    for name, sl in {
        "first row": np.s_[0],
        "last row": np.s_[-1],
        "first column": np.s_[:, 0],
        "last column": np.s_[:, -1],
    }.items():
        np.testing.assert_array_equal(got[sl], expected[sl], err_msg=f"{name} of {h}x{w}")
    np.testing.assert_array_equal(got, expected)

    # windows: stride 12 (25 % of 16); on an axis shorter than the patch a single window at 0
    def axis(n: int) -> list[int]:
        if n <= PATCH:
            return [0]
        return sorted({*range(0, n - PATCH, 12), n - PATCH})

    assert sorted({(v.row, v.col) for v in windows}) == [(r, c) for r in axis(h) for c in axis(w)]
    last = max(windows, key=lambda v: (v.row, v.col))
    r, c = axis(h)[-1], axis(w)[-1]
    assert (last.row, last.col, last.size) == (r, c, PATCH)
    assert last.bounds == pytest.approx(
        (X0 + c * RES, Y0 - (r + PATCH) * RES, X0 + (c + PATCH) * RES, Y0 - r * RES)
    )
