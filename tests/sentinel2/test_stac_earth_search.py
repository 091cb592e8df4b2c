"""StacProvider end to end on recorded Earth Search v1 responses, replayed by a loopback server.

`../shared/real-samples/stac/earth_search_v1/` holds real responses (landing page, two
search pages with a POST body ``next`` token and mixed collections, items of c1-l2a, l2a
and l1c). The server rewrites their hrefs to itself and serves, behind the asset hrefs,
small COGs made here on the tiles' true UTM pixel grids with constant DN per band, so that
every expected reflectance is a hand computation: ``DN - 1000`` for c1-l2a (baseline
05.11), ``DN`` for the 2025 l2a items (``earthsearch:boa_offset_applied: true``) and for
the 2020 l2a item (baseline 02.14).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
from pyproj import Transformer
from pytest_httpserver import HTTPServer

from flair_pipeline.config import StacSource
from flair_pipeline.errors import InputError
from flair_pipeline.layout import DatasetLayout
from flair_pipeline.sentinel2.factory import build_provider
from flair_pipeline.sentinel2.provider import STAC_ASSETS, Grid, TimeSeries
from flair_pipeline.sentinel2.series import SuperArea, write_series
from flair_pipeline.sentinel2.stac import StacProvider
from tests.sentinel2.stac_replay import Replay, cog, recorded

API = "https://earth-search.aws.element84.com/v1"
HOSTS = {
    "https://e84-earth-search-sentinel-data.s3.us-west-2.amazonaws.com": "c1",
    "https://sentinel-cogs.s3.us-west-2.amazonaws.com": "cogs",
}
DAY = dt.date(2025, 7, 31)
RANGE = (dt.date(2025, 7, 1), dt.date(2025, 8, 31))
TO_L93 = {
    32724: Transformer.from_crs("EPSG:32724", "EPSG:2154", always_xy=True),
    32629: Transformer.from_crs("EPSG:32629", "EPSG:2154", always_xy=True),
}
#: (utm x, utm y) of three places of tiles 24MUV / 24MVV (EPSG:32724): in their overlap,
#: in UV only, in VV only (south of tile 24MUA, inside each item's data footprint).
OVERLAP, UV_ONLY, VV_ONLY = (405000.0, 9485000.0), (385000.0, 9485000.0), (440000.0, 9480000.0)


@pytest.fixture(scope="module")
def rec() -> Path:
    return recorded()


def replay(server: HTTPServer, rec: Path) -> Replay:
    """The recorded Earth Search v1 API and its COG hosts on the loopback `server`."""
    return Replay(server, rec, API, HOSTS)


def refl(band: int) -> int:
    """The reflectance (×10000) every COG of these tests encodes for band index `band`."""
    return 300 + 100 * band


def c1_dn(extra: int = 0) -> dict[str, int]:
    return {k: 1000 + refl(b) + extra for b, k in enumerate(STAC_ASSETS)}


def l2a_dn(extra: int = 0) -> dict[str, int]:
    return {k: refl(b) + extra for b, k in enumerate(STAC_ASSETS)}


def grid_at(xy, epsg: int = 32724, px: int = 12) -> Grid:
    x, y = TO_L93[epsg].transform(*xy)
    return Grid.around((x - px * 5, y - px * 5, x + px * 5, y + px * 5))


def centres_utm(grid: Grid, epsg: int = 32724) -> tuple[np.ndarray, np.ndarray]:
    """UTM coordinates of every grid pixel centre (H, W), by pyproj (independent of GDAL)."""
    cols, rows = np.meshgrid(np.arange(grid.width), np.arange(grid.height))
    x = grid.left + (cols + 0.5) * 10
    y = grid.top - (rows + 0.5) * 10
    inv = Transformer.from_crs("EPSG:2154", f"EPSG:{epsg}", always_xy=True)
    return inv.transform(x, y)


C1 = "sentinel-2-c1-l2a__S2B_T24M{}V_20250731T130245_L2A"
L2A = "sentinel-2-l2a__S2B_24M{}V_20250731_0_L2A"


def test_c1_l2a_two_tiles_one_date_post_token_paging(rec, httpserver: HTTPServer) -> None:
    """Two pages (POST body token), mixed collections kept to c1-l2a, a grid across two MGRS
    tiles mosaicked into one date; reflectance = DN - 1000 exactly, per half."""
    rp = replay(httpserver, rec)
    x, y = OVERLAP
    uv, vv = rp.item(C1.format("U")), rp.item(C1.format("V"))
    rp.serve_item(uv, c1_dn(), (x - 2000, x, y), {"cloud": 30, "snow": 5})
    rp.serve_item(vv, c1_dn(7), (x, x + 2000, y), {"cloud": 70, "snow": 9})
    grid = grid_at(OVERLAP)
    s = StacProvider(api_url=f"{rp.base}/v1", retries=1, backoff_s=0).fetch([grid], *RANGE)[0]

    bodies = rp.searches()
    assert len(bodies) == 2 and bodies[0]["collections"] == ["sentinel-2-c1-l2a"]
    token = "2025-07-31T13:03:25.899000Z,S2B_T24MVV_20250731T130245_L2A,sentinel-2-c1-l2a"
    assert bodies[1] == {"next": token}  # merge: false -> the body is the token alone
    assert s.dates == [DAY] and s.skipped == []
    assert s.products == ["S2B_MSIL2A_20250731T130249_N0511_R095_T24MUV_20250731T132745"]
    ux, _ = centres_utm(grid)
    west, east = ux < x - 3, ux >= x + 3  # pixels clear of the seam by more than 3 m
    assert west.sum() > 20 and east.sum() > 20
    for b in range(10):
        assert (s.data[0, b][west] == refl(b)).all() and (s.data[0, b][east] == refl(b) + 7).all()
    assert (s.masks[0, 1][west] == 30).all() and (s.masks[0, 1][east] == 70).all()
    assert (s.masks[0, 0][west] == 5).all() and (s.masks[0, 0][east] == 9).all()
    items = s.provenance["dates"][0]["items"]
    assert [i["item"] for i in items] == [
        "S2B_T24MUV_20250731T130245_L2A",
        "S2B_T24MVV_20250731T130245_L2A",
    ]
    assert {i["boa_offset_removed_dn"] for i in items} == {1000}


def test_l2a_2025_offset_not_removed_twice_and_scl_masks(rec, httpserver, tmp_path) -> None:
    """l2a items say boa_offset_applied: true and still declare offset -0.1: red 500 stays
    500, NIR 3000 stays 3000. Their cloud/snow are s3:// JP2: masks need scl_masks."""
    rp = replay(httpserver, rec)
    uv = rp.item(L2A.format("U"))
    dn = l2a_dn()
    dn["red"], dn["nir"] = 500, 3000
    rp.serve_item(uv, dn, UV_ONLY, {"scl": 9})
    grid = grid_at(UV_ONLY)
    url = f"{rp.base}/v1"
    with pytest.raises(InputError, match=r"'sentinel-2-l2a'.*sentinel2\.source\.scl_masks: true"):
        StacProvider(api_url=url, collection="sentinel-2-l2a", retries=0).fetch([grid], *RANGE)
    s = StacProvider(api_url=url, collection="sentinel-2-l2a", retries=0, scl_masks=True).fetch(
        [grid], *RANGE
    )[0]
    assert s.dates == [DAY]
    assert (s.data[0, 2] == 500).all() and (s.data[0, 6] == 3000).all()
    assert (s.data[0, 0] == refl(0)).all() and (s.data[0, 9] == refl(9)).all()
    assert (s.masks[0, 0] == 0).all() and (s.masks[0, 1] == 100).all()  # SCL 9: high cloud
    rec_ = s.provenance["dates"][0]["items"][0]
    assert rec_["boa_offset_removed_dn"] == 0 and rec_["offset_rule"] == "flag"
    assert "the flag wins over the asset's raster:bands[0].offset -0.1" in rec_["boa_offset_rule"]
    assert rec_["masks"] == "derived from SCL" and "9->CLD 100" in s.provenance["scl_mapping"]
    layout = DatasetLayout(tmp_path)
    paths = write_series(layout, SuperArea("D001_2025", "Z1_AA", grid, {}), s)
    meta = json.loads(paths[3].read_text())
    assert paths[3].name.endswith("_products.json") and meta["scl_mapping"].startswith("scl-v1")
    assert meta["dates"][0]["date"] == "2025-07-31"


def test_l2a_2020_baseline_0214_static_catalog(rec, httpserver, tmp_path) -> None:
    """The 2020 l2a item (baseline 02.14, offset 0, no cloud/snow assets) from a static
    catalog: DN are reflectances."""
    rp = replay(httpserver, rec)
    d = rp.item("sentinel-2-l2a__S2A_29RKH_20200219_0_L2A.rio-tiler-pds")
    d["links"] = []
    t = d["assets"]["red"]["proj:transform"]
    xy = (t[2] + 30000.0, t[5] - 30000.0)
    rp.serve_item(d, l2a_dn(), xy, {"scl": 11})
    cat = pystac.Catalog("c", "test")
    col = pystac.Collection(
        "sentinel-2-l2a",
        "l2a",
        pystac.Extent.from_dict(
            {"spatial": {"bbox": [d["bbox"]]}, "temporal": {"interval": [[None, None]]}}
        ),
    )
    cat.add_child(col)
    col.add_item(pystac.Item.from_dict(d))
    cat.normalize_and_save(str(tmp_path / "cat"), pystac.CatalogType.SELF_CONTAINED)
    grid = grid_at(xy, 32629)
    prov = StacProvider(
        catalog=tmp_path / "cat" / "catalog.json", collection="sentinel-2-l2a", scl_masks=True
    )
    s = prov.fetch([grid], dt.date(2020, 1, 1), dt.date(2020, 12, 31))[0]
    assert s.dates == [dt.date(2020, 2, 19)]
    for b in range(10):
        assert (s.data[0, b] == refl(b)).all()
    assert (s.masks[0, 0] == 100).all() and (s.masks[0, 1] == 0).all()  # SCL 11: snow
    rec_ = s.provenance["dates"][0]["items"][0]
    assert rec_["offset_rule"] == "flag" and rec_["boa_offset_removed_dn"] == 0
    assert rec_["boa_offset_rule"].startswith(
        "baseline 02.14, earthsearch:boa_offset_applied: false"
    )


def test_same_scene_in_two_collections_never_doubles_a_date(rec, httpserver) -> None:
    """c1-l2a and l2a hold the same datatake: one item per scene, by collection preference."""
    rp = replay(httpserver, rec)
    c1, l2 = rp.item(C1.format("U")), rp.item(L2A.format("U"))
    rp.serve_item(c1, c1_dn(), UV_ONLY, {"cloud": 30, "snow": 5})
    rp.serve_item(l2, l2a_dn(40), UV_ONLY, {"scl": 4})
    grid = grid_at(UV_ONLY)
    url = f"{rp.base}/v1"
    both = ["sentinel-2-c1-l2a", "sentinel-2-l2a"]
    s = StacProvider(api_url=url, collection=both, retries=0, scl_masks=True).fetch([grid], *RANGE)[
        0
    ]
    assert s.dates == [DAY] and (s.data[0, 2] == refl(2)).all()  # the c1 copy, not +40
    assert [i["item"] for i in s.provenance["dates"][0]["items"]] == [c1["id"]]
    assert (
        f"{l2['id']}: duplicate of {c1['id']} (sentinel-2-c1-l2a)"
        in (s.provenance["dropped_duplicates"])
    )
    s2 = StacProvider(api_url=url, collection=both[::-1], retries=0, scl_masks=True).fetch(
        [grid], *RANGE
    )[0]
    assert s2.dates == [DAY] and (s2.data[0, 2] == refl(2) + 40).all()  # the l2a copy


def test_nodata_from_the_file_when_the_item_is_silent(rec, httpserver) -> None:
    """The red asset loses its declared nodata: the file's nodata (1999) then decides."""
    rp = replay(httpserver, rec)
    uv = rp.item(C1.format("U"))
    dn = c1_dn()
    rp.serve_item(uv, dn, UV_ONLY, {"cloud": 30, "snow": 5})
    t = uv["assets"]["red"]["proj:transform"]
    red = cog(1999, (t[2], t[5]), t[0], 32724, UV_ONLY, nodata=1999)
    rp.put(uv["assets"]["red"]["href"], red)
    grid, url = grid_at(UV_ONLY), f"{rp.base}/v1"
    s = StacProvider(api_url=url, retries=0).fetch([grid], *RANGE)[0]
    assert (s.data[0, 2] == 999).all()  # the item says nodata 0: 1999 is data, 1999 - 1000
    rp.edit[uv["id"]] = lambda f: f["assets"]["red"]["raster:bands"][0].pop("nodata")
    s = StacProvider(api_url=url, retries=0).fetch([grid], *RANGE)[0]
    assert (s.data[0, 2] == 0).all() and (s.data[0, 1] == refl(1)).all()


def test_config_reaches_the_provider(rec, httpserver) -> None:
    """sentinel2.source.max_cloud_cover, max_retries, timeouts and scl_masks from the config
    (issue 19 point 5): the cloud filter drops 24MUV (56.8 %) and keeps 24MVV (34.8 %),
    max_retries: 0 makes one 503 fatal after a single request."""
    rp = replay(httpserver, rec)
    rp.serve_item(
        rp.item(C1.format("U")),
        c1_dn(),
        (OVERLAP[0] - 2000, OVERLAP[0], OVERLAP[1]),
        {"cloud": 30, "snow": 5},
    )
    rp.serve_item(
        rp.item(C1.format("V")),
        c1_dn(7),
        (OVERLAP[0], OVERLAP[0] + 2000, OVERLAP[1]),
        {"cloud": 70, "snow": 9},
    )
    url = f"{rp.base}/v1"
    cfg = StacSource(
        api_url=url,
        max_cloud_cover=40,
        max_retries=0,
        connect_timeout_s=3,
        read_timeout_s=4,
        retry_backoff_s=0,
        scl_masks=True,
    )
    prov = build_provider(cfg, Path("unused"))
    assert (prov.retries, prov.timeouts, prov.scl_masks) == (0, (3, 4), True)
    assert prov.gdal_env["GDAL_HTTP_MAX_RETRY"] == "0" and prov.gdal_env["GDAL_HTTP_TIMEOUT"] == "7"
    s = prov.fetch([grid_at(OVERLAP)], *RANGE)[0]
    assert [i["item"] for i in s.provenance["dates"][0]["items"]] == [
        "S2B_T24MVV_20250731T130245_L2A"
    ]
    ux, _ = centres_utm(grid_at(OVERLAP))
    assert (s.data[0, 2][ux < OVERLAP[0] - 3] == 0).all()  # 24MUV's half is empty
    assert (s.data[0, 2][ux >= OVERLAP[0] + 3] == refl(2) + 7).all()
    rp.page_fail[1] = [(503, {})]
    n = len(rp.searches())
    with pytest.raises(InputError, match="503"):
        build_provider(cfg, Path("unused")).fetch([grid_at(OVERLAP)], *RANGE)
    assert len(rp.searches()) == n + 1
    two = cfg.model_copy(update={"collection": "sentinel-2-c1-l2a, sentinel-2-l2a"})
    assert build_provider(two, Path("unused")).collections == [
        "sentinel-2-c1-l2a",
        "sentinel-2-l2a",
    ]


def test_one_date_across_two_utm_zones(rec, httpserver, tmp_path) -> None:
    """The real 24MVV item (EPSG:32724) and a copy of it moved to UTM zone 25 (EPSG:32725, a
    different id and tile) on the same day: one date, each pixel from the zone that has it."""
    rp = replay(httpserver, rec)
    vv = rp.item(C1.format("V"))
    x, y = VV_ONLY
    to25 = Transformer.from_crs("EPSG:32724", "EPSG:32725", always_xy=True)
    x25, y25 = to25.transform(x, y)
    z25 = json.loads(json.dumps(vv).replace("T24MVV", "T25MBV"))
    z25["id"] = vv["id"].replace("T24MVV", "T25MBV")
    z25["properties"].update({"proj:epsg": 32725, "grid:code": "MGRS-25MBV", "mgrs:utm_zone": 25})
    for a in z25["assets"].values():
        if "proj:transform" in a:  # a true zone-25 tile origin west of the place
            res = a["proj:transform"][0]
            a["proj:transform"] = [res, 0, float(x25 // 60 * 60 - 60000), 0, -res, 9500020.0]
    rp.serve_item(vv, c1_dn(), (x - 2000, x, y), {"cloud": 30, "snow": 5})
    rp.serve_item(z25, c1_dn(11), (x25, y25), {"cloud": 70, "snow": 9})
    cat = pystac.Catalog("c", "test")
    col = pystac.Collection(
        "sentinel-2-c1-l2a",
        "c1",
        pystac.Extent.from_dict(
            {"spatial": {"bbox": [vv["bbox"]]}, "temporal": {"interval": [[None, None]]}}
        ),
    )
    cat.add_child(col)
    for d in (vv, z25):
        d["links"] = []
        col.add_item(pystac.Item.from_dict(d))
    cat.normalize_and_save(str(tmp_path / "cat"), pystac.CatalogType.SELF_CONTAINED)
    grid = grid_at(VV_ONLY)
    s = StacProvider(catalog=tmp_path / "cat" / "catalog.json").fetch([grid], *RANGE)[0]
    assert s.dates == [DAY] and len(s.provenance["dates"][0]["items"]) == 2
    ux, _ = centres_utm(grid)
    west, east = ux < x - 3, ux >= x + 3  # 24MVV (first by id) covers only the west
    assert west.sum() > 20 and east.sum() > 20
    for b in range(10):
        assert (s.data[0, b][west] == refl(b)).all()
        assert (s.data[0, b][east] == refl(b) + 11).all()


def test_item_crs_contradicting_its_file_skips_the_date(rec, httpserver) -> None:
    rp = replay(httpserver, rec)
    uv = rp.item(C1.format("U"))
    rp.serve_item(uv, c1_dn(), UV_ONLY, {"cloud": 30, "snow": 5})
    rp.edit[uv["id"]] = lambda f: f["properties"].update({"proj:epsg": 32725})
    (res,) = StacProvider(api_url=f"{rp.base}/v1", retries=0).fetch_each([grid_at(UV_ONLY)], *RANGE)
    assert isinstance(res, InputError)
    assert "file CRS EPSG:32724 but the item says EPSG:32725" in str(res)


def _declare(flag: bool | None = None, v1: float | None = None, v2: float | None = None):
    """An item edit: baseline 05.10, each band's offset declared as raster v1 (`v1`, in
    ``raster:bands``), raster v2 (`v2`, asset-level ``raster:offset``/``raster:scale``,
    STAC 1.1) or not at all, and ``earthsearch:boa_offset_applied`` set to `flag`."""

    def edit(f: dict) -> None:
        f["properties"]["s2:processing_baseline"] = "05.10"
        if flag is not None:
            f["properties"]["earthsearch:boa_offset_applied"] = flag
        for key in STAC_ASSETS:
            a = f["assets"][key]
            bands = a.pop("raster:bands")
            for b in bands:
                b.pop("offset", None)
            if v1 is not None:
                bands[0]["offset"] = v1
            a["raster:bands"] = bands
            if v2 is not None:
                a["raster:offset"], a["raster:scale"] = v2, 1e-4

    return edit


#: edit, red DN served, red reflectance expected (by hand), rule that won, DN removed
HARMONISED = [
    # issue 29: a harmonised catalogue declares raster:offset 0 at 05.10: 500 stays 500
    (_declare(v2=0.0), 500, 500, "asset", 0),
    (_declare(v1=0.0), 500, 500, "asset", 0),
    (_declare(), 1500, 500, "table", 1000),  # nothing declared: ESA's table, 1000 removed
    (_declare(v2=-0.1), 1500, 500, "asset", 1000),  # CDSE's declaration
    (_declare(flag=True, v1=-0.1), 500, 500, "flag", 0),  # Earth Search l2a (#66)
    (_declare(flag=True), 500, 500, "flag", 0),
    (_declare(flag=False, v2=0.0), 1500, 500, "flag", 1000),  # the flag says ESA's DN
    (_declare(flag=False, v1=-0.1), 1500, 500, "flag", 1000),
]


@pytest.mark.parametrize(("edit", "red", "expected", "rule", "removed"), HARMONISED)
def test_declared_scale_and_offset_win_unless_the_catalogue_flag_says_otherwise(
    rec, httpserver, edit, red, expected, rule, removed
) -> None:
    rp = replay(httpserver, rec)
    uv = rp.item(C1.format("U"))
    dn = {k: refl(b) + removed for b, k in enumerate(STAC_ASSETS)}
    dn["red"] = red
    rp.serve_item(uv, dn, UV_ONLY, {"cloud": 30, "snow": 5})
    rp.edit[uv["id"]] = edit
    (s,) = StacProvider(api_url=f"{rp.base}/v1", retries=0).fetch([grid_at(UV_ONLY)], *RANGE)
    assert s.dates == [DAY] and s.skipped == []
    assert (s.data[0, 2] == expected).all()
    assert (s.data[0, 0] == refl(0)).all() and (s.data[0, 9] == refl(9)).all()
    got = s.provenance["dates"][0]["items"][0]
    assert (got["offset_rule"], got["boa_offset_removed_dn"]) == (rule, removed)
    assert got["scale"] == 1e-4 and got["offset"] == pytest.approx(-removed * 1e-4)
    assert "bands" not in got  # every band decided alike


def test_contradicting_declarations_cost_their_date_not_the_search(rec, httpserver) -> None:
    """Two tiles on one date: the item whose red asset says offset -0.1 (raster v1) and 0
    (raster v2) is one line naming it; the grid it alone covers loses that date, the grid
    of the sound item keeps it."""
    rp = replay(httpserver, rec)
    uv, vv = rp.item(C1.format("U")), rp.item(C1.format("V"))
    rp.serve_item(uv, c1_dn(), UV_ONLY, {"cloud": 30, "snow": 5})
    rp.serve_item(vv, c1_dn(), VV_ONLY, {"cloud": 30, "snow": 5})

    def contradict(f: dict) -> None:
        f["assets"]["red"]["raster:offset"] = 0

    rp.edit[uv["id"]] = contradict
    prov = StacProvider(api_url=f"{rp.base}/v1", retries=0)
    bad, good = prov.fetch_each([grid_at(UV_ONLY), grid_at(VV_ONLY)], *RANGE)
    assert isinstance(bad, InputError) and isinstance(good, TimeSeries)
    assert str(bad).count(uv["id"]) == 1 and "\n" not in str(bad)
    assert "raster:bands[0].offset -0.1 and raster:offset 0 disagree" in str(bad)
    assert good.dates == [DAY] and (good.data[0, 2] == refl(2)).all() and good.skipped == []
