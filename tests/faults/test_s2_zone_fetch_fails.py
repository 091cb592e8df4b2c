"""One zone's Sentinel-2 fetch fails (its COGs answer 404) in a real Dagster run of
``sentinel2_series``: nothing is written for that zone, the other zones of the domain are
built, and the failure is one clear line (issue 14).

The tiny world's zones share their scenes, so the test gives each zone its own copies of
three scenes: per zone, an item whose footprint is the part of that zone's super-area
that no other zone's super-area covers (shrunk by 2 m), as a distinct MGRS tile of the
same date. The victim zone's copies point at a loopback server that answers 404; the
others keep the tiny world's COGs.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pystac
import shapely
import yaml
from pyproj import Transformer
from pytest_httpserver import HTTPServer

from flair_pipeline.dataset.sampling import read_patch_grid
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.layout import DatasetLayout
from flair_pipeline.orchestration.run import materialize
from flair_pipeline.sentinel2.series import super_areas

DOMAIN = "D033_2021"
WINDOW = 2  # px: small super-areas, so that each zone has a part of its own


def _catalog(world_out: Path, areas, victim: str, gone: str, out: Path) -> None:
    src = pystac.Catalog.from_file(str(world_out / "sentinel2" / "catalog.json"))
    items = sorted(
        (i for i in src.get_items(recursive=True) if i.properties["flair:domain"] == DOMAIN),
        key=lambda i: i.datetime,
    )[:3]
    to_wgs84 = Transformer.from_crs("EPSG:2154", "EPSG:4326", always_xy=True)
    boxes = {a.zone: shapely.box(*a.grid.bounds) for a in areas}
    cat = pystac.Catalog("zones", "one item per zone and date")
    col = pystac.Collection(
        "sentinel-2-c1-l2a",
        "c1",
        pystac.Extent.from_dict(
            {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}}
        ),
    )
    cat.add_child(col)
    for zone, box in boxes.items():
        own = box.difference(shapely.union_all([b for z, b in boxes.items() if z != zone]))
        own = own.buffer(-2.0).segmentize(5.0)
        assert not own.is_empty, f"zone {zone} has no super-area of its own"
        geom = shapely.transform(own, lambda xy: np.c_[to_wgs84.transform(xy[:, 0], xy[:, 1])])
        for item in items:
            d = item.to_dict()
            d["id"] = f"{item.id}_{zone}"
            d["geometry"], d["bbox"] = shapely.geometry.mapping(geom), list(geom.bounds)
            d["properties"]["s2:mgrs_tile"] = f"{item.properties['s2:mgrs_tile']}{zone}"
            d["links"] = []
            for key, asset in item.assets.items():
                href = asset.get_absolute_href()
                d["assets"][key]["href"] = f"{gone}/{item.id}/{key}.tif" if zone == victim else href
            col.add_item(pystac.Item.from_dict(d))
    cat.normalize_and_save(str(out), pystac.CatalogType.SELF_CONTAINED)


def test_one_zone_404_others_built_one_line(tiny_world, tmp_path: Path, httpserver: HTTPServer):
    params = tmp_path / "params.yaml"
    cat = tmp_path / "cat"
    params.write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": str(tiny_world.out), "dataset": str(tmp_path / "ds")},
                "sampling": {"patch_size": 64, "zone_size_m": 60},
                "sentinel2": {
                    "window": WINDOW,
                    "source": {
                        "catalog": str(cat / "catalog.json"),
                        "max_retries": 1,
                        "retry_backoff_s": 0.0,
                    },
                },
            }
        )
    )
    flair = PipelineConfigResource(config_path=str(params))
    layout = DatasetLayout(tmp_path / "ds")
    with dg.instance_for_test() as instance:
        materialize("key:domain_sources or key:patch_grid", [DOMAIN], flair, instance=instance)
        areas = super_areas(read_patch_grid(layout.patch_grid(DOMAIN)), WINDOW, 110)
        assert len(areas) == 4
        victim = areas[1].zone
        _catalog(tiny_world.out, areas, victim, httpserver.url_for("/gone"), cat)
        materialize("key:sentinel2_series", [DOMAIN], flair, instance=instance)

        run = instance.get_runs(limit=1)[0]
        logs = instance.all_logs(run.run_id)
        errors = [e.user_message for e in logs if e.level >= 40 and victim in e.user_message]
        retried = [
            e
            for e in logs
            if e.dagster_event
            and e.dagster_event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
        ]
        ev = instance.get_latest_materialization_event(dg.AssetKey("sentinel2_series"))
        meta = ev.asset_materialization.metadata
    assert run.status == dg.DagsterRunStatus.SUCCESS and not retried
    (line,) = errors  # one line for the failed zone, in Dagster's event log
    (failed,) = meta["failed_zones"].value
    assert line == f"{DOMAIN}/{failed}" and "\n" not in line
    x0, y0, x1, y1 = areas[1].grid.bounds
    assert failed.startswith(
        f"{victim}: grid ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}) EPSG:2154: none of its 3 items"
    )
    assert "404" in failed and f"{httpserver.url_for('/gone')}/" in failed
    assert meta["zones"].value == 3 and meta["processing_units"].value == 0.0  # STAC is free
    assert not list(Path(layout.sen_prefix(DOMAIN, victim)).parent.glob("*"))  # nothing written
    for a in areas:
        if a.zone != victim:
            data = Path(f"{layout.sen_prefix(DOMAIN, a.zone)}_data.npy")
            products = Path(f"{layout.sen_prefix(DOMAIN, a.zone)}_products.txt")
            assert data.is_file() and len(products.read_text().split()) == 3
    dropped = json.loads(
        Path(f"{layout.sen_prefix(DOMAIN, areas[0].zone)}_products.json").read_text()
    )
    assert dropped["dropped_duplicates"] == []  # per-zone copies are distinct scenes
