"""The Sentinel-2 stage without Dagster (sentinel2/build.py) on the tiny world's STAC archive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flair_pipeline.config import config_from_dict
from flair_pipeline.dataset.build import sample_domain_grid
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.sampling import read_patch_grid
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.sentinel2.build import build_domain_series, merge_centroids
from flair_pipeline.sentinel2.factory import build_provider
from flair_pipeline.sentinel2.series import read_series
from flair_pipeline.synthetic.world import WorldSummary

DOMAIN = "D036_2020"


def test_series_report_matches_the_files(tiny_world: WorldSummary, tmp_path: Path) -> None:
    cfg = config_from_dict(
        {
            "sampling": {"patch_size": 64, "zone_size_m": 200, "max_patches_per_domain": 4},
            "sentinel2": {"cloud_threshold": 30},
        }
    )
    raw, dataset = RawLayout(tiny_world.out), DatasetLayout(tmp_path / "dataset")
    sample_domain_grid(DomainContext.open(DOMAIN, raw, dataset, cfg))
    provider = build_provider(cfg.sentinel2.source, raw.sentinel2_catalog())
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
    assert "ndvi_by_class" not in meta and report.profiles  # values only: the adapter draws
    index = merge_centroids(dataset)
    assert (index.patches, index.domains) == (len(grid), 1)
    assert json.loads(dataset.centroids.read_text()) == centroids


def test_an_item_no_rule_settles_is_a_warning_and_costs_only_its_date(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """One item's red asset declares offset -0.1 (raster v1) and 0 (raster v2): each zone
    loses that date only, and the run's warnings name the item once per zone."""
    import shutil

    cfg = config_from_dict(
        {"sampling": {"patch_size": 64, "zone_size_m": 200, "max_patches_per_domain": 4}}
    )
    raw, dataset = RawLayout(tiny_world.out), DatasetLayout(tmp_path / "dataset")
    sample_domain_grid(DomainContext.open(DOMAIN, raw, dataset, cfg))
    catalog = Path(shutil.copytree(tiny_world.out / "sentinel2", tmp_path / "s2")) / "catalog.json"
    ours = sorted(
        p
        for p in catalog.parent.glob("*/*/*.json")
        if json.loads(p.read_text())["properties"].get("flair:domain") == DOMAIN
    )
    victim = ours[len(ours) // 2]
    d = json.loads(victim.read_text())
    d["assets"]["red"]["raster:bands"][0]["offset"] = -0.1
    d["assets"]["red"]["raster:offset"] = 0
    victim.write_text(json.dumps(d))
    report = build_domain_series(
        DOMAIN, raw, dataset, cfg, build_provider(cfg.sentinel2.source, catalog)
    )
    zones = sorted(report.dates_per_zone)
    assert report.failed_zones == () and zones
    assert set(report.dates_per_zone.values()) == {len(ours) - 1}
    assert len(report.warnings) == len(zones)
    for zone, line in zip(zones, report.warnings, strict=True):
        assert line.startswith(f"{zone}: STAC item {d['id']} (") and "its date is dropped" in line
        products = read_series(dataset, DOMAIN, zone)[2]
        assert d["properties"]["s2:product_uri"].removesuffix(".SAFE") not in products


def test_labels_outside_the_super_areas_are_never_read(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """Issue 27 item 2: the NDVI profiles read the label layer by the super-areas' extent.

    A polygon with code 99 (no FLAIR code: a whole-layer read refuses it) is planted 5 km
    east of the domain's grid, after the grid is sampled: the series build still passes and
    its profiles are those of the intact layer, so the planted polygon was never loaded.
    """
    import shutil

    import geopandas as gpd
    import pyogrio
    import shapely

    from flair_pipeline.dataset.rasterize import read_labels
    from flair_pipeline.errors import InputError

    root = tmp_path / "raw"
    shutil.copytree(tiny_world.out / "domains" / DOMAIN, root / "domains" / DOMAIN)
    (root / "sentinel2").symlink_to(tiny_world.out / "sentinel2")
    cfg = config_from_dict(
        {"sampling": {"patch_size": 64, "zone_size_m": 200, "max_patches_per_domain": 4}}
    )
    raw, dataset = RawLayout(root), DatasetLayout(tmp_path / "dataset")
    sample_domain_grid(DomainContext.open(DOMAIN, raw, dataset, cfg))
    provider = build_provider(cfg.sentinel2.source, raw.sentinel2_catalog())
    intact = build_domain_series(DOMAIN, raw, dataset, cfg, provider)

    labels = root / "domains" / DOMAIN / "labels.gpkg"
    layer = pyogrio.list_layers(labels)[0][0]
    _, y0, x1, _ = read_patch_grid(dataset.patch_grid(DOMAIN)).total_bounds
    far = gpd.GeoDataFrame(
        {"code": [99]}, geometry=[shapely.box(x1 + 5000, y0, x1 + 5100, y0 + 100)], crs=2154
    )
    pyogrio.write_dataframe(far, labels, layer=layer, append=True)
    with pytest.raises(InputError):  # the plant is poison to a whole-layer read
        read_labels(labels, layer)
    planted = build_domain_series(DOMAIN, raw, dataset, cfg, provider)
    assert planted.passed and planted.dates_per_zone == intact.dates_per_zone
    assert sorted(planted.profiles) == sorted(intact.profiles) and intact.profiles
    for name, rows in intact.profiles.items():
        assert len(planted.profiles[name]) == len(rows)
        for a, b in zip(rows, planted.profiles[name], strict=True):
            np.testing.assert_array_equal(a, b)
