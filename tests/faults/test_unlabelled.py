"""A label layer with a small unlabelled gap: one rule for sampler, masks, checks and metrics.

Pixels no polygon covers are written as 0; a patch whose unlabelled share is within the
sampler's tolerance (``sampling.max_nodata_fraction``) is built and passes ``msk_codes``;
one over it is skipped and named; loss and metrics ignore 0.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import yaml

from flair_pipeline.config import SamplingConfig
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.patch_writers import build_label_masks
from flair_pipeline.dataset.sampling import sample_patches
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.errors import InputError
from flair_pipeline.layout import DatasetLayout
from flair_pipeline.metrics import confusion_matrix
from flair_pipeline.nomenclature import INVALID, merge_to_13
from flair_pipeline.orchestration.run import materialize
from flair_pipeline.synthetic.world import WorldSummary

PATCH = 64
DOMAIN = "D033_2021"


def _with_gap(tiny_world: WorldSummary, raw: Path, w_m: float, h_m: float):
    """Copy the domain and cut a w x h metre hole at 2 m from patch 0's top-left corner."""
    src = tiny_world.out / "domains" / DOMAIN
    folder = raw / "domains" / DOMAIN
    shutil.copytree(src, folder)
    labels = gpd.read_file(folder / "labels.gpkg")
    with Mosaic(folder / "ortho") as m:
        grid, _ = sample_patches(DOMAIN, m, labels, SamplingConfig(patch_size=PATCH))
    left, _, _, top = grid.geometry.iloc[0].bounds
    hole = shapely.box(left + 2.0, top - 2.0 - h_m, left + 2.0 + w_m, top - 2.0)
    labels["geometry"] = labels.geometry.difference(hole)
    labels.to_file(folder / "labels.gpkg", layer="labels", driver="GPKG")
    return grid, labels, folder


def test_one_metre_gap_builds_the_domain_with_zeros_in_the_mask(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    grid, _, _ = _with_gap(tiny_world, tmp_path / "raw", 1.0, 2.0)  # 50 px, 1.2 % of a patch
    p = tmp_path / "params.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": str(tmp_path / "raw"), "dataset": str(tmp_path / "dataset")},
                "sampling": {"patch_size": PATCH},
            }
        )
    )
    with dg.instance_for_test() as instance:
        materialize(
            "group:sources or group:dataset",
            (DOMAIN,),
            PipelineConfigResource(config_path=str(p)),
            instance=instance,
        )
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("label_masks"), "msk_codes")]
        )
        ev = instance.get_latest_materialization_event(dg.AssetKey("label_masks"))
    assert (
        check[dg.AssetCheckKey(dg.AssetKey("label_masks"), "msk_codes")].status.value == "SUCCEEDED"
    )
    assert ev.asset_materialization.metadata["unlabelled_pixels"].value == 50
    row = grid.iloc[0]
    msk_path = DatasetLayout(tmp_path / "dataset").msk(DOMAIN, row.zone, row.patch_id)
    with rasterio.open(msk_path) as src:
        m = src.read(1)
    expected = np.zeros_like(m, bool)
    expected[10:20, 10:15] = True  # rows 2..4 m below the top, columns 2..3 m from the left
    np.testing.assert_array_equal(m == 0, expected)


def test_patch_over_tolerance_is_skipped_and_named(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    grid, _, folder = _with_gap(tiny_world, tmp_path / "raw", 2.0, 2.0)  # 100 px = 2.44 %
    grid = grid.iloc[:3]
    layout = DatasetLayout(tmp_path / "dataset")
    report = build_label_masks(
        grid, folder / "labels.gpkg", layout, PATCH, 0.2, max_unlabelled=0.02
    )
    first = grid.iloc[0].patch_id
    assert report.written == 2 and [p for p, _ in report.skipped] == [first]
    assert "2.44 % of patch" in report.skipped[0][1] and "tolerance 2 %" in report.skipped[0][1]
    assert not layout.msk(DOMAIN, grid.iloc[0].zone, first).exists()
    report = build_label_masks(
        grid, folder / "labels.gpkg", layout, PATCH, 0.2, max_unlabelled=0.05
    )
    assert report.written == 3 and not report.skipped


def test_unlabelled_is_ignored_by_metrics_and_only_allowed_in_references() -> None:
    codes = np.array([[0, 1], [13, 19]], np.uint8)
    np.testing.assert_array_equal(merge_to_13(codes, unlabelled_ok=True), [[INVALID, 0], [12, 12]])
    with pytest.raises(InputError, match=r"prediction: label codes must be 1\.\.19, found \[0\]"):
        merge_to_13(codes, source="prediction")
    with pytest.raises(InputError, match=r"found \[20\]"):
        merge_to_13(np.array([0, 20], np.uint8), unlabelled_ok=True)
    truth = merge_to_13(codes, unlabelled_ok=True)
    cm = confusion_matrix(truth, np.array([[5, 0], [12, 3]]))
    assert cm.sum() == 3 and cm[0, 0] == 1 and cm[12, 12] == 1 and cm[12, 3] == 1


def test_training_loss_and_validation_ignore_unlabelled_pixels() -> None:
    import torch

    from flair_pipeline.training.module import FlairModule

    torch.manual_seed(0)
    module = FlairModule(
        "unet",
        {"in_channels": 4},
        {"mean": [100.0] * 4, "std": [30.0] * 4},
        patch_size=32,
        augment=False,
    )
    module.log = lambda *a, **k: None  # no trainer attached
    img = torch.rand(2, 4, 32, 32) * 255
    msk = torch.randint(0, 13, (2, 32, 32))
    msk[0, :8] = INVALID  # 256 unlabelled pixels (codes 0 in the MSK)
    batch = {"img": img, "msk": msk}
    loss = module.training_step(batch, 0)
    # independent: weighted NLL over the labelled pixels only, from the same logits
    with torch.no_grad():
        logits = module(batch)["logits"].double()
        logp = torch.log_softmax(logits, 1)
        keep = msk != INVALID
        y = msk[keep]
        nll = -logp.permute(0, 2, 3, 1)[keep].gather(1, y[:, None])[:, 0]
        w = module.class_weight.double()[y]
        expected = (w * nll).sum() / w.sum()
    assert torch.isfinite(loss) and float(loss) == pytest.approx(float(expected), rel=1e-5)
    module.validation_step(batch, 0)
    assert int(module.val_confusion.compute().sum()) == int(keep.sum()) == 2 * 32 * 32 - 256
