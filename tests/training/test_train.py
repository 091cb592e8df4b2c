"""Training end to end on CPU: each baseline learns, resume continues, bad input is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import rasterio
import torch
from click.testing import CliRunner

from flair_pipeline.cli import cli
from flair_pipeline.errors import InputError
from flair_pipeline.layout import ModelFiles
from flair_pipeline.training.checkpoint import load_inference, read_card, read_hparams
from flair_pipeline.training.module import NonFiniteLossError
from flair_pipeline.training.tracking import epoch_series
from flair_pipeline.training.train import train_model
from tests.training.conftest import config


@pytest.mark.parametrize(
    ("model", "extra"),
    [("unet", ()), ("unet-meta", ()), ("utt", ("sentinel2.filter_clouds=true",))],
)
def test_model_trains_and_loss_goes_down(tiny_dataset, tmp_path: Path, model, extra) -> None:
    dataset, params = tiny_dataset
    cfg = config(params, "train.epochs=4", *extra)
    report = train_model(dataset, tmp_path / model, cfg, model, progress=False)
    series = epoch_series(ModelFiles(tmp_path / model), "train_loss")  # DVCLive's TSV
    assert list(series) == [0, 1, 2, 3]
    losses = list(series.values())
    assert losses[-1] < losses[0], losses
    assert 0.0 <= report.best_val_miou <= 1.0
    assert Path(report.best_checkpoint).is_file() and Path(report.last_checkpoint).is_file()
    assert Path(report.curves_png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / model / "report.json").is_file()
    assert report.images_per_s > 0
    for ckpt in (report.best_checkpoint, report.last_checkpoint):  # issue 30: no allow-list needed
        assert torch.serialization.get_unsafe_globals_in_checkpoint(ckpt) == [], ckpt
    inf = load_inference(report.best_checkpoint)
    assert inf.name == model and inf.in_channels == 5 and inf.card.patch.model_px == 64
    for ckpt in (report.best_checkpoint, report.last_checkpoint):  # the card is written, typed
        written = torch.load(ckpt, weights_only=True)["model_card"]
        assert written["card_version"] == 1 and written["upgraded"] == [], ckpt
        assert read_card(ckpt) == inf.card
    hp = read_hparams(report.best_checkpoint)
    assert len(hp["stats"]["mean"]) == 5
    if model == "utt":
        assert len(hp["stats"]["s2_mean"]) == 10 and hp["s2_options"]["filter_clouds"]


def test_resume_continues_from_the_saved_step(tiny_dataset, tmp_path: Path) -> None:
    dataset, params = tiny_dataset
    out = tmp_path / "unet"
    first = train_model(dataset, out, config(params, "train.epochs=1"), "unet", progress=False)
    assert first.steps == 3  # 12 train patches / batch 4
    again = train_model(
        dataset, out, config(params, "train.epochs=2"), "unet", resume=True, progress=False
    )
    assert again.steps == 6 and again.epochs == 2
    # DVCLive's rows: epoch 0 logged by the first run, kept; epoch 1 by the resumed one
    assert list(epoch_series(ModelFiles(out), "val_miou")) == [0, 1]


def test_resume_refuses_a_checkpoint_of_another_model(tiny_dataset, tmp_path: Path) -> None:
    dataset, params = tiny_dataset
    out = tmp_path / "m"
    train_model(dataset, out, config(params, "train.epochs=1"), "unet", progress=False)
    with pytest.raises(InputError, match=r"last\.ckpt: holds a 'unet' model, not 'unet-meta'"):
        train_model(dataset, out, config(params), "unet-meta", resume=True, progress=False)


def test_nan_loss_stops_with_a_clear_message(tiny_dataset, tmp_path: Path) -> None:
    dataset, params = tiny_dataset
    cfg = config(params, "train.lr=1e30", "train.optimizer=sgd", "train.epochs=2")
    with pytest.raises(NonFiniteLossError, match=r"loss is (nan|inf)"):
        train_model(dataset, tmp_path / "nan", cfg, "unet", progress=False)
    last = tmp_path / "nan" / "checkpoints" / "last.ckpt"
    if last.is_file():  # whatever was saved before the NaN is a usable model
        state = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_bad_inputs_are_named(tiny_dataset, tmp_path: Path) -> None:
    dataset, params = tiny_dataset
    copy = tmp_path / "dataset"
    shutil.copytree(dataset, copy)
    # U-T&T without Sentinel-2 windows: the patch is named
    (copy / "metadata" / "centroids_sp_to_patch.json").unlink()
    with pytest.raises(InputError, match=r"patch \d{13} .*no Sentinel-2 window"):
        train_model(copy, tmp_path / "o1", config(params), "utt", progress=False)
    # a label code outside 1..19: the file is named
    msk = sorted((copy / "labels").rglob("MSK_*.tif"))[0]
    with rasterio.open(msk, "r+") as dst:
        arr = dst.read(1)
        arr[0, 0] = 20
        dst.write(arr, 1)
    cfg = config(params, "train.epochs=1")
    with pytest.raises(
        InputError, match=rf"{msk.name}: label codes must be 0\.\.19 .*, found \[20\]"
    ):
        train_model(copy, tmp_path / "o2", cfg, "unet", progress=False)
    # no train patches
    splits = copy / "metadata" / "splits.csv"
    splits.write_text(splits.read_text().replace(",train,", ",test,"))
    with pytest.raises(InputError, match="no train patches"):
        train_model(copy, tmp_path / "o3", cfg, "unet", progress=False)


def test_cli_train(tiny_dataset, tmp_path: Path) -> None:
    _, params = tiny_dataset
    out = tmp_path / "cli"
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "--model",
            "unet",
            "--config",
            str(params),
            "--out",
            str(out),
            "--set",
            "train.epochs=1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "best validation mIoU" in res.output
    assert (out / "checkpoints" / "best.ckpt").is_file()
    assert (out / "logs" / "metrics.csv").is_file() and any((out / "tb").rglob("events.*"))


@pytest.mark.gpu
def test_bf16_channels_last_on_gpu(tiny_dataset, tmp_path: Path) -> None:
    dataset, params = tiny_dataset
    cfg = config(params, "train.epochs=1", "train.precision=bf16-mixed")
    report = train_model(dataset, tmp_path / "gpu", cfg, "utt", progress=False)
    assert report.device == "cuda" and report.steps == 3
    inf = load_inference(report.best_checkpoint, device="cuda")
    assert inf.module.hparams.channels_last
