"""The sentinel1_series asset (issue 25) on the tiny world, through a real Dagster run.

Expected values come from the synthetic archive's own GeoTIFFs read here with rasterio onto
the zone's grid, and its dates and orbits from the STAC items, not from the provider.
"""

from __future__ import annotations

from collections import defaultdict

import dagster as dg
import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
import yaml
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT

from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.layout import DatasetLayout
from flair_pipeline.orchestration.run import materialize
from flair_pipeline.sentinel1.series import read_s1_series
from flair_pipeline.sentinel2.series import super_areas
from flair_pipeline.synthetic.world import WorldSummary

DOMAIN = "D033_2021"


@pytest.fixture(scope="module")
def s1_built(tiny_world: WorldSummary, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("s1")
    p = tmp / "params.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": str(tiny_world.out), "dataset": str(tmp / "dataset")},
                "sampling": {"patch_size": 64, "zone_size_m": 60},
                "sentinel1": {"units": "linear"},
            }
        )
    )
    with dg.instance_for_test() as instance:
        materialize(
            "key:domain_sources or key:patch_grid or key:sentinel1_series",
            (DOMAIN,),
            PipelineConfigResource(config_path=str(p)),
            instance=instance,
        )
        yield DatasetLayout(tmp / "dataset"), instance


def _items(tiny_world: WorldSummary) -> dict[str, list[pystac.Item]]:
    cat = pystac.Catalog.from_file(str(tiny_world.out / "sentinel1" / "catalog.json"))
    by: dict[str, list[pystac.Item]] = defaultdict(list)
    for it in cat.get_items(recursive=True):
        if it.properties["flair:domain"] == DOMAIN:
            by[it.properties["sat:orbit_state"]].append(it)
    return {k: sorted(v, key=lambda i: i.datetime) for k, v in by.items()}


def _warped(path: str, grid) -> np.ndarray:
    """Band 1 of an archive GeoTIFF read by rasterio onto the zone's 10 m EPSG:2154 grid.

    Bilinear through GDAL's warper (a WarpedVRT, nodata as the file declares it). A textbook
    4-pixel bilinear differs from GDAL's by a median 4 % here (GDAL scales its kernel with
    the UTM -> Lambert-93 rotation), so the expected pixel is GDAL's, read independently of
    the provider from the file and the grid.
    """
    with (
        rasterio.open(path) as src,
        WarpedVRT(
            src,
            crs="EPSG:2154",
            transform=from_origin(grid.left, grid.top, 10, 10),
            width=grid.width,
            height=grid.height,
            resampling=Resampling.bilinear,
            src_nodata=src.nodata,
            nodata=src.nodata,
        ) as vrt,
    ):
        out: np.ndarray = vrt.read(1)
    return out


def test_both_orbits_per_zone_with_the_archive_dates_and_values(
    s1_built, tiny_world: WorldSummary
) -> None:
    layout, _ = s1_built
    items = _items(tiny_world)
    areas = super_areas(gpd.read_file(layout.patch_grid(DOMAIN)), 40, 4096)
    assert len(areas) >= 2
    for area in areas:
        for orbit, code in (("ascending", "ASC"), ("descending", "DESC")):
            stored = read_s1_series(layout, DOMAIN, area.zone, code)
            its = items[orbit]
            assert [d.isoformat() for d in stored.dates] == [
                i.datetime.date().isoformat() for i in its if i.datetime
            ]
            assert {(r["coefficient"], r["units"], r["orbit_state"]) for r in stored.records} == {
                ("gamma0", "linear", orbit)
            }
            assert stored.data.shape[:2] == (len(its), 2)
            g = area.grid
            assert stored.data.shape[2:] == (g.height, g.width)
            # one pixel, the middle of the zone, on the first and a summer date, VV and VH
            r, c = g.height // 2, g.width // 2
            for t in (0, len(its) // 2):
                for b, key in enumerate(("vv", "vh")):
                    want = float(_warped(its[t].assets[key].get_absolute_href(), g)[r, c])
                    got = float(stored.data[t, b, r, c])
                    assert got == pytest.approx(want, rel=1e-6), (area.zone, orbit, t, key)


def test_metadata_and_check(s1_built) -> None:
    _, instance = s1_built
    ev = instance.get_latest_materialization_event(dg.AssetKey("sentinel1_series"))
    md = ev.asset_materialization.metadata
    assert md["provider"].value == "stac" and md["failed_zones"].value == []
    assert {k.split("/")[1] for k in md["dates_per_zone"].value} == {"ASC", "DESC"}
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("sentinel1_series"), "s1_series_valid"), limit=5
    )
    assert records and all(r.status.value == "SUCCEEDED" for r in records)
