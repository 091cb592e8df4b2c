"""The sentinel2_series asset on the tiny world, through a real Dagster run."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pystac
import pytest
import rasterio
import yaml

from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.layout import DatasetLayout
from flair_pipeline.orchestration.run import materialize
from flair_pipeline.sentinel2.series import read_series
from flair_pipeline.synthetic.world import WorldSummary


@pytest.fixture(scope="module")
def series_built(tiny_world: WorldSummary, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("s2")
    p = tmp / "params.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": str(tiny_world.out), "dataset": str(tmp / "dataset")},
                "sampling": {"patch_size": 64, "zone_size_m": 60},
            }
        )
    )
    with dg.instance_for_test() as instance:
        materialize(
            "key:domain_sources or key:patch_grid or group:sentinel2",
            (),
            PipelineConfigResource(config_path=str(p)),
            instance=instance,
        )
        yield DatasetLayout(tmp / "dataset"), instance


def test_series_per_zone_in_flair_format(series_built, tiny_world: WorldSummary) -> None:
    layout, _ = series_built
    cat = pystac.Catalog.from_file(str(tiny_world.out / "sentinel2" / "catalog.json"))
    n_items: dict[str, int] = {}
    for it in cat.get_items(recursive=True):
        d = it.properties["flair:domain"]
        n_items[d] = n_items.get(d, 0) + 1
    zones = sorted((layout.root / "sentinel").glob("*/*/sen"))
    assert len(zones) >= 3 * 4  # zone_size 60 m over 102.4 m mosaics: 2 x 2 zones each
    for sen in zones:
        domain, zone = sen.parts[-3], sen.parts[-2]
        data, masks, products = read_series(layout, domain, zone)
        t = data.shape[0]
        assert data.dtype == np.uint16 and masks.dtype == np.uint8
        assert (
            data.shape[1] == 10 and masks.shape[:2] == (t, 2) and data.shape[2:] == masks.shape[2:]
        )
        assert t == len(products) == n_items[domain]
        assert masks.max() <= 100
        assert max(data.shape[2:]) <= 110 and min(data.shape[2:]) >= 40


def test_series_pixels_are_source_pixels_less_the_boa_offset(
    series_built, tiny_world: WorldSummary
) -> None:
    """Each zone's red band at its patches' centroid pixels equals the source COG's DN there
    minus the 1000 DN BOA offset (baseline 05.00), read here with rasterio and pyproj.

    The zone's 10 m grid is recovered from one patch: its centroid (x, y) (shapely, from the
    patch polygon) lies in pixel (r, c) of a grid whose origin is on the 10 m lattice.
    """
    import math

    import geopandas as gpd
    from pyproj import Transformer

    layout, _ = series_built
    cents = json.loads(layout.centroids.read_text())
    cat = pystac.Catalog.from_file(str(tiny_world.out / "sentinel2" / "catalog.json"))
    by_product = {
        i.properties["s2:product_uri"].removesuffix(".SAFE"): i
        for i in cat.get_items(recursive=True)
    }
    checked = 0
    for gpkg in sorted((layout.metadata_dir / "patch_grid").glob("*.gpkg")):
        gdf = gpd.read_file(gpkg)
        for (domain, zone), z in gdf.groupby(["domain", "zone"]):
            data, _, products = read_series(layout, domain, zone)
            first = z.iloc[0]
            p = first.geometry.centroid
            r0, c0 = cents[f"IMG_{first.patch_id}.tif"]
            left = 10.0 * (math.floor(p.x / 10) - c0)
            top = 10.0 * (r0 + math.ceil(p.y / 10))
            for row in z.itertuples():
                r, c = cents[f"IMG_{row.patch_id}.tif"]
                x, y = left + 10 * c + 5, top - 10 * r - 5
                for t in (0, len(products) // 2, len(products) - 1):
                    item = by_product[products[t]]
                    with rasterio.open(item.assets["red"].get_absolute_href()) as src:
                        ux, uy = Transformer.from_crs(
                            "EPSG:2154", src.crs, always_xy=True
                        ).transform(x, y)
                        fc, fr = ~src.transform * (ux, uy)
                        if min(fr % 1, 1 - fr % 1, fc % 1, 1 - fc % 1) < 0.05:
                            continue  # too close to a source pixel edge for an exact answer
                        dn = int(
                            src.read(1, window=((int(fr), int(fr) + 1), (int(fc), int(fc) + 1)))[
                                0, 0
                            ]
                        )
                    assert dn > 1000, "synthetic red DN should carry the +1000 offset"
                    assert int(data[t, 2, r, c]) == dn - 1000, (domain, zone, row.patch_id, t)
                    checked += 1
    assert checked >= 20


def test_centroid_index(series_built) -> None:
    layout, _ = series_built
    cents = json.loads(layout.centroids.read_text())
    imgs = 3 * (512 // 64) ** 2
    assert len(cents) == imgs
    grids = {}
    for sen in (layout.root / "sentinel").glob("*/*/sen"):
        d, z = sen.parts[-3], sen.parts[-2]
        grids[(d, z)] = np.load(next(sen.glob("*_data.npy")), mmap_mode="r").shape[2:]
    import geopandas as gpd

    for gpkg in (layout.metadata_dir / "patch_grid").glob("*.gpkg"):
        for row in gpd.read_file(gpkg).itertuples():
            r, c = cents[f"IMG_{row.patch_id}.tif"]
            h, w = grids[(row.domain, row.zone)]
            # the 40 px window around the centroid fits in the super-area
            assert 20 <= r <= h - 20 and 20 <= c <= w - 20


def test_metadata_and_check(series_built) -> None:
    _, instance = series_built
    ev = instance.get_latest_materialization_event(dg.AssetKey("sentinel2_series"))
    md = ev.asset_materialization.metadata
    assert md["provider"].value == "stac"
    assert set(md["dates_per_zone"].value) and min(md["dates_per_zone"].value.values()) >= 20
    assert "data:image/png;base64," in md["ndvi_by_class"].value
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("sentinel2_series"), "series_valid"), limit=5
    )
    assert records and all(r.status.value == "SUCCEEDED" for r in records)


def test_zone_too_large_for_max_size_is_named(tiny_world: WorldSummary, tmp_path: Path) -> None:
    from flair_pipeline.errors import FlairPipelineError

    p = tmp_path / "params.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": str(tiny_world.out), "dataset": str(tmp_path / "dataset")},
                "sampling": {"patch_size": 64},
                "sentinel2": {"window": 40, "max_size": 45},
            }
        )
    )
    with (
        dg.instance_for_test() as instance,
        pytest.raises(
            FlairPipelineError,
            match=r"Z1_\w+: super-area (\d+)×\d+ px .*sentinel2\.max_size=45; raise sentinel2\.max_size to at least \d+",
        ),
    ):
        materialize(
            "key:domain_sources or key:patch_grid or key:sentinel2_series",
            ("D033_2021",),
            PipelineConfigResource(config_path=str(p)),
            instance=instance,
        )
