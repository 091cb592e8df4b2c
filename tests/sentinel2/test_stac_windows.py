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


def _write(path: Path, data: np.ndarray, transform: Affine, nodata: int = 0) -> str:
    profile = dict(
        driver="GTiff",
        height=data.shape[0],
        width=data.shape[1],
        count=1,
        dtype=data.dtype,
        crs=UTM,
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
