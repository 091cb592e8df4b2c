"""The FLAIR-2 recipe on a release as it unpacks: import-flair, train, evaluate, by the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from click.testing import CliRunner

from flair_pipeline.cli import cli
from flair_pipeline.evaluation.checkpoint_eval import evaluate_checkpoint
from flair_pipeline.nomenclature import merge_to_13
from flair_pipeline.training.checkpoint import read_hparams
from tests.flair2_release import make_flair2_release
from tests.training.conftest import tiny_params


@pytest.fixture(scope="module")
def imported(real_flair_module: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("flair2")
    release = make_flair2_release(real_flair_module, root / "FLAIR2")
    manifest = root / "manifest.csv"
    res = CliRunner().invoke(cli, ["import-flair", str(release.root), "--out", str(manifest)])
    assert res.exit_code == 0, res.output
    assert "0 problem(s)" in res.output
    params = root / "params.yaml"
    p = tiny_params(root / "raw", root)
    p["train"].update(epochs=1, batch_size=2, downsample=8, norm_samples=3)
    params.write_text(yaml.safe_dump(p))
    return release, manifest, params


@pytest.fixture(scope="module")
def real_flair_module() -> Path:
    from tests.conftest import REAL_FLAIR

    if not REAL_FLAIR.is_dir():
        pytest.skip(f"real FLAIR samples not found at {REAL_FLAIR} (../shared is absent)")
    return REAL_FLAIR


@pytest.mark.parametrize("model", ["utt", "unet-meta"])
def test_train_and_evaluate_on_an_imported_release(imported, tmp_path: Path, model: str) -> None:
    release, manifest, params = imported
    out = tmp_path / model
    args = [
        "train",
        "--model",
        model,
        "--data",
        str(manifest),
        "--out",
        str(out),
        "--config",
        str(params),
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    best = out / "checkpoints" / "best.ckpt"
    assert best.is_file()
    hp = read_hparams(best)
    if model == "unet-meta":  # the release's camera strings and years made the vocabulary
        meta = json.loads((release.root / "flair-2_aerial_metadata.json").read_text())
        cams = {v["camera"] for v in meta.values()}
        train_cams = {release.facts[p]["camera"] for p in ("034217", "036294", "050549")}
        assert set(hp["meta_encoding"]["cameras"]) == train_cams and train_cams < cams
        # predict maps a release IMG with the release's own time format
        img = next(release.root.rglob("IMG_084558.tif"))
        m = meta["IMG_084558"]
        res = CliRunner().invoke(
            cli,
            [
                "predict",
                "--checkpoint",
                str(best),
                "--image",
                str(img),
                "--out",
                str(tmp_path / "map.tif"),
                "--camera",
                m["camera"],
                "--date",
                m["date"],
                "--time",
                m["time"],
                "--device",
                "cpu",
                "--config",
                str(params),
            ],
        )
        assert res.exit_code == 0, res.output
        with rasterio.open(tmp_path / "map.tif") as mp, rasterio.open(img) as src:
            assert (mp.transform, mp.shape, mp.crs) == (src.transform, src.shape, src.crs)
            assert set(np.unique(mp.read(1)).tolist()) <= set(range(1, 14))
    else:
        assert len(hp["stats"]["s2_mean"]) == 10

    report = evaluate_checkpoint(best, manifest, tmp_path / "eval", split="test")
    pred = tmp_path / "eval" / "predictions" / "D036_2020" / "PRED_084558.tif"
    label = next(release.root.rglob("MSK_084558.tif"))
    with rasterio.open(pred) as p, rasterio.open(label) as lab:
        codes, truth = p.read(1), merge_to_13(lab.read(1))
        assert p.transform == lab.transform
    # FLAIR's metric by hand on the one test patch: mean IoU over classes 0..11 ("other"
    # excluded) present in truth or prediction
    t, c = truth.astype(int), codes.astype(int) - 1
    ious = [
        ((t == k) & (c == k)).sum() / ((t == k) | (c == k)).sum()
        for k in range(12)
        if ((t == k) | (c == k)).any()
    ]
    assert report.scores.miou == pytest.approx(float(np.mean(ious)), abs=1e-9)
    res = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "--predictions",
            str(tmp_path / "eval" / "predictions"),
            "--labels",
            str(release.root / "flair_2_labels_test"),
            "--out",
            str(tmp_path / "m.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "m.json").read_text())["miou"] == pytest.approx(
        report.scores.miou
    )
