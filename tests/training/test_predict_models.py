"""`flair-pipeline predict` with U-T&T (Sentinel-2 from the configured provider) and unet-meta."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from click.testing import CliRunner

from flair_pipeline.cli import cli
from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.extra_inputs import S2Windows
from flair_pipeline.evaluation.windows import patch_window
from flair_pipeline.sentinel2.stac import StacProvider
from flair_pipeline.training.checkpoint import load_inference
from flair_pipeline.training.train import train_model
from tests.training.conftest import config


@pytest.fixture(scope="module")
def utt_ckpt(tiny_dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dataset, params = tiny_dataset
    out = tmp_path_factory.mktemp("utt")
    cfg = config(params, "train.epochs=1", "sentinel2.monthly_average=true")
    return Path(train_model(dataset, out, cfg, "utt", progress=False).best_checkpoint)


def _domain(params: Path) -> tuple[Path, int]:
    """The first domain folder of the tiny world, and its year."""
    raw = Path(yaml.safe_load(params.read_text())["paths"]["raw"])
    d = sorted((raw / "domains").iterdir())[0]
    return d, int(json.loads((d / "domain.json").read_text())["year"])


def test_predict_utt_fetches_sentinel2_once_per_map(tiny_dataset, utt_ckpt, tmp_path) -> None:
    _, params = tiny_dataset
    domain, year = _domain(params)
    out = tmp_path / "map.tif"
    args = [
        "predict",
        "--checkpoint",
        str(utt_ckpt),
        "--image",
        str(domain / "ortho"),
        "--dsm",
        str(domain / "dsm.tif"),
        "--dtm",
        str(domain / "dtm.tif"),
        "--out",
        str(out),
        "--config",
        str(params),
    ]
    res = CliRunner().invoke(cli, [*args, "--year", str(year)])
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as m, rasterio.open(sorted((domain / "ortho").glob("*.tif"))[0]) as t:
        codes = m.read(1)
        assert m.crs == t.crs and m.res == t.res
        assert codes.min() >= 1 and codes.max() <= 13
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1 and "needs --year" in str(res.exception)


def test_s2_windows_are_the_training_windows(tiny_dataset, utt_ckpt) -> None:
    """A window centred where training cut one gives the same normalised series."""
    _, params = tiny_dataset
    domain, year = _domain(params)
    inf = load_inference(utt_ckpt)
    raw = domain.parent.parent
    provider = StacProvider(catalog=raw / "sentinel2" / "catalog.json")
    with rasterio.open(sorted((domain / "ortho").glob("*.tif"))[0]) as src:
        b = src.bounds
        transform = src.transform
    source = S2Windows(inf, (b.left, b.bottom, b.right, b.top), provider, year)
    pw = patch_window(0, 0, 64, transform)
    batch = source([pw, patch_window(64, 128, 64, transform)])
    assert batch["s2"].shape[:3] == (2, batch["dates"].shape[1], 10)
    assert batch["s2"].shape[-2:] == (40, 40)
    assert torch.isfinite(batch["s2"]).all() and not batch["pad_mask"].all()
    fifteenths = {dt.date(year, m, 15).timetuple().tm_yday for m in range(1, 13)}
    valid = batch["dates"][~batch["pad_mask"]].tolist()
    assert valid and set(valid) <= fifteenths  # monthly averages, as the model was trained
    with pytest.raises(InputError, match=r"nope\.json: file not found"):
        S2Windows(
            inf, (b.left, b.bottom, b.right, b.top), StacProvider(catalog=raw / "nope.json"), year
        )
    assert np.isfinite(inf.card.normalisation.s2_mean).all()


def test_predict_unet_meta(tiny_dataset, tmp_path) -> None:
    dataset, params = tiny_dataset
    ckpt = train_model(
        dataset, tmp_path / "m", config(params, "train.epochs=1"), "unet-meta", progress=False
    ).best_checkpoint
    domain, _ = _domain(params)
    out = tmp_path / "meta.tif"
    res = CliRunner().invoke(
        cli,
        [
            "predict",
            "--checkpoint",
            ckpt,
            "--image",
            str(domain / "ortho"),
            "--dsm",
            str(domain / "dsm.tif"),
            "--dtm",
            str(domain / "dtm.tif"),
            "--out",
            str(out),
            "--camera",
            "UCE-M3-f120-s06",
            "--date",
            "2021-06-01",
            "--time",
            "11:00:00",
        ],
    )
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as m:
        assert m.count == 1 and m.dtypes[0] == "uint8"
