"""The Sentinel-1 stage without Dagster (sentinel1/build.py) on the tiny world's patch grid.

A static STAC catalog written here (pystac, local float32 COGs) covers the first zone only:
that zone gets its ASC and DESC files with the values written; every other zone fails,
writes nothing and is named in failed_zones.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import shapely
from pyproj import Transformer
from shapely.geometry import box, mapping

from flair_pipeline.config import config_from_dict
from flair_pipeline.dataset.build import sample_domain_grid
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.sampling import read_patch_grid
from flair_pipeline.errors import InputError
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.sentinel1.build import build_domain_s1_series
from flair_pipeline.sentinel1.factory import build_s1_provider
from flair_pipeline.sentinel1.series import read_s1_series
from flair_pipeline.sentinel2.series import super_areas
from flair_pipeline.synthetic.world import WorldSummary

DOMAIN = "D036_2020"
#: (orbit, date, VV, VH) of the catalog's items, linear power
ITEMS = [
    ("ascending", dt.datetime(2020, 5, 2, 17, 40), 0.1, 0.01),
    ("descending", dt.datetime(2020, 5, 8, 5, 58), 0.25, 0.04),
]


def _catalog(tmp: Path, bounds: tuple[float, float, float, float], desc_bounds=None) -> Path:
    """A static catalog whose items cover `bounds` (EPSG:2154) with constant VV/VH COGs; the
    descending item only `desc_bounds` when given."""
    to_wgs = Transformer.from_crs("EPSG:2154", "EPSG:4326", always_xy=True)
    wgs = to_wgs.transform_bounds(*bounds)
    cat = pystac.Catalog("s1", "synthetic S1")
    col = pystac.Collection(
        "sentinel-1-rtc",
        "test",
        pystac.Extent(pystac.SpatialExtent([list(wgs)]), pystac.TemporalExtent([[None, None]])),
    )
    cat.add_child(col)
    for k, (orbit, when, vv, vh) in enumerate(ITEMS):
        x0, y0, x1, y1 = desc_bounds if desc_bounds and orbit == "descending" else bounds
        props = {
            "sat:orbit_state": orbit,
            "sat:relative_orbit": 30 + k,
            "sar:polarizations": ["VV", "VH"],
        }
        item = pystac.Item(f"S1_{k}", mapping(box(*wgs)), list(wgs), when, props)
        for key, value in (("vv", vv), ("vh", vh)):
            path = tmp / f"S1_{k}_{key}.tif"
            w, h = round((x1 - x0) / 10), round((y1 - y0) / 10)
            tf = rasterio.transform.from_origin(x0, y1, 10, 10)
            prof = dict(driver="COG", width=w, height=h, count=1, dtype="float32")
            with rasterio.open(
                path, "w", **prof, crs="EPSG:2154", transform=tf, nodata=-32768
            ) as d:
                d.write(np.full((1, h, w), value, np.float32))
            item.add_asset(key, pystac.Asset(str(path), media_type=pystac.MediaType.COG))
        col.add_item(item)
    cat.normalize_hrefs(str(tmp / "stac"))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    return tmp / "stac" / "catalog.json"


def _px_bounds(grid, row: int, col: int, n: int) -> tuple[float, float, float, float]:
    """EPSG:2154 bounds of the n×n pixels of `grid` from (row, col)."""
    x0, y1 = grid.left + 10 * col, grid.top - 10 * row
    return (x0, y1 - 10 * n, x0 + 10 * n, y1)


def test_zone_without_series_writes_nothing_others_are_built(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    cfg = config_from_dict(
        {"sampling": {"patch_size": 64, "zone_size_m": 60, "max_patches_per_domain": 6}}
    )
    raw, dataset = RawLayout(tiny_world.out), DatasetLayout(tmp_path / "dataset")
    sample_domain_grid(DomainContext.open(DOMAIN, raw, dataset, cfg))
    areas = super_areas(read_patch_grid(dataset.patch_grid(DOMAIN)), 40, 110)
    assert len(areas) >= 2, "the test needs zones outside the catalog"
    first, others = areas[0], areas[1:]
    # a 3x3 px corner of the first zone's grid that no other zone's grid holds: the
    # descending item covers only it, so only the first zone has both directions
    row, col = next(
        (r, c)
        for r in (0, first.grid.height - 3)
        for c in (0, first.grid.width - 3)
        if not any(
            box(*a.grid.bounds).intersects(box(*_px_bounds(first.grid, r, c, 3)).buffer(-1))
            for a in others
        )
    )
    union = shapely.union_all([box(*a.grid.bounds) for a in areas]).bounds
    catalog = _catalog(tmp_path, union, _px_bounds(first.grid, row, col, 3))
    report = build_domain_s1_series(
        DOMAIN, raw, dataset, cfg, build_s1_provider(cfg.sentinel1, catalog)
    )
    assert report.passed and report.provider == "stac"
    covered = [first]
    assert set(report.dates_per_zone) == {f"{a.zone}/{o}" for a in covered for o in ("ASC", "DESC")}
    assert report.failed_zones and len(report.failed_zones) == len(areas) - len(covered)
    for a in areas:
        files = list((dataset.root / "sentinel1" / DOMAIN / a.zone).glob("SEN1-*"))
        assert bool(files) == (a in covered), a.zone
    asc = read_s1_series(dataset, DOMAIN, first.zone, "ASC")
    desc = read_s1_series(dataset, DOMAIN, first.zone, "descending")
    assert asc.dates == [dt.date(2020, 5, 2)] and desc.dates == [dt.date(2020, 5, 8)]
    # the default units are dB: 10·log10 of the linear values written, by hand
    assert asc.data[0, 0, 0, 0] == pytest.approx(-10.0, abs=1e-5)  # 0.1
    assert asc.data[0, 1, 0, 0] == pytest.approx(-20.0, abs=1e-5)  # 0.01
    assert desc.data[0, 0, row + 1, col + 1] == pytest.approx(-6.0206, abs=1e-4)  # 0.25
    assert desc.data[0, 1, row + 1, col + 1] == pytest.approx(-13.9794, abs=1e-4)  # 0.04
    assert np.isnan(
        desc.data[0, :, (row + 10) % first.grid.height, (col + 10) % first.grid.width]
    ).all()
    assert (asc.records[0]["orbit_state"], asc.records[0]["relative_orbit"]) == ("ascending", 30)
    assert desc.records[0]["units"] == "dB" and desc.records[0]["coefficient"] == "gamma0"


def test_no_zone_at_all_is_one_error_naming_them(tiny_world: WorldSummary, tmp_path: Path) -> None:
    cfg = config_from_dict(
        {
            "sampling": {"patch_size": 64, "zone_size_m": 60, "max_patches_per_domain": 6},
            "sentinel1": {"orbits": ["descending"]},
        }
    )
    raw, dataset = RawLayout(tiny_world.out), DatasetLayout(tmp_path / "dataset")
    sample_domain_grid(DomainContext.open(DOMAIN, raw, dataset, cfg))
    far = (100000.0, 6000000.0, 100500.0, 6000500.0)  # nowhere near the domain
    provider = build_s1_provider(cfg.sentinel1, _catalog(tmp_path, far))
    with pytest.raises(InputError, match="no zone got its Sentinel-1 series") as err:
        build_domain_s1_series(DOMAIN, raw, dataset, cfg, provider)
    assert "descending" in str(err.value) and "ascending" not in str(err.value)
