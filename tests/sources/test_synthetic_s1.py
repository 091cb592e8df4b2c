"""The synthetic Sentinel-1 RTC archive (issue 25): item shape, orbits, dates, backscatter.

Expected values are C-band facts (water darkest, buildings brightest in VV, forest high
in VH, crops' VH rising with biomass), checked on the written GeoTIFFs against a class
raster rasterized here from the land-cover polygons, not against the renderer's table.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
from rasterio.features import rasterize

from flair_pipeline.domains import DomainId
from flair_pipeline.synthetic import s1_backscatter as bs
from flair_pipeline.synthetic.world import SCENARIOS, WorldSummary, domain_landcover


def _items(world: WorldSummary) -> dict[str, list[pystac.Item]]:
    cat = pystac.Catalog.from_file(str(world.out / "sentinel1" / "catalog.json"))
    by: dict[str, list[pystac.Item]] = defaultdict(list)
    for it in cat.get_items(recursive=True):
        by[it.properties["flair:domain"]].append(it)
    return {d: sorted(v, key=lambda i: i.datetime) for d, v in by.items()}


def test_every_domain_has_both_orbits_every_12_days(tiny_world: WorldSummary) -> None:
    items = _items(tiny_world)
    assert set(items) == {d.domain for d in tiny_world.domains}
    for domain, its in items.items():
        year = DomainId.parse(domain).year
        by_state: dict[str, list[pystac.Item]] = defaultdict(list)
        for it in its:
            p = it.properties
            assert it.collection_id == "sentinel-1-rtc"
            assert p["sar:instrument_mode"] == "IW" and p["sar:polarizations"] == ["VV", "VH"]
            assert p["s1:backscatter"] == "gamma0_terrain_flattened" and p["s1:units"] == "linear"
            assert it.datetime is not None and it.datetime.year == year
            by_state[p["sat:orbit_state"]].append(it)
        assert set(by_state) == {"ascending", "descending"}
        orbits = {s: {i.properties["sat:relative_orbit"] for i in v} for s, v in by_state.items()}
        assert (
            all(len(o) == 1 for o in orbits.values())
            and orbits["ascending"] != orbits["descending"]
        )
        for state, v in by_state.items():
            days = [i.datetime.date() for i in v if i.datetime]
            gaps = {(b - a).days for a, b in itertools.pairwise(days)}
            assert gaps == {12}, (domain, state, gaps)
            assert len(days) >= 29
            hours = {i.datetime.hour for i in v if i.datetime}
            assert hours == ({17} if state == "ascending" else {5})


def test_assets_are_float32_with_declared_nodata(tiny_world: WorldSummary) -> None:
    its = next(iter(_items(tiny_world).values()))
    for it in its[:4]:
        shape = it.properties["proj:shape"]
        for key in ("vv", "vh"):
            band = it.assets[key].extra_fields["raster:bands"][0]
            assert band["nodata"] == -32768 and band["data_type"] == "float32"
            with rasterio.open(it.assets[key].get_absolute_href()) as src:
                assert src.dtypes[0] == "float32" and src.nodata == -32768
                assert list(src.shape) == shape and src.res == (10.0, 10.0)
                assert src.crs.to_epsg() == int(it.properties["proj:code"].split(":")[1])
                arr = src.read(1)
            assert np.isfinite(arr).all() and (arr > 0).all() and (arr < 10).all()


def _class_raster(domain: str, src: rasterio.DatasetReader) -> np.ndarray:
    """FLAIR code per 10 m pixel lying 10 m inside one land-cover polygon, else 0."""
    lc, _, _ = domain_landcover(DomainId.parse(domain), SCENARIOS["tiny"], 0)
    gdf = gpd.GeoDataFrame({"code": lc.codes}, geometry=lc.geoms, crs="EPSG:2154").to_crs(src.crs)
    inner = gdf.geometry.buffer(-10)
    shapes = [(g, int(c)) for g, c in zip(inner, gdf["code"], strict=True) if not g.is_empty]
    out: np.ndarray = rasterize(shapes, out_shape=src.shape, transform=src.transform, fill=0)
    return out


def _db_by_class_and_month(world: WorldSummary, pol: str) -> dict[tuple[int, int], list[float]]:
    """Per (code, month), the mean backscatter (dB of the mean linear value) per item."""
    out: dict[tuple[int, int], list[float]] = defaultdict(list)
    for domain, its in _items(world).items():
        with rasterio.open(its[0].assets[pol].get_absolute_href()) as src:
            cls = _class_raster(domain, src)
        for it in its:
            assert it.datetime is not None
            with rasterio.open(it.assets[pol].get_absolute_href()) as src:
                arr = src.read(1).astype(np.float64)
            for c in np.unique(cls[cls > 0]).tolist():
                if (cls == c).sum() >= 20:
                    out[(c, it.datetime.month)].append(10 * np.log10(arr[cls == c].mean()))
    return out


def _median(table: dict[tuple[int, int], list[float]], code: int, months: range) -> float:
    vals = [v for m in months for v in table.get((code, m), [])]
    assert vals, (code, list(months))
    return float(np.median(vals))


def test_backscatter_differs_by_class_and_season(tiny_world: WorldSummary) -> None:
    vv = _db_by_class_and_month(tiny_world, "vv")
    vh = _db_by_class_and_month(tiny_world, "vh")
    codes = {c for c, _ in vh}
    year = range(1, 13)
    assert {10, 11} <= codes and {6, 7} & codes, codes  # grass, fields, forest in `tiny`
    darkest = min(codes, key=lambda c: _median(vh, c, year))
    if 5 in codes:  # specular water is the darkest surface
        assert darkest == 5 and _median(vh, 5, year) < -22
    else:  # smooth asphalt or bare soil then
        assert darkest in (3, 4), darkest
    if 1 in codes:  # double bounce: buildings are the brightest surface in VV
        assert _median(vv, 1, year) > max(_median(vv, c, year) for c in codes - {1, 18})
    forest = [c for c in (6, 7, 16) if c in codes]
    if forest:
        assert min(_median(vh, c, year) for c in forest) > _median(vh, 10, year) + 1.5
    # fields: mostly bare in winter (rapeseed and alfalfa excepted), biomass in early
    # summer (every crop of the table is green in June or July), so VH rises
    for c in {11, 12} & codes:
        assert _median(vh, c, range(6, 8)) > _median(vh, c, range(1, 3)) + 1.0, c


@pytest.mark.parametrize(
    ("crop", "peak", "low"),
    [
        ("BTH", (120, 160), (200, 240)),
        ("MIS", (200, 250), (60, 110)),
        ("CZH", (90, 130), (200, 240)),
    ],
)
def test_crop_calendars_rise_with_biomass_and_drop_at_harvest(
    crop: str, peak: tuple[int, int], low: tuple[int, int]
) -> None:
    """Winter wheat peaks in May and is stubble in August; maize is bare until May and
    peaks in August; rapeseed is green in April and harvested by July."""
    k = np.array([bs.CROP_CODES.index(crop)])
    code, phase = np.array([11]), np.array([0.5])

    def vh(doy: int) -> float:
        return float(bs.object_db(doy, code, phase, k, 0.0, 0.0)[1][0])

    hi = np.mean([vh(d) for d in range(*peak, 5)])
    lo = np.mean([vh(d) for d in range(*low, 5)])
    assert hi > lo + 3.0, (crop, hi, lo)
