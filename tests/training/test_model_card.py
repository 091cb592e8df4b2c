"""The model card: written in every checkpoint, read back typed, older checkpoints upgraded,
and prediction refusing an image that does not match it (issue 28 §3).

Expected values are spelled by hand from the inputs each test writes.
"""

from __future__ import annotations

from pathlib import Path

import lightning
import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from flair_pipeline.config import S2Preprocessing, config_from_dict
from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.predict_config import PredictConfig
from flair_pipeline.training.checkpoint import load_inference, read_card
from flair_pipeline.training.model_card import ModelCard, card_for_training
from flair_pipeline.training.module import FlairModule

STATS = {"mean": [100.0, 90.0, 80.0, 70.0, 10.0], "std": [50.0, 40.0, 30.0, 20.0, 5.0]}
S2 = {"s2_mean": [0.1] * 10, "s2_std": [0.05] * 10}


def _cfg() -> object:
    return config_from_dict(
        {
            "train": {"downsample": 2, "utae_width": 8, "modality_dropout": 0.3},
            "sampling": {"resolution": 0.25, "elevation_scale": 4.0},
            "sentinel2": {"window": 12, "max_size": 60},
        }
    )


def _save(module: FlairModule, path: Path, *, card: bool) -> Path:
    """A checkpoint in Lightning's layout; `card` False gives today's main's format."""
    ckpt = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    if card:
        module.on_save_checkpoint(ckpt)  # what Lightning calls when it saves
    torch.save(ckpt, path)
    return path


def test_card_of_a_training_run_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    cfg = _cfg()
    card = card_for_training(cfg, "utt", {**STATS, **S2}, patch_px=64)  # type: ignore[arg-type]
    # by hand: 64 px of 0.25 m = 16 m on the ground -> U-T&T crop round(16 / 10) = 2 px
    assert card.patch.patch_px == 64 and card.patch.model_px == 32
    assert card.patch.resolution_m == 0.25 and card.patch.downsample == 2
    assert card.inputs.aerial_channels == ("R", "G", "B", "NIR", "elevation")
    assert card.inputs.elevation_scale == 4.0
    assert card.inputs.sentinel2_bands[0] == "B02" and len(card.inputs.sentinel2_bands) == 10
    assert card.architecture["fusion"] == {"modality_dropout": 0.3, "crop_px": 2}
    assert card.architecture["in_channels"] == 5 and card.architecture["classes"] == 13
    assert card.sentinel2 == S2Preprocessing(window=12)
    assert len(card.classes) == 13 and card.classes[-1] == "other"
    assert card.merged_into_other[0] == "swimming pool" and len(card.merged_into_other) == 7
    assert card.upgraded == ()

    module = FlairModule.from_config(cfg, card)  # type: ignore[arg-type]
    path = _save(module, tmp_path / "new.ckpt", card=True)
    assert torch.load(path, weights_only=True)["model_card"]["card_version"] == 1
    assert read_card(path) == card
    assert ModelCard.model_validate_json(card.model_dump_json()) == card
    inf = load_inference(path)
    assert inf.card == card
    for k, v in module.state_dict().items():
        assert torch.equal(inf.module.state_dict()[k], v), k


def test_upgrader_reads_a_checkpoint_of_todays_main_and_older_ones(tmp_path: Path) -> None:
    # today's main: the hyper-parameters FlairModule saves, and no card
    module = FlairModule(
        "unet",
        {"in_channels": 5},
        STATS,
        patch_size=512,
        resolution=0.2,
        downsample=1,
        elevation_scale=5.0,
        encoder_weights=None,
    )
    path = _save(module, tmp_path / "main.ckpt", card=False)
    card = read_card(path)
    assert card.model == "unet" and card.architecture == {"in_channels": 5}
    assert card.normalisation.mean == (100.0, 90.0, 80.0, 70.0, 10.0)
    assert card.normalisation.s2_mean is None
    assert (card.patch.patch_px, card.patch.resolution_m, card.patch.downsample) == (512, 0.2, 1)
    assert card.upgraded == ("upgraded from hyper-parameters to card version 1",)
    inf = load_inference(path)
    assert inf.card.patch.model_px == 512
    # resuming from it: the card wins over the config (downsample 2, 0.25 m there) and the
    # upgrade stays recorded in the checkpoints the resumed run writes
    resumed = FlairModule.from_config(_cfg(), card, resumed=True)  # type: ignore[arg-type]
    assert (resumed.hparams["downsample"], resumed.hparams["resolution"]) == (1, 0.2)
    saved: dict[str, object] = {}
    resumed.on_save_checkpoint(saved)
    assert saved["model_card"]["upgraded"] == list(card.upgraded)  # type: ignore[index]

    # older still: no downsample nor resolution recorded -> the documented values, noted
    ckpt = torch.load(path, weights_only=True)
    del ckpt["hyper_parameters"]["downsample"], ckpt["hyper_parameters"]["resolution"]
    torch.save(ckpt, tmp_path / "older.ckpt")
    older = read_card(tmp_path / "older.ckpt")
    assert (older.patch.resolution_m, older.patch.downsample) == (0.2, 1)
    assert older.upgraded[1:] == (
        "resolution absent from the checkpoint: 0.2 assumed",
        "downsample absent from the checkpoint: 1 assumed",
    )


def test_unreadable_cards_are_refused_in_one_line(tmp_path: Path) -> None:
    module = FlairModule("unet", {"in_channels": 5}, STATS, encoder_weights=None)
    path = _save(module, tmp_path / "m.ckpt", card=True)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_card"]["card_version"] = 9
    torch.save(ckpt, tmp_path / "future.ckpt")
    with pytest.raises(InputError, match=r"future\.ckpt: model card version 9") as e:
        read_card(tmp_path / "future.ckpt")
    assert "\n" not in str(e.value)
    del ckpt["model_card"]
    del ckpt["hyper_parameters"]["stats"]
    torch.save(ckpt, tmp_path / "nostats.ckpt")
    with pytest.raises(InputError, match=r"nostats\.ckpt: hyper-parameters lack stats"):
        read_card(tmp_path / "nostats.ckpt")


def _tif(path: Path, bands: int, res: float, side: int = 32) -> Path:
    data = np.full((bands, side, side), 120, dtype=np.uint8)
    profile = {"driver": "GTiff", "height": side, "width": side, "count": bands}
    profile |= {"dtype": "uint8", "crs": "EPSG:2154"}
    with rasterio.open(
        path, "w", transform=from_origin(700000, 6600000, res, res), **profile
    ) as dst:
        dst.write(data)
    return path


def _predictor(model: str, stats: dict[str, list[float]], **kw: object) -> object:
    card = card_for_training(_cfg(), model, stats, patch_px=32, **kw)  # type: ignore[arg-type]
    module = FlairModule.for_inference(card)
    return PredictConfig.for_card(card, batch_size=1, device="cpu").build(module.model)


@pytest.mark.parametrize(
    ("model", "bands", "res", "dem", "message"),
    [
        (
            "unet",
            5,
            0.5,
            False,
            r"good\.tif: 0\.5 x 0\.5 m pixels, but the unet model card was "
            r"trained on 0\.25 m pixels: resample the image to 0\.25 m",
        ),
        (
            "unet",
            4,
            0.25,
            False,
            r"good\.tif: 4 band\(s\), but the unet model card reads 5 "
            r"channels \(R, G, B, NIR, elevation\); missing elevation: give --dsm and --dtm",
        ),
        (
            "unet",
            3,
            0.25,
            True,
            r"good\.tif: 3 band\(s\), but the unet model card reads 5 "
            r"channels \(R, G, B, NIR, elevation\); missing NIR$",
        ),
        (
            "utt",
            5,
            0.25,
            False,
            r"good\.tif: the utt model card reads Sentinel-2 windows \(10 "
            r"bands\) besides the image, none were given",
        ),
    ],
)
def test_prediction_refuses_an_image_that_does_not_match_the_card(
    tmp_path: Path, model: str, bands: int, res: float, dem: bool, message: str
) -> None:
    image = _tif(tmp_path / "good.tif", bands, res)
    dsm = _tif(tmp_path / "dsm.tif", 1, res) if dem else None
    dtm = _tif(tmp_path / "dtm.tif", 1, res) if dem else None
    predictor = _predictor(model, {**STATS, **S2})
    out = tmp_path / "map.tif"
    with pytest.raises(InputError, match=message) as e:
        predictor.map(image, out, dsm=dsm, dtm=dtm)  # type: ignore[attr-defined]
    assert "\n" not in str(e.value)
    assert not out.exists()


def test_prediction_accepts_an_image_that_matches_the_card(tmp_path: Path) -> None:
    image = _tif(tmp_path / "good.tif", 5, 0.25)
    report = _predictor("unet", STATS).map(image, tmp_path / "map.tif")  # type: ignore[attr-defined]
    assert (report.height, report.width) == (32, 32)


def test_cli_predict_refuses_an_image_at_another_resolution_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flair_pipeline.cli import main

    module = FlairModule("unet", {"in_channels": 4}, {"mean": [1.0] * 4, "std": [2.0] * 4})
    ckpt = _save(module, tmp_path / "unet.ckpt", card=False)  # today's main's format: 0.2 m
    image = _tif(tmp_path / "half_metre.tif", 4, 0.5)
    out = tmp_path / "m.tif"
    rc = main(["predict", "--checkpoint", str(ckpt), "--image", str(image), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and not out.exists()
    assert err == (
        f"error: {image}: 0.5 x 0.5 m pixels, but the unet model card was trained on 0.2 m "
        "pixels: resample the image to 0.2 m (gdalwarp -tr 0.2 0.2 -r average)"
    )
