"""StacProvider on the real files of the `tiny` synthetic archive (offline).

Values are checked against direct rasterio reads of the source assets, opens are counted
with a spy around ``rasterio.open`` (it still opens the files), the STAC API path runs
against a local HTTP server answering like a STAC API.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from pytest_httpserver import HTTPServer
from rasterio.warp import transform as warp_transform

from flair_pipeline.errors import InputError
from flair_pipeline.sentinel2.provider import STAC_ASSETS, STAC_MASK_ASSETS, Grid
from flair_pipeline.sentinel2.stac import StacProvider, processing_baseline, scale_offset

DOMAIN = "D033_2021"
YEAR = (dt.date(2021, 1, 1), dt.date(2021, 12, 31))


def _bounds(world, domain: str = DOMAIN) -> tuple[float, float, float, float]:
    return tuple(json.loads((world.out / "domains" / domain / "domain.json").read_text())["bounds"])


def _grid(world, margin: float = 100.0, domain: str = DOMAIN) -> Grid:
    x0, y0, x1, y1 = _bounds(world, domain)
    return Grid.around((x0 - margin, y0 - margin, x1 + margin, y1 + margin))


def _items(catalog: Path, domain: str = DOMAIN) -> dict[dt.date, pystac.Item]:
    cat = pystac.Catalog.from_file(str(catalog))
    items = [i for i in cat.get_items(recursive=True) if i.properties["flair:domain"] == domain]
    return {i.datetime.date(): i for i in items}


@pytest.fixture(scope="module")
def catalog(tiny_world) -> Path:
    return tiny_world.out / "sentinel2" / "catalog.json"


@pytest.fixture(scope="module")
def series(tiny_world, catalog):
    return StacProvider(catalog=catalog).fetch([_grid(tiny_world)], *YEAR)[0]


@pytest.fixture
def copy(tiny_world, tmp_path) -> Path:
    """A writable copy of the archive (asset hrefs are relative, so it is self-contained)."""
    shutil.copytree(tiny_world.out / "sentinel2", tmp_path / "sentinel2")
    return tmp_path / "sentinel2" / "catalog.json"


def _edit_items(catalog: Path, edit) -> None:
    for path in catalog.parent.glob("*/*/*.json"):
        d = json.loads(path.read_text())
        if d["properties"].get("flair:domain") == DOMAIN:
            edit(d)
            path.write_text(json.dumps(d))


def test_shapes_dates_products(series, tiny_world, catalog) -> None:
    grid, items = _grid(tiny_world), _items(catalog)
    t = len(series.dates)
    assert 20 <= t <= 114 and t == len(items)
    assert series.data.shape == (t, 10, grid.height, grid.width) and series.data.dtype == np.uint16
    assert series.masks.shape == (t, 2, grid.height, grid.width) and series.masks.dtype == np.uint8
    assert series.dates == sorted(series.dates) == sorted(items)
    assert all(d.year == 2021 for d in series.dates)
    first = items[series.dates[0]].properties["s2:product_uri"]
    assert series.products[0] == first.removesuffix(".SAFE") and series.skipped == []


@pytest.mark.parametrize("key", ["red", "swir16", "cloud", "snow"])
def test_values_equal_source_pixels(series, tiny_world, catalog, key) -> None:
    """Nearest neighbour: each output pixel is the source pixel holding its centre."""
    grid, items = _grid(tiny_world), _items(catalog)
    keys = (*STAC_ASSETS, *STAC_MASK_ASSETS)
    b = keys.index(key)
    for t in (0, len(series.dates) // 2, len(series.dates) - 1):
        item = items[series.dates[t]]
        with rasterio.open(item.assets[key].get_absolute_href()) as src:
            arr = src.read(1)
            for r, c in [(0, 0), (3, 7), (grid.height // 2, grid.width // 2), (-1, -1)]:
                r, c = r % grid.height, c % grid.width
                x, y = grid.transform * (c + 0.5, r + 0.5)
                (ux,), (uy,) = warp_transform("EPSG:2154", src.crs, [x], [y])
                dn = int(arr[src.index(ux, uy)])
                if b < 10:
                    assert int(series.data[t, b, r, c]) == max(dn - 1000, 0)
                else:
                    assert int(series.masks[t, b - 10, r, c]) == dn  # snow→SNW, cloud→CLD


def test_masks_range_and_clouds_brighter(series) -> None:
    assert series.masks.max() <= 100
    cld, blue = series.masks[:, 1], series.data[:, 0].astype(float)
    assert (cld >= 80).any() and (cld == 0).any()
    assert blue[cld >= 80].mean() > blue[cld == 0].mean() + 1000


def test_each_asset_opened_once_for_two_grids(tiny_world, catalog, monkeypatch) -> None:
    x0, y0, x1, y1 = _bounds(tiny_world)
    grids = [Grid.around((x0, y0, x0 + 50, y0 + 50)), Grid.around((x1 - 60, y1 - 40, x1, y1))]
    opened: list[str] = []
    real = rasterio.open

    def spy(fp, *args, **kwargs):
        opened.append(str(fp))
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", spy)
    out = StacProvider(catalog=catalog).fetch(grids, *YEAR)
    assert [s.grid for s in out] == grids
    n = len(_items(catalog))
    assert len(opened) == len(set(opened)) == n * 12
    assert all(len(s.dates) == n for s in out)


def test_threads_give_the_same_series(tiny_world, catalog, series) -> None:
    provider = StacProvider(catalog=catalog, workers=4)
    s = provider.fetch([_grid(tiny_world)], *YEAR)[0]
    np.testing.assert_array_equal(s.data, series.data)
    np.testing.assert_array_equal(s.masks, series.masks)
    assert s.dates == series.dates and s.products == series.products
    assert provider.fetch_each([], *YEAR) == []


def test_grid_outside_coverage_fails_alone(tiny_world, catalog) -> None:
    far = Grid(left=100_000.0, top=6_100_000.0, width=4, height=4)
    good = _grid(tiny_world, 0.0)
    provider = StacProvider(catalog=catalog)
    bad, ok = provider.fetch_each([far, good], *YEAR)
    assert isinstance(bad, InputError) and "(100000, 6099960, 100040, 6100000)" in str(bad)
    assert len(ok.dates) == len(_items(catalog))
    with pytest.raises(InputError, match="100000"):
        provider.fetch([good, far], *YEAR)


def test_missing_asset_skips_that_date(tiny_world, copy) -> None:
    items = _items(copy)
    day = sorted(items)[3]
    Path(items[day].assets["nir08"].get_absolute_href()).unlink()
    s = StacProvider(catalog=copy).fetch([_grid(tiny_world)], *YEAR)[0]
    assert day not in s.dates and len(s.dates) == len(items) - 1
    product = items[day].properties["s2:product_uri"].removesuffix(".SAFE")
    assert [p for p, _ in s.skipped] == [product] and "nir08" in s.skipped[0][1]


def test_offset_from_baseline_without_raster_bands(tiny_world, copy, series) -> None:
    def drop_offset(d):  # baseline 05.00 stays: the offset must still be removed
        for a in d["assets"].values():
            a.pop("raster:bands", None)

    _edit_items(copy, drop_offset)
    s = StacProvider(catalog=copy).fetch([_grid(tiny_world)], *YEAR)[0]
    np.testing.assert_array_equal(s.data, series.data)


def test_no_offset_before_baseline_04(tiny_world, copy, series) -> None:
    def old_baseline(d):
        d["properties"]["s2:processing_baseline"] = "02.14"
        for a in d["assets"].values():
            a.pop("raster:bands", None)

    _edit_items(copy, old_baseline)
    s = StacProvider(catalog=copy).fetch([_grid(tiny_world)], *YEAR)[0]
    shifted = np.clip(s.data.astype(int) - 1000, 0, None)
    np.testing.assert_array_equal(shifted, series.data)
    assert (s.data > series.data).any()


def test_same_date_items_are_mosaicked(tiny_world, copy, series) -> None:
    """A second item on a date (tile overlap): the first by id wins, T is unchanged."""
    items = _items(copy)
    day = series.dates[5]
    d = items[day].to_dict()
    d["id"] = "S2A_00AAA" + d["id"][9:]  # sorts before the original
    d["properties"]["s2:product_uri"] = "OVERLAP_TILE.SAFE"
    for a, asset in zip(d["assets"].values(), items[day].assets.values(), strict=True):
        a["href"] = asset.get_absolute_href()
    folder = copy.parent / "sentinel-2-c1-l2a" / d["id"]
    folder.mkdir()
    (folder / f"{d['id']}.json").write_text(json.dumps(d))
    coll = copy.parent / "sentinel-2-c1-l2a" / "collection.json"
    c = json.loads(coll.read_text())
    c["links"].append({"rel": "item", "href": f"./{d['id']}/{d['id']}.json"})
    coll.write_text(json.dumps(c))
    s = StacProvider(catalog=copy).fetch([_grid(tiny_world)], *YEAR)[0]
    assert s.dates == series.dates and s.products[5] == "OVERLAP_TILE"
    np.testing.assert_array_equal(s.data, series.data)


def test_stac_api_search(tiny_world, catalog, series, httpserver: HTTPServer) -> None:
    """The API path: landing page, POST /search, items with absolute hrefs."""
    feats = []
    for item in _items(catalog).values():
        d = item.to_dict()
        for key, asset in item.assets.items():
            d["assets"][key]["href"] = asset.get_absolute_href()
        d["links"] = []
        feats.append(d)
    base = httpserver.url_for("/")
    httpserver.expect_request("/").respond_with_json(
        {
            "type": "Catalog",
            "id": "api",
            "stac_version": "1.0.0",
            "description": "test",
            "conformsTo": [
                "https://api.stacspec.org/v1.0.0/core",
                "https://api.stacspec.org/v1.0.0/item-search",
            ],
            "links": [
                {"rel": "self", "href": base},
                {"rel": "root", "href": base},
                {
                    "rel": "search",
                    "href": base + "search",
                    "method": "POST",
                    "type": "application/geo+json",
                },
            ],
        }
    )
    httpserver.expect_request("/search", method="POST").respond_with_json(
        {"type": "FeatureCollection", "features": feats, "links": []}
    )
    s = StacProvider(api_url=base).fetch([_grid(tiny_world)], *YEAR)[0]
    np.testing.assert_array_equal(s.data, series.data)
    body = json.loads(httpserver.log[-1][0].get_data())
    assert body["collections"] == ["sentinel-2-c1-l2a"] and len(body["bbox"]) == 4


def test_unreachable_api_is_a_clear_error_after_retries(tiny_world, monkeypatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    import pystac_client

    calls: list[str] = []
    real = pystac_client.Client.open

    def spy(href, *args, **kwargs):
        calls.append(href)
        return real(href, *args, **kwargs)

    monkeypatch.setattr(pystac_client.Client, "open", spy)
    provider = StacProvider(api_url=url, retries=3, backoff_s=0.01)
    with pytest.raises(InputError, match=rf"STAC API {url}: search failed .*refused.*retried 3"):
        provider.fetch([_grid(tiny_world)], *YEAR)
    assert calls == [url]  # retries happen per request inside StacApiIO, not by reopening
    remote = StacProvider(catalog=f"{url}/catalog.json", retries=2, backoff_s=0.01)
    with pytest.raises(InputError, match=rf"STAC catalog {url}/catalog.json: unreadable .*refused"):
        remote.fetch([_grid(tiny_world)], *YEAR)


def test_bad_construction_and_bad_catalogs(tmp_path) -> None:
    with pytest.raises(InputError, match="exactly one"):
        StacProvider()
    with pytest.raises(InputError, match="file not found"):
        StacProvider(catalog=tmp_path / "nope.json").fetch([Grid(0, 0, 1, 1)], *YEAR)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.json: not a readable STAC catalog \("):
        StacProvider(catalog=tmp_path / "bad.json").fetch([Grid(0, 0, 1, 1)], *YEAR)
    with pytest.raises(InputError, match="time range is empty"):
        StacProvider(catalog=tmp_path / "bad.json").fetch([Grid(0, 0, 1, 1)], YEAR[1], YEAR[0])


def _item(props: dict, bands: list | None) -> pystac.Item:
    item = pystac.Item("x", None, None, dt.datetime(2021, 5, 1), props)
    extra = {"raster:bands": bands} if bands is not None else {}
    item.add_asset("red", pystac.Asset("red.tif", extra_fields=extra))
    return item


def test_scale_offset_rules() -> None:
    declared = [{"scale": 0.0001, "offset": -0.1}]
    assert scale_offset(_item({}, declared), "red") == (0.0001, -0.1)
    assert scale_offset(_item({"s2:processing_baseline": "05.09"}, None), "red") == (1e-4, -0.1)
    assert scale_offset(_item({"s2:processing_baseline": "03.01"}, None), "red") == (1e-4, 0.0)
    uri = {"s2:product_uri": "S2B_MSIL2A_20220714T105619_N0400_R094_T31TCJ_20220714T133441.SAFE"}
    assert processing_baseline(_item(uri, None)) == 4.0
    assert scale_offset(_item(uri, None), "red") == (1e-4, -0.1)
    applied = {"s2:processing_baseline": "04.00", "earthsearch:boa_offset_applied": True}
    assert scale_offset(_item(applied, [{"scale": 0.0001}]), "red") == (1e-4, 0.0)


def test_an_item_no_rule_settles_costs_its_date_not_the_year(tiny_world, copy, series) -> None:
    """One item's red asset declares offset -0.1 (raster v1) and 0 (raster v2): one line
    naming it, its date dropped, every other date read exactly as before."""
    items = _items(copy)
    day = series.dates[4]
    iid = items[day].id
    (path,) = [p for p in copy.parent.glob("*/*/*.json") if p.stem == iid]
    d = json.loads(path.read_text())
    d["assets"]["red"]["raster:bands"][0]["offset"] = -0.1
    d["assets"]["red"]["raster:offset"] = 0
    path.write_text(json.dumps(d))
    (s,) = StacProvider(catalog=copy).fetch_each([_grid(tiny_world)], *YEAR)
    keep = [i for i, t in enumerate(series.dates) if t != day]
    assert s.dates == [series.dates[i] for i in keep]
    np.testing.assert_array_equal(s.data, series.data[keep])
    np.testing.assert_array_equal(s.masks, series.masks[keep])
    product = items[day].properties["s2:product_uri"].removesuffix(".SAFE")
    ((skipped_product, line),) = s.skipped
    assert skipped_product == product and "\n" not in line
    assert line.startswith(f"STAC item {iid} (sentinel-2-c1-l2a), asset 'red': ")
    assert "disagree" in line and "its date is dropped" in line
