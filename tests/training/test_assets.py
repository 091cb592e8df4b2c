"""Training and evaluation assets through real Dagster runs on the tiny built dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import rasterio
from click.testing import CliRunner

from flair_pipeline.cli import cli
from flair_pipeline.definitions import defs
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.demo import map_first_test_domain
from flair_pipeline.domains import is_domain_id
from flair_pipeline.layout import undeclared
from flair_pipeline.orchestration.run import materialize
from tests.training.conftest import config


def _last_metadata(instance: dg.DagsterInstance, key: str) -> dict:
    ev = instance.get_latest_materialization_event(dg.AssetKey(key))
    assert ev is not None, key
    return ev.asset_materialization.metadata


def test_train_evaluate_compare(tiny_dataset, tmp_path: Path) -> None:
    dataset, params = tiny_dataset
    root = params.parent
    # the hub model (issue 24): 64 px patches at 1/2 (its U-Net needs a multiple of 32)
    hub = ["hub.train.epochs=1", "hub.train.downsample=2"]
    flair = PipelineConfigResource(config_path=str(params), overrides=["train.epochs=2", *hub])
    with dg.instance_for_test() as instance:
        materialize("group:training or group:evaluation", (), flair, instance=instance)
        for model in ("unet", "utt"):
            meta = _last_metadata(instance, f"model_{model}")
            assert 0.0 <= meta["best_val_miou"].value <= 1.0
            assert meta["epochs"].value == 2 and meta["images_per_s"].value > 0
            assert "data:image/png;base64," in meta["curves"].value
            ev = _last_metadata(instance, f"evaluation_{model}")
            metrics = json.loads((root / "eval" / model / "metrics.json").read_text())
            assert abs(ev["miou"].value - metrics["miou"]) < 1e-12
            assert "| building |" in ev["per_class_iou"].value
            assert ev["figures"].value.count("data:image/png;base64,") == 2
            for f in ("confusion.csv", "confusion.png", "per_domain.csv", "patches.png"):
                assert (root / "eval" / model / f).is_file(), f
            assert all(is_domain_id(d) for d in metrics["per_domain"])
        # the hub model: the dataset exported, indexed, trained on and scored as FLAIR-HUB
        manifest = (dataset / "hub" / "manifest.csv").read_text().splitlines()
        assert len(manifest) - 1 == len(list((dataset / "aerial").rglob("IMG_*.tif")))
        assert _last_metadata(instance, "model_hub")["epochs"].value == 1
        hub_metrics = json.loads((root / "eval" / "hub" / "metrics.json").read_text())
        splits = (dataset / "metadata" / "splits.csv").read_text().splitlines()[1:]
        test_domains = [line.split(",")[0] for line in splits if line.split(",")[1] == "test"]
        n_test = sum(len(list((dataset / "aerial" / d).rglob("IMG_*.tif"))) for d in test_domains)
        assert hub_metrics["patches"] == n_test and hub_metrics["split"] == "test"
        assert (
            abs(_last_metadata(instance, "evaluation_hub")["miou"].value - hub_metrics["miou"])
            < 1e-12
        )
        assert "confusion" not in hub_metrics["tasks"]["AERIAL_LABEL-COSIA"]
        table = (root / "eval" / "comparison.md").read_text()
        assert "| class | unet | utt |" in table and "mIoU" in table
        assert _last_metadata(instance, "model_comparison")["table"].value == table
    # the demo's tail: the comparison table and a map of a whole test domain
    msg = map_first_test_domain(config(params))
    assert "| class | unet | utt |" in msg
    maps = {
        label: Path(msg.split(f"({label}): ")[1].split(" (")[0]) for label in ("U-Net", "U-T&T")
    }
    with rasterio.open(maps["U-Net"]) as m, rasterio.open(maps["U-T&T"]) as u:
        assert m.count == 1 and m.colormap(1)[1] is not None
        # U-T&T maps the same grid, with Sentinel-2 fetched from the configured provider
        assert (u.transform, u.shape, u.crs) == (m.transform, m.shape, m.crs)
        assert set(np.unique(u.read(1))) <= set(range(1, 14))
    # every file the assets and the demo map wrote is declared in flair_pipeline/layout.py
    roots = {"dataset": dataset, "models": root / "models", "eval": root / "eval"}
    assert all(any(f.is_file() for f in r.rglob("*")) for r in roots.values())
    assert undeclared(roots) == []
    # the written predictions alone reproduce the score through the CLI
    preds = root / "eval" / "unet" / "predictions"
    first = next(preds.rglob("PRED_*.tif"))
    with (
        rasterio.open(first) as p,
        rasterio.open(next(dataset.rglob(first.name.replace("PRED_", "MSK_")))) as m,
    ):
        assert p.transform == m.transform and p.shape == m.shape and p.crs == m.crs
    test_domains = sorted(d.name for d in preds.iterdir())
    labels = tmp_path / "labels"  # the test domains' labels only
    for d in test_domains:
        shutil.copytree(dataset / "labels" / d, labels / d)
    out = tmp_path / "metrics.json"
    res = CliRunner().invoke(
        cli, ["evaluate", "--predictions", str(preds), "--labels", str(labels), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    again = json.loads(out.read_text())
    metrics = json.loads((root / "eval" / "unet" / "metrics.json").read_text())
    assert again["miou"] == metrics["miou"] and again["per_class"] == metrics["per_class"]


def test_assets_have_groups_kinds_descriptions_and_gpu_pool() -> None:
    graph = defs.resolve_asset_graph()
    for key in ("model_unet", "model_utt", "evaluation_unet", "evaluation_utt", "model_comparison"):
        node = graph.get(dg.AssetKey(key))
        assert node.group_name in ("training", "evaluation")
        assert node.description and node.kinds
    for key in ("model_unet", "model_utt"):
        assert graph.get(dg.AssetKey(key)).pools == {"gpu"}
