"""The Sentinel-2 stage without Dagster (sentinel2/build.py) on the tiny world's STAC archive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flair_pipeline.config import config_from_dict
from flair_pipeline.dataset.build import sample_domain_grid
from flair_pipeline.dataset.sampling import read_patch_grid
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.sentinel2.build import build_domain_series, merge_centroids
from flair_pipeline.sentinel2.factory import make_provider
from flair_pipeline.sentinel2.series import read_series
from flair_pipeline.sources.synthetic import WorldSummary

DOMAIN = "D036_2020"


def test_series_report_matches_the_files(tiny_world: WorldSummary, tmp_path: Path) -> None:
    cfg = config_from_dict(
        {
            "sampling": {"patch_size": 64, "zone_size_m": 200, "max_patches_per_domain": 4},
            "sentinel2": {"cloud_threshold": 30},
        }
    )
    raw, dataset = RawLayout(tiny_world.out), DatasetLayout(tmp_path / "dataset")
    sample_domain_grid(DOMAIN, raw, dataset, cfg)
    provider = make_provider(cfg.sentinel2, Path, raw.sentinel2_catalog())
    report = build_domain_series(DOMAIN, raw, dataset, cfg, provider)
    assert report.passed and report.failed_zones == () and report.provider == "stac"
    grid = read_patch_grid(dataset.patch_grid(DOMAIN))
    assert sorted(report.dates_per_zone) == sorted(set(grid["zone"]))
    for zone, n in report.dates_per_zone.items():
        data, masks, products = read_series(dataset, DOMAIN, zone)
        assert data.shape[0] == masks.shape[0] == len(products) == n
        # cloudy date: more than 10 % of the super-area at cloud probability >= 30 %
        per_date = [(m[1] >= 30).sum() / m[1].size > 0.1 for m in masks]
        assert report.cloudy_date_share[zone] == pytest.approx(np.mean(per_date), abs=5e-4)
    centroids = json.loads((dataset.metadata_dir / "centroids" / f"{DOMAIN}.json").read_text())
    assert sorted(centroids) == sorted(f"IMG_{p}.tif" for p in grid["patch_id"])
    meta = report.as_metadata()
    assert meta["zones"] == len(report.dates_per_zone) and meta["processing_units"] == 0.0
    assert "data:image/png;base64," in meta["ndvi_by_class"]
    index = merge_centroids(dataset)
    assert (index.patches, index.domains) == (len(grid), 1)
    assert json.loads(dataset.centroids.read_text()) == centroids
