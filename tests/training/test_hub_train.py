"""Issue 24 part 2 done-when: each FLAIR-HUB model family trains one epoch on CPU and is scored.

A release with every modality is built from the five real FLAIR patches
(:mod:`tests.hub_release`), indexed with ``index_hub`` into a manifest, and each family
(IGN's README "Baseline results": LC-A aerial only; LC-L aerial + DEM + SPOT + S2 + S1 asc +
S1 desc; LPIS-I SPOT + S2 + S1 for crop type; COSIA + LPIS multi-task) trains one epoch at
128 px (downsample 4) with a resnet18 encoder and small U-TAEs, to checkpoints that
``evaluate_hub`` scores on the test split. The confusion matrix of each task is checked
against the label histogram of the test patch computed here with numpy on the written
label (nearest downsample: every 4th pixel; values above the class count not scored).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from flair_pipeline.cli import cli
from flair_pipeline.evaluation.hub_eval import evaluate_hub
from flair_pipeline.sources.flair_hub import index_hub, read_hub_manifest, write_hub_manifest
from flair_pipeline.training.hub_config import HubTrainConfig
from flair_pipeline.training.hub_train import train_hub
from tests.hub_release import HubRelease, build_hub_release

S1 = ("SENTINEL1-ASC_TS", "SENTINEL1-DESC_TS")
COSIA, LPIS = "AERIAL_LABEL-COSIA", "ALL_LABEL-LPIS"
FAMILIES = {
    "lc-a": {"inputs": ["AERIAL_RGBI"], "tasks": {COSIA: {}}},
    "lc-l": {
        "inputs": ["AERIAL_RGBI", "DEM_ELEV", "SPOT_RGBI", "SENTINEL2_TS", *S1],
        "tasks": {COSIA: {}},
        "aux_loss": ["SENTINEL2_TS"],
        "modality_dropout": {"DEM_ELEV": 0.3},
    },
    "lpis-i": {"inputs": ["SPOT_RGBI", "SENTINEL2_TS", *S1], "tasks": {LPIS: {}}},
    "multi": {"inputs": ["AERIAL_RGBI", "SENTINEL2_TS"], "tasks": {COSIA: {}, LPIS: {}}},
}
SMALL = {
    "encoder": "resnet18",
    "utae": {
        "encoder_widths": [16, 16],
        "decoder_widths": [16, 16],
        "out_conv": [16, 19],
        "d_model": 32,
        "n_head": 4,
    },
    "epochs": 1,
    "batch_size": 2,
    "downsample": 4,
    "num_workers": 0,
}


@pytest.fixture(scope="module")
def trained(real_flair: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The release, its manifest, and each family trained one epoch and scored on test."""
    tmp = tmp_path_factory.mktemp("hubtrain")
    rel = build_hub_release(real_flair, tmp / "FLAIR-HUB")
    manifest = write_hub_manifest(index_hub(rel.root), tmp / "hub.csv")
    out: dict = {"rel": rel, "manifest": manifest, "tmp": tmp}
    for name, fam in FAMILIES.items():
        cfg = HubTrainConfig.model_validate(SMALL | fam)
        report = train_hub(manifest, cfg, tmp / name, progress=False)
        scores = evaluate_hub(report.best_checkpoint, read_hub_manifest(manifest), "test")
        out[name] = {"config": cfg, "report": report, "scores": scores}
    return out


def _histogram(rel: HubRelease, task: str, k: int) -> np.ndarray:
    """Pixel counts per class of the test patch's label, as scored (every 4th pixel)."""
    pid = str(rel.ids[rel.splits.index("test")])
    lab = rel.arrays[pid][task][0][::4, ::4].astype(np.int64)
    counts = np.zeros(k, np.int64)
    for value in lab.ravel():
        if value < k:
            counts[value] += 1
    return counts


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_trains_one_epoch_to_a_scored_checkpoint(trained: dict, name: str) -> None:
    rel, fam = trained["rel"], trained[name]
    report, scores = fam["report"], fam["scores"]
    assert report.epochs == 1 and report.steps == 1  # 3 train patches, batch 2, drop_last
    assert (report.train_patches, report.val_patches) == (3, 1)
    assert Path(report.best_checkpoint).name == "best.ckpt"
    assert (Path(report.best_checkpoint).parent / "last.ckpt").is_file()
    folder = trained["tmp"] / name
    live = json.loads((folder / "dvclive" / "metrics.json").read_text())
    assert {"train_loss", "val_loss", "val_miou"} <= set(live)
    assert json.loads((folder / "report.json").read_text())["best_checkpoint"] == str(
        report.best_checkpoint
    )
    assert scores["split"] == "test" and scores["patches"] == 1
    test_domain = rel.ids[rel.splits.index("test")].domain
    for task in FAMILIES[name]["tasks"]:
        k = 19 if task == COSIA else 23
        s = scores["tasks"][task]
        assert 0.0 <= s["miou"] <= 1.0
        assert set(s["per_domain"]) == {test_domain}
        confusion = np.array(s["confusion"])
        assert confusion.shape == (k, k)
        np.testing.assert_array_equal(confusion.sum(axis=1), _histogram(rel, task, k))
        if task == COSIA:  # classes 15-18 weighted 0: not scored (IGN's config)
            assert s["unscored"] == ["clear cut", "ligneous", "mixed", "other"]
            assert len(s["per_class"]) == 15


def test_cli_trains_and_evaluates(trained: dict) -> None:
    tmp = trained["tmp"]
    recipe = tmp / "recipe.yaml"
    recipe.write_text(json.dumps({"hub": SMALL | FAMILIES["lc-a"]}))  # JSON is YAML
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "train-flair-hub",
            str(trained["manifest"]),
            "--config",
            str(recipe),
            "--out",
            str(tmp / "cli"),
            "--set",
            "seed=3",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "best validation mIoU" in res.output
    ckpt = tmp / "cli" / "checkpoints" / "best.ckpt"
    out = tmp / "cli.json"
    res = runner.invoke(
        cli,
        [
            "evaluate-flair-hub",
            str(trained["manifest"]),
            "--checkpoint",
            str(ckpt),
            "--split",
            "validation",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["split"] == "validation" and report["patches"] == 1
    assert "AERIAL_LABEL-COSIA: mIoU" in res.output
