"""StacProvider pixel values on hand-made UTM COGs: several grids, edges, mosaics, date range.

The archive is written here: a 10 m source raster whose pixels hold their own row (and one
holding its column), 1000 x 600 px so that a window with rows and columns swapped lands
somewhere else entirely, and a 20 m one. Every expected value comes from projecting each
grid pixel centre to UTM with pyproj and reading the row and column off the source
transform (``floor``), then removing the 1000 DN BOA offset of processing baseline 05.00 by
hand. Pixels whose centre lies within 0.05 px of a source pixel edge are left out of the
exact comparison (GDAL's warper approximates the projection to a small fraction of a pixel).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.warp import transform_bounds

from flair_pipeline.sentinel2.provider import STAC_ASSETS, STAC_MASK_ASSETS, Grid
from flair_pipeline.sentinel2.stac import StacProvider

UTM = "EPSG:32631"
H, W = 1000, 600  # non-square source tile
ROW0, COL0 = 700, 120  # where the main grid sits in it: far off the diagonal
BASE = 2000  # DN = BASE + row (or column): > 1000, so the BOA offset leaves a positive value
TO_UTM = Transformer.from_crs("EPSG:2154", UTM, always_xy=True)
TO_L93 = Transformer.from_crs(UTM, "EPSG:2154", always_xy=True)
L93_LEFT, L93_TOP = 650_000.0, 6_860_000.0
MARGIN = 0.05


def _src_transform(res: float) -> Affine:
    ux, uy = TO_UTM.transform(L93_LEFT, L93_TOP)
    return Affine(res, 0.0, ux - COL0 * 10.0 + 3.7, 0.0, -res, uy + ROW0 * 10.0 - 2.9)


T10, T20 = _src_transform(10.0), _src_transform(20.0)


def _write(
    path: Path, data: np.ndarray, transform: Affine, nodata: int | None = 0, crs: str | None = UTM
) -> str:
    profile = dict(
        driver="GTiff",
        height=data.shape[0],
        width=data.shape[1],
        count=1,
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
        tiled=True,
        blockxsize=256,
        blockysize=256,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return str(path)


def _files(tmp: Path) -> dict[str, str]:
    r, c = np.mgrid[0:H, 0:W]
    r20, c20 = np.mgrid[0 : H // 2, 0 : W // 2]
    half = (BASE + 3 * r).astype(np.uint16)
    half[:, : COL0 + 6] = 0  # nodata left of about the wide grid's fourth column: mosaic test
    return {
        "rows": _write(tmp / "rows.tif", (BASE + r).astype(np.uint16), T10),
        "cols": _write(tmp / "cols.tif", (BASE + c).astype(np.uint16), T10),
        "rows20": _write(tmp / "rows20.tif", (BASE + r20 + 7 * c20).astype(np.uint16), T20),
        "cloud": _write(tmp / "cloud.tif", ((r + c) % 101).astype(np.uint8), T10, nodata=255),
        "half": _write(tmp / "half.tif", half, T10),
    }


def _item(iid: str, day: dt.date, hrefs: dict[str, str]) -> pystac.Item:
    w, s, e, n = transform_bounds(UTM, "EPSG:4326", *rasterio.transform.array_bounds(H, W, T10))
    item = pystac.Item(
        iid,
        shapely.geometry.mapping(shapely.box(w, s, e, n)),
        [w, s, e, n],
        dt.datetime(day.year, day.month, day.day, 10, 30, tzinfo=dt.UTC),
        {"s2:processing_baseline": "05.00", "s2:product_uri": f"{iid}.SAFE"},
    )
    for key in (*STAC_ASSETS, *STAC_MASK_ASSETS):
        item.add_asset(key, pystac.Asset(hrefs[key], media_type=pystac.MediaType.COG))
    return item


def _catalog(tmp: Path, items: list[pystac.Item]) -> Path:
    cat = pystac.Catalog("root", "test archive")
    coll = pystac.Collection(
        "sentinel-2-c1-l2a",
        "test",
        pystac.Extent(
            pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])
        ),
    )
    cat.add_child(coll)
    coll.add_items(items)
    cat.normalize_hrefs(str(tmp / "stac"))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    return tmp / "stac" / "catalog.json"


def _hrefs(f: dict[str, str], spectral: str = "rows") -> dict[str, str]:
    h = {k: f[spectral] for k in STAC_ASSETS}
    h["green"] = f["cols"] if spectral == "rows" else f[spectral]
    h["rededge1"] = f["rows20"] if spectral == "rows" else f[spectral]
    h["cloud"] = h["snow"] = f["cloud"]
    return h


def _source_rc(grid: Grid, transform: Affine) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, clear) of the source pixel under each grid pixel centre; `clear` is False
    within MARGIN px of a source pixel edge."""
    rr, cc = np.mgrid[0 : grid.height, 0 : grid.width]
    x = grid.left + (cc + 0.5) * 10.0
    y = grid.top - (rr + 0.5) * 10.0
    ux, uy = TO_UTM.transform(x, y)
    col, row = ~transform * (ux, uy)
    fr, fc = row - np.floor(row), col - np.floor(col)
    clear = (np.minimum(fr, 1 - fr) > MARGIN) & (np.minimum(fc, 1 - fc) > MARGIN)
    return np.floor(row).astype(int), np.floor(col).astype(int), clear


def _expected(grid: Grid) -> dict[str, np.ndarray]:
    """Expected reflectance x 10000 of blue (row), green (column), rededge1 (20 m), CLD."""
    r, c, clear = _source_rc(grid, T10)
    r20, c20, clear20 = _source_rc(grid, T20)
    inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
    inside20 = (r20 >= 0) & (r20 < H // 2) & (c20 >= 0) & (c20 < W // 2)
    return {
        "clear": clear & clear20,
        "inside": inside,
        "blue": np.where(inside, BASE + r - 1000, 0),
        "green": np.where(inside, BASE + c - 1000, 0),
        "rededge1": np.where(inside20, BASE + r20 + 7 * c20 - 1000, 0),
        "cld": np.where(inside, (r + c) % 101, 0),
    }


def _check(series, grid: Grid, t: int = 0) -> None:
    e = _expected(grid)
    ok = e["clear"]
    assert ok.mean() > 0.7, "too few pixels away from source edges to compare"
    for band, name in ((0, "blue"), (1, "green"), (3, "rededge1")):
        got = series.data[t, band].astype(int)
        np.testing.assert_array_equal(got[ok], e[name][ok], err_msg=f"{name} on {grid}")
    np.testing.assert_array_equal(series.masks[t, 1].astype(int)[ok], e["cld"][ok])


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("s2win")
    f = _files(tmp)
    items = [
        _item(f"S2B_{d:%Y%m%d}", d, _hrefs(f))
        for d in (
            dt.date(2021, 3, 31),
            dt.date(2021, 4, 1),
            dt.date(2021, 6, 15),
            dt.date(2021, 9, 30),
            dt.date(2021, 10, 1),
        )
    ]
    return _catalog(tmp, items), f


GRIDS = {
    "square": Grid(L93_LEFT, L93_TOP, 6, 6),
    "wide": Grid(L93_LEFT + 30.0, L93_TOP - 20.0, 11, 4),
    "tall": Grid(L93_LEFT - 40.0, L93_TOP + 50.0, 3, 13),
}


def test_values_on_several_grids_at_once(archive) -> None:
    """Square and non-square grids, off the source diagonal, read in one call."""
    cat, _ = archive
    out = StacProvider(catalog=cat).fetch(
        list(GRIDS.values()), dt.date(2021, 4, 1), dt.date(2021, 9, 30)
    )
    for grid, series in zip(GRIDS.values(), out, strict=True):
        assert series.data.shape == (3, 10, grid.height, grid.width)
        for t in range(3):
            _check(series, grid, t)


def test_first_and_last_day_of_the_range_are_kept(archive) -> None:
    cat, _ = archive
    (s,) = StacProvider(catalog=cat).fetch(
        [GRIDS["square"]], dt.date(2021, 4, 1), dt.date(2021, 9, 30)
    )
    assert s.dates == [dt.date(2021, 4, 1), dt.date(2021, 6, 15), dt.date(2021, 9, 30)]
    assert s.products == ["S2B_20210401", "S2B_20210615", "S2B_20210930"]
    (one,) = StacProvider(catalog=cat).fetch(
        [GRIDS["square"]], dt.date(2021, 10, 1), dt.date(2021, 10, 1)
    )
    assert one.dates == [dt.date(2021, 10, 1)]


def _edge_grid(col: float, row: float, width: int, height: int) -> Grid:
    """A grid whose top-left pixel centre is the centre of source pixel (col, row).

    Its origin is off the 10 m lattice on purpose: every pixel centre then falls near a
    source pixel centre, far from the edges where the warp's approximation could tip it.
    """
    x, y = TO_L93.transform(*(T10 * (col + 0.5, row + 0.5)))
    return Grid(x - 5.0, y + 5.0, width, height)


@pytest.mark.parametrize(
    ("name", "col", "row", "width", "height"),
    [
        ("first_row", 200, -3, 5, 7),
        ("last_row", 300, H - 4, 7, 5),
        ("first_col", -3, 400, 6, 6),
        ("last_col", W - 4, 500, 8, 4),
        ("first_pixel", -3, -2, 6, 5),  # the source's pixel (0, 0) is read
        ("last_pixel", W - 3, H - 2, 5, 4),
    ],
)
def test_grids_across_each_source_edge(archive, name, col, row, width, height) -> None:
    """Pixels beyond the tile's first/last row or column are nodata (0), the rest exact."""
    cat, _ = archive
    grid = _edge_grid(col, row, width, height)
    (s,) = StacProvider(catalog=cat).fetch([grid], dt.date(2021, 6, 15), dt.date(2021, 6, 15))
    e = _expected(grid)
    assert 0 < e["inside"].sum() < grid.width * grid.height, "grid must straddle the edge"
    _check(s, grid)
    assert not s.data[0][:, ~e["inside"] & e["clear"]].any()


def test_same_date_items_mosaic_pixel_by_pixel(archive, tmp_path) -> None:
    """Two items on one date: where the first (by id) has data it wins, elsewhere the second."""
    _, f = archive
    day = dt.date(2021, 6, 15)
    first = _item("S2A_20210615_A", day, _hrefs(f, "half"))
    second = _item("S2B_20210615_B", day, _hrefs(f, "rows"))
    cat = _catalog(tmp_path, [second, first])
    grid = GRIDS["wide"]
    (s,) = StacProvider(catalog=cat).fetch([grid], day, day)
    r, c, clear = _source_rc(grid, T10)
    a_valid = c >= COL0 + 6
    assert a_valid.any() and (~a_valid).any(), "the grid must straddle item A's nodata edge"
    expected = np.where(a_valid, BASE + 3 * r - 1000, BASE + r - 1000)
    np.testing.assert_array_equal(s.data[0, 0][clear], expected[clear])
    expected_green = np.where(a_valid, BASE + 3 * r - 1000, BASE + c - 1000)
    np.testing.assert_array_equal(s.data[0, 1][clear], expected_green[clear])
    assert s.dates == [day] and s.products == ["S2A_20210615_A"]


# --- reflectance, nodata, masks and CRS of each asset ----------------------------------------


def test_to_reflectance_by_hand() -> None:
    """DN x scale + offset, x 10000, rounded, clipped to uint16; nodata pixels are 0."""
    from flair_pipeline.sentinel2.stac import to_reflectance

    dn = np.array([[0, 1, 999, 1000, 1001], [1500, 7, 40000, 65535, 7]], np.uint16)
    # baseline >= 04.00: offset -0.1 (-1000 DN); nodata 0
    got = to_reflectance(dn, 1e-4, -0.1, 0)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, [[0, 0, 0, 0, 1], [500, 0, 39000, 64535, 0]])
    # no offset, a scale pushing past uint16, nodata 7
    got = to_reflectance(dn, 2e-4, 0.0, 7)
    np.testing.assert_array_equal(got, [[0, 2, 1998, 2000, 2002], [3000, 0, 65535, 65535, 0]])


def _grid_item(
    iid: str, day: dt.date, hrefs: dict[str, str], baseline: str = "05.00", **props: object
) -> pystac.Item:
    item = _item(iid, day, hrefs)
    item.properties["s2:processing_baseline"] = baseline
    item.properties.update(props)
    return item


def _band_files(tmp: Path, nodata: int | None, crs: str | None = UTM) -> str:
    """rows + BASE with rows of 7s, 0s and 1s from ROW0 on, for the nodata rules."""
    r, _ = np.mgrid[0:H, 0:W]
    data = (BASE + r).astype(np.uint16)
    data[ROW0 : ROW0 + 3, :] = 7
    data[ROW0 + 3 : ROW0 + 5, :] = 0
    data[ROW0 + 5 : ROW0 + 7, :] = 1
    return _write(tmp / f"nod{nodata}_{crs}.tif".replace(":", ""), data, T10, nodata, crs)


@pytest.mark.parametrize(
    ("file_nodata", "declared", "nodata"),
    [(7, None, 7), (None, 7, 7), (None, None, 0), (0, 7, 7)],
)
def test_nodata_is_the_items_else_the_files_else_0(
    archive, tmp_path: Path, file_nodata: int | None, declared: int | None, nodata: int
) -> None:
    """Baseline 02.14 (no BOA offset), so DN = reflectance x 10000 and a DN of 7 or 0 shows
    as itself unless it is the nodata value (then 0)."""
    _, f = archive
    band = _band_files(tmp_path, file_nodata)
    day = dt.date(2021, 6, 15)
    item = _grid_item("S2B_20210615", day, _hrefs({**f, "nod": band}, "nod"), "02.14")
    if declared is not None:
        for key in STAC_ASSETS:
            item.assets[key].extra_fields["raster:bands"] = [{"nodata": declared}]
    cat = _catalog(tmp_path, [item])
    grid = _edge_grid(COL0, ROW0 - 1, 4, 8)  # rows ROW0-1 .. ROW0+6 of the source
    (s,) = StacProvider(catalog=cat).fetch([grid], day, day)
    r, _, clear = _source_rc(grid, T10)
    dn = np.select([r < ROW0, r < ROW0 + 3, r < ROW0 + 5, r < ROW0 + 7], [BASE + r, 7, 0, 1])
    expected = np.where(dn == nodata, 0, dn)
    assert {7, 0, 1} <= set(dn[clear].tolist())
    np.testing.assert_array_equal(s.data[0, 0][clear], expected[clear])


def test_a_file_without_crs_takes_the_items_and_a_contradiction_is_refused(
    archive, tmp_path: Path
) -> None:
    _, f = archive
    day = dt.date(2021, 6, 15)
    band = _band_files(tmp_path, 0, crs=None)
    grid = _edge_grid(COL0, ROW0 - 1, 4, 8)
    cases = {"EPSG:32631": None, None: "has no CRS in the file nor proj:code/proj:epsg"}
    for code, error in cases.items():
        props = {"proj:code": code} if code else {}
        item = _grid_item("S2B_20210615", day, _hrefs({**f, "nod": band}, "nod"), **props)
        (res,) = StacProvider(catalog=_catalog(tmp_path / str(code), [item])).fetch_each(
            [grid], day, day
        )
        if error is None:
            r, _, clear = _source_rc(grid, T10)
            assert not isinstance(res, Exception)
            np.testing.assert_array_equal(
                res.data[0, 0][clear & (r < ROW0)], (BASE + r - 1000)[clear & (r < ROW0)]
            )
        else:
            assert isinstance(res, Exception) and f"asset 'blue' {error}" in str(res)
    item = _grid_item("S2B_20210615", day, _hrefs(f), **{"proj:code": "EPSG:32632"})
    (res,) = StacProvider(catalog=_catalog(tmp_path / "other", [item])).fetch_each([grid], day, day)
    assert isinstance(res, Exception)
    assert "asset 'blue': file CRS EPSG:32631 but the item says EPSG:32632" in str(res)
    ok = _grid_item("S2B_20210615", day, _hrefs(f), **{"proj:code": UTM})
    (res,) = StacProvider(catalog=_catalog(tmp_path / "same", [ok])).fetch_each([grid], day, day)
    assert not isinstance(res, Exception)


def test_a_missing_band_asset_is_named_with_every_key_tried(archive, tmp_path: Path) -> None:
    _, f = archive
    day = dt.date(2021, 6, 15)
    item = _grid_item("S2B_20210615", day, _hrefs(f))
    del item.assets["blue"]
    (res,) = StacProvider(catalog=_catalog(tmp_path, [item])).fetch_each(
        [GRIDS["square"]], day, day
    )
    assert isinstance(res, Exception)
    assert "S2B_20210615: asset 'blue' / 'B02' / 'B02_10m' missing" in str(res)


def test_masks_from_the_scene_classification(archive, tmp_path: Path) -> None:
    """An item with an ``scl`` asset (20 m) and no cloud/snow probabilities: SNW 100 on
    class 11, CLD 65 on 8 and 10, 100 on 9, 0 elsewhere (the documented scl-v1 table)."""
    _, f = archive
    r20, c20 = np.mgrid[0 : H // 2, 0 : W // 2]
    scl = _write(tmp_path / "scl.tif", ((r20 + 5 * c20) % 12).astype(np.uint8), T20)
    day = dt.date(2021, 6, 15)
    item = _grid_item("S2B_20210615", day, _hrefs(f))
    for key in STAC_MASK_ASSETS:
        del item.assets[key]
    item.add_asset("scl", pystac.Asset(scl, media_type=pystac.MediaType.COG))
    (s,) = StacProvider(catalog=_catalog(tmp_path, [item]), scl_masks=True).fetch(
        [GRIDS["wide"]], day, day
    )
    r, c, clear = _source_rc(GRIDS["wide"], T20)
    cls = (r + 5 * c) % 12
    snw = np.where(cls == 11, 100, 0)
    cld = np.select([cls == 9, (cls == 8) | (cls == 10)], [100, 65], 0)
    assert {0, 65, 100} <= set(cld[clear].tolist()) and (snw[clear] == 100).any()
    np.testing.assert_array_equal(s.masks[0, 0][clear], snw[clear])
    np.testing.assert_array_equal(s.masks[0, 1][clear], cld[clear])


def test_probability_masks_are_clipped_to_100(archive, tmp_path: Path) -> None:
    _, f = archive
    r, c = np.mgrid[0:H, 0:W]
    cloud = _write(tmp_path / "c256.tif", ((7 * r + 13 * c) % 256).astype(np.uint8), T10, nodata=0)
    day = dt.date(2021, 6, 15)
    item = _grid_item("S2B_20210615", day, {**_hrefs(f), "cloud": cloud})
    (s,) = StacProvider(catalog=_catalog(tmp_path, [item])).fetch([GRIDS["wide"]], day, day)
    rr, cc, clear = _source_rc(GRIDS["wide"], T10)
    expected = np.minimum((7 * rr + 13 * cc) % 256, 100)
    assert (expected[clear] == 100).sum() > 5 and (expected[clear] < 100).any()
    np.testing.assert_array_equal(s.masks[0, 1][clear], expected[clear])


def test_a_grid_outside_the_raster_does_not_stop_the_next_one(archive, tmp_path: Path) -> None:
    """An item whose footprint is wider than its rasters (0.1 degree more to the west): a
    grid there is read as nodata and the other grid of the same read is still filled."""
    _, f = archive
    day = dt.date(2021, 6, 15)
    item = _grid_item("S2B_20210615", day, _hrefs(f))
    w, s_, e, n = item.bbox
    item.bbox = [w - 0.1, s_, e, n]
    item.geometry = shapely.geometry.mapping(shapely.box(w - 0.1, s_, e, n))
    fx, fy = TO_L93.transform(*(T10 * (-200, 300)))  # 2 km west of the raster
    outside = Grid(fx, fy, 4, 4)
    res = StacProvider(catalog=_catalog(tmp_path, [item])).fetch_each(
        [outside, GRIDS["square"]], day, day
    )
    assert isinstance(res[0], Exception) and "no valid pixel over the grid" in str(res[0])
    assert not isinstance(res[1], Exception)
    _check(res[1], GRIDS["square"])


def test_index_map_of_a_grid_off_the_raster_is_none() -> None:
    from flair_pipeline.sentinel2.stac import _index_map

    fx, fy = TO_L93.transform(*(T10 * (-200, 300)))
    assert _index_map(Grid(fx, fy, 4, 4), UTM, T10, H, W) is None
    hit = _index_map(GRIDS["square"], UTM, T10, H, W)
    assert hit is not None and hit[2].all()  # every pixel of the square grid is inside


# --- scenes: dates, footprints, mask sources, offsets, same-date mosaics ---------------------


def test_overlaps_needs_both_axes_and_more_than_an_edge() -> None:
    from rasterio.windows import Window

    from flair_pipeline.sentinel2.stac import _overlaps

    h, w = 10, 20
    assert _overlaps(Window(19, 9, 5, 5), h, w)  # the last pixel
    assert _overlaps(Window(-4, -4, 5, 5), h, w)  # the first pixel
    assert not _overlaps(Window(20, 0, 5, 5), h, w)  # starts at the right edge
    assert not _overlaps(Window(0, 10, 5, 5), h, w)  # starts at the bottom edge
    assert not _overlaps(Window(-5, 0, 5, 5), h, w)  # ends at the left edge
    assert not _overlaps(Window(0, -5, 5, 5), h, w)  # ends at the top edge
    assert not _overlaps(Window(30, 0, 5, 5), h, w)  # rows overlap, columns do not
    assert not _overlaps(Window(0, 30, 5, 5), h, w)  # columns overlap, rows do not
    assert not _overlaps(Window(-30, 2, 5, 5), h, w)
    assert not _overlaps(Window(2, -30, 5, 5), h, w)


def test_three_items_of_one_date_each_fill_only_what_is_left(archive, tmp_path: Path) -> None:
    """A (first by id) has data left of column COL0+6, B left of COL0+9, C everywhere:
    A's pixels stay A's, B fills COL0+6..+8, C the rest."""
    _, f = archive
    r, _ = np.mgrid[0:H, 0:W]
    files = {}
    for name, mult, last in (("A", 3, COL0 + 6), ("B", 5, COL0 + 9), ("C", 1, W)):
        data = (BASE + mult * r).astype(np.uint16)
        data[:, last:] = 0
        files[name] = _write(tmp_path / f"{name}.tif", data, T10)
    day = dt.date(2021, 6, 15)
    items = [_item(f"S2B_20210615_{n}", day, _hrefs({**f, "x": p}, "x")) for n, p in files.items()]
    cat = _catalog(tmp_path, items[::-1])
    grid = GRIDS["wide"]
    (s,) = StacProvider(catalog=cat).fetch([grid], day, day)
    rr, cc, clear = _source_rc(grid, T10)
    mult = np.select([cc < COL0 + 6, cc < COL0 + 9], [3, 5], 1)
    assert {1, 3, 5} <= set(mult[clear].tolist()), "the grid must cross both edges"
    np.testing.assert_array_equal(s.data[0, 0][clear], (BASE + mult * rr - 1000)[clear])
    items_of_day = s.provenance["dates"][0]["items"]
    assert [i["item"] for i in items_of_day] == [f"S2B_20210615_{n}" for n in "ABC"]


def test_each_date_records_its_offset_rule_and_mask_source(archive, tmp_path: Path) -> None:
    _, f = archive
    old, new = dt.date(2021, 6, 15), dt.date(2021, 6, 20)
    items = [
        _grid_item("S2B_20210615", old, _hrefs(f), "02.14"),
        _grid_item("S2B_20210620", new, _hrefs(f), "05.00"),
    ]
    (s,) = StacProvider(catalog=_catalog(tmp_path, items)).fetch([GRIDS["square"]], old, new)
    got = [d["items"] for d in s.provenance["dates"]]
    assert got == [
        [
            {
                "item": "S2B_20210615",
                "collection": "sentinel-2-c1-l2a",
                "product": "S2B_20210615",
                "scale": 1e-4,
                "offset": 0.0,
                "boa_offset_removed_dn": 0,
                "offset_rule": "table",
                "boa_offset_rule": "baseline 02.14 < 04.00: DN carry no BOA offset",
                "masks": "cloud/snow assets",
            }
        ],
        [
            {
                "item": "S2B_20210620",
                "collection": "sentinel-2-c1-l2a",
                "product": "S2B_20210620",
                "scale": 1e-4,
                "offset": pytest.approx(-0.1),
                "boa_offset_removed_dn": 1000,
                "offset_rule": "table",
                "boa_offset_rule": "baseline 05.00: DN carry +1000, removed once",
                "masks": "cloud/snow assets",
            }
        ],
    ]
    assert "scl_mapping" not in s.provenance
    r, _, clear = _source_rc(GRIDS["square"], T10)
    np.testing.assert_array_equal(s.data[0, 0][clear], (BASE + r)[clear])  # no offset
    np.testing.assert_array_equal(s.data[1, 0][clear], (BASE + r - 1000)[clear])


def test_an_item_dated_by_its_range_only(archive, tmp_path: Path) -> None:
    """STAC allows ``datetime: null`` with start/end_datetime: the start gives the date."""
    _, f = archive
    item = _grid_item("S2B_20210615", dt.date(2021, 6, 15), _hrefs(f))
    item.datetime = None
    item.properties["start_datetime"] = "2021-06-16T10:30:00Z"
    item.properties["end_datetime"] = "2021-06-16T10:31:00Z"
    cat = _catalog(tmp_path, [item])
    (s,) = StacProvider(catalog=cat).fetch(
        [GRIDS["square"]], dt.date(2021, 6, 1), dt.date(2021, 6, 30)
    )
    assert s.dates == [dt.date(2021, 6, 16)]


def test_the_item_footprint_not_its_bbox_decides(archive, tmp_path: Path) -> None:
    """A partial tile: the item's geometry is the raster's western half (a real L2A tile
    at a swath edge); a grid in the eastern half is inside its bbox but not its footprint."""
    _, f = archive
    day = dt.date(2021, 6, 15)
    item = _grid_item("S2B_20210615", day, _hrefs(f))
    w, s_, e, n = item.bbox
    item.geometry = shapely.geometry.mapping(shapely.box(w, s_, (w + e) / 2, n))
    ex, ey = TO_L93.transform(*(T10 * (W - 50, 300)))  # 50 px from the raster's east edge
    east = Grid(ex, ey, 4, 4)
    res = StacProvider(catalog=_catalog(tmp_path, [item])).fetch_each(
        [east, GRIDS["square"]], day, day
    )
    assert isinstance(res[0], Exception) and "no Sentinel-2 item intersects it" in str(res[0])
    assert not isinstance(res[1], Exception)


def test_mask_sources_and_their_errors(archive, tmp_path: Path) -> None:
    _, f = archive
    day = dt.date(2021, 6, 15)
    scl_only = _grid_item("S2B_20210615", day, _hrefs(f))
    for key in STAC_MASK_ASSETS:
        del scl_only.assets[key]
    scl_only.add_asset("scl", pystac.Asset(f["cloud"], media_type=pystac.MediaType.COG))
    with pytest.raises(Exception, match="has no readable 'cloud'/'snow' probability assets: "):
        StacProvider(catalog=_catalog(tmp_path / "a", [scl_only])).fetch_each(
            [GRIDS["square"]], day, day
        )
    (s,) = StacProvider(catalog=_catalog(tmp_path / "b", [scl_only]), scl_masks=True).fetch(
        [GRIDS["square"]], day, day
    )
    assert s.provenance["dates"][0]["items"][0]["masks"] == "derived from SCL"
    assert s.provenance["scl_mapping"].startswith("scl-v1")
    neither = _grid_item("S2B_20210615", day, _hrefs(f))
    for key in STAC_MASK_ASSETS:
        del neither.assets[key]
    for scl in (False, True):
        with pytest.raises(Exception, match="has neither readable 'cloud'/'snow' assets nor"):
            StacProvider(
                catalog=_catalog(tmp_path / f"c{scl}", [neither]), scl_masks=scl
            ).fetch_each([GRIDS["square"]], day, day)


def test_an_item_without_any_band_asset_names_the_first_missing(archive, tmp_path: Path) -> None:
    _, f = archive
    day = dt.date(2021, 6, 15)
    item = _grid_item("S2B_20210615", day, _hrefs(f))
    for key in STAC_ASSETS:
        del item.assets[key]
    (res,) = StacProvider(catalog=_catalog(tmp_path, [item])).fetch_each(
        [GRIDS["square"]], day, day
    )
    assert isinstance(res, Exception)
    assert "S2B_20210615: asset 'blue' / 'B02' / 'B02_10m' missing" in str(res)
