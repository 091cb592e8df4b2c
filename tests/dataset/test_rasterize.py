"""Labels to MSK: pixel-centre rule, holes, shared edges, windows, reprojection, bad input."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.features import rasterize

from flair_pipeline.dataset.rasterize import (
    LabelIndex,
    normalize_crs,
    rasterize_like,
    read_labels,
    same_crs,
)
from flair_pipeline.errors import InputError
from flair_pipeline.io import write_geotiff
from flair_pipeline.nomenclature import BY_CODE

X0, Y0, RES = 650_000.0, 6_860_000.0, 0.2  # a Lambert-93 corner near Paris, FLAIR's 0.2 m
GRID = Affine(RES, 0.0, X0, 0.0, -RES, Y0)
LOCAL_L93 = (
    'LOCAL_CS["RGF93 v1 / Lambert-93",UNIT["metre",1,AUTHORITY["EPSG","9001"]],'
    'AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)
REAL_IMG = Path("flair_aerial_train/D004_2021/Z6_NU/img/IMG_000473.tif")
REAL_MSK = Path("flair_labels_train/D004_2021/Z6_NU/msk/MSK_000473.tif")


def px_box(c0: float, r0: float, c1: float, r1: float) -> shapely.Polygon:
    """A rectangle given in (fractional) pixel columns/rows of GRID."""
    return shapely.box(X0 + c0 * RES, Y0 - r1 * RES, X0 + c1 * RES, Y0 - r0 * RES)


def px_poly(*cr: tuple[float, float]) -> shapely.Polygon:
    """A polygon given by (column, row) vertices of GRID."""
    return shapely.Polygon([(X0 + c * RES, Y0 - r * RES) for c, r in cr])


def write_labels(
    path: Path, geoms: list, codes: list, crs: str | None = "EPSG:2154", **columns
) -> Path:
    gdf = gpd.GeoDataFrame({"code": codes, **columns}, geometry=geoms, crs=crs)
    gdf.to_file(path, layer="labels", driver="GPKG", engine="pyogrio")
    return path


def index_of(tmp_path: Path, geoms: list, codes: list, name: str = "labels.gpkg") -> LabelIndex:
    return LabelIndex.from_file(write_labels(tmp_path / name, geoms, codes))


def centres_inside(geom: shapely.Geometry, shape: tuple[int, int], grid: Affine = GRID):
    """Reference mask: which pixel centres `geom` contains, by shapely rather than GDAL."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    xs, ys = grid * (cols + 0.5, rows + 0.5)
    return shapely.contains_xy(geom, xs, ys)


# --- pixel-centre rule -------------------------------------------------------------------


def test_square_on_pixel_edges_covers_exactly_its_block(tmp_path: Path) -> None:
    m = index_of(tmp_path, [px_box(2, 3, 6, 8)], [5]).mask(GRID, (10, 10))
    expected = np.zeros((10, 10), np.uint8)
    expected[3:8, 2:6] = 5
    assert m.dtype == np.uint8
    np.testing.assert_array_equal(m, expected)


def test_square_with_mid_pixel_edges_takes_pixels_whose_centre_is_inside(tmp_path: Path) -> None:
    square = px_box(2.3, 3.6, 5.8, 7.4)  # centres at .5 inside: cols 2..5, rows 4..6
    m = index_of(tmp_path, [square], [9]).mask(GRID, (10, 10))
    expected = np.zeros((10, 10), np.uint8)
    expected[4:7, 2:6] = 9
    np.testing.assert_array_equal(m, expected)
    np.testing.assert_array_equal(m == 9, centres_inside(square, (10, 10)))


def test_hole_shows_the_island_inside_it_or_zero(tmp_path: Path) -> None:
    ring = px_box(0, 0, 20, 20).difference(px_box(5, 5, 15, 15))
    island = px_box(8, 8, 12, 12)
    m = index_of(tmp_path, [island, ring], [5, 7]).mask(GRID, (24, 24))  # island first
    expected = np.zeros((24, 24), np.uint8)
    expected[:20, :20] = 7
    expected[5:15, 5:15] = 0
    expected[8:12, 8:12] = 5
    np.testing.assert_array_equal(m, expected)


def test_polygons_sharing_an_edge_leave_no_gap_and_no_double(tmp_path: Path) -> None:
    left, right = px_box(0, 0, 7, 16), px_box(7, 0, 16, 16)
    m = index_of(tmp_path, [left, right], [1, 2]).mask(GRID, (16, 16))
    assert np.bincount(m.ravel(), minlength=3).tolist() == [0, 7 * 16, 9 * 16]

    # a slanted shared edge that no pixel centre lies on: counts are the centre counts
    below = px_poly((0, 16), (16, 16), (16, 8), (0, 16))
    above = px_poly((0, 0), (16, 0), (16, 8), (0, 16), (0, 0))
    m = index_of(tmp_path, [below, above], [3, 4], "slanted.gpkg").mask(GRID, (16, 16))
    assert not (m == 0).any()
    assert (m == 3).sum() == centres_inside(below, (16, 16)).sum()
    assert (m == 4).sum() == centres_inside(above, (16, 16)).sum()
    assert (m == 3).sum() + (m == 4).sum() == 256

    # the diagonal runs through pixel centres: each still gets exactly one of the two codes
    lower = px_poly((0, 0), (16, 16), (0, 16), (0, 0))
    upper = px_poly((0, 0), (16, 0), (16, 16), (0, 0))
    m = index_of(tmp_path, [lower, upper], [5, 6], "diagonal.gpkg").mask(GRID, (16, 16))
    assert set(np.unique(m).tolist()) == {5, 6}


# --- windows and speed-minded indexing ---------------------------------------------------


def tiling(n: int, extent: float, seed: int = 0) -> tuple[list, list]:
    """Voronoi cells tiling a square of `extent` metres at (X0, Y0 - extent): a label layer."""
    rng = np.random.default_rng(seed)
    frame = shapely.box(X0, Y0 - extent, X0 + extent, Y0)
    pts = shapely.multipoints(rng.uniform((X0, Y0 - extent), (X0 + extent, Y0), (n, 2)))
    cells = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=frame))
    cells = shapely.intersection(cells, frame)
    return list(cells), rng.integers(1, 20, len(cells)).tolist()


def test_mask_burns_only_polygons_near_the_window_with_the_same_result(tmp_path: Path) -> None:
    geoms, codes = tiling(2000, 400.0)
    index = index_of(tmp_path, geoms, codes)
    window = Affine(RES, 0.0, X0 + 137.3, 0.0, -RES, Y0 - 211.9)
    bounds = (X0 + 137.3, Y0 - 211.9 - 64 * RES, X0 + 137.3 + 64 * RES, Y0 - 211.9)
    hits = index.candidates(bounds)
    assert 0 < len(hits) < len(index) / 20
    assert (np.diff(hits) > 0).all()  # feature order: later features win, reproducibly

    everything = rasterize(
        zip(geoms, codes, strict=True), (64, 64), transform=window, dtype="uint8"
    )
    m = index.mask(window, (64, 64))
    np.testing.assert_array_equal(m, everything)
    assert (
        m.tobytes()
        == LabelIndex.from_file(tmp_path / "labels.gpkg").mask(window, (64, 64)).tobytes()
    )


def test_huge_polygon_is_clipped_without_changing_pixels(tmp_path: Path) -> None:
    disc = shapely.Point(X0 + 500, Y0 - 500).buffer(480, quad_segs=2000)  # 8000 vertices
    index = index_of(tmp_path, [disc], [11])
    for dx, dy in ((10.1, 500.0), (480.0, 480.0), (900.3, 400.7)):
        grid = Affine(RES, 0.0, X0 + dx, 0.0, -RES, Y0 - dy)
        ref = rasterize([(disc, 11)], (128, 128), transform=grid, dtype="uint8")
        np.testing.assert_array_equal(index.mask(grid, (128, 128)), ref)


def test_grid_away_from_every_label_is_all_zero(tmp_path: Path) -> None:
    index = index_of(tmp_path, [px_box(0, 0, 4, 4)], [1])
    far = Affine(RES, 0.0, X0 + 5000, 0.0, -RES, Y0)
    assert not index.mask(far, (32, 32)).any()


# --- CRS ---------------------------------------------------------------------------------


def test_lambert93_local_cs_is_epsg_2154(tmp_path: Path) -> None:
    local = CRS.from_wkt(LOCAL_L93)
    assert normalize_crs(local) == CRS.from_epsg(2154)
    assert normalize_crs("EPSG:32631") == CRS.from_epsg(32631)
    assert normalize_crs(None) is None
    assert same_crs(local, "EPSG:2154") and not same_crs(local, "EPSG:32631")
    index = index_of(tmp_path, [px_box(2.3, 3.6, 5.8, 7.4)], [9])
    np.testing.assert_array_equal(index.mask(GRID, (10, 10), local), index.mask(GRID, (10, 10)))


def test_labels_in_lambert93_on_a_utm_grid(tmp_path: Path) -> None:
    west, east = (
        shapely.box(X0, Y0 - 200, X0 + 100, Y0),
        shapely.box(X0 + 100, Y0 - 200, X0 + 200, Y0),
    )
    index = index_of(tmp_path, [west, east], [3, 7])
    to_utm = Transformer.from_crs(2154, 32631, always_xy=True)
    ux, uy = to_utm.transform(X0 + 100, Y0 - 100)
    grid = Affine(0.5, 0.0, ux - 40, 0.0, -0.5, uy + 40)  # 80 m square across the border
    # the index first serves a Lambert-93 grid (no reprojection), then the UTM one: each
    # CRS gets its own transformers
    assert (index.mask(GRID, (2, 2), "EPSG:2154") == 3).all()
    m = index.mask(grid, (160, 160), "EPSG:32631")

    rows, cols = np.mgrid[:160, :160]
    x, _ = Transformer.from_crs(32631, 2154, always_xy=True).transform(
        *(grid * (cols + 0.5, rows + 0.5))
    )
    expected = np.where(x < X0 + 100, 3, 7)
    assert (m == expected).mean() > 0.995
    assert 0.3 < (m == 3).mean() < 0.7  # the border crosses the grid, not a side of it


# --- rasterize_like ----------------------------------------------------------------------


def test_rasterize_like_matches_the_image_grid(tmp_path: Path) -> None:
    img = np.zeros((4, 48, 64), np.uint8)
    grid = Affine(RES, 0.0, X0, 0.0, -RES, Y0)
    like = write_geotiff(tmp_path / "IMG.tif", img, grid, "EPSG:2154")
    labels = write_labels(
        tmp_path / "l.gpkg", [px_box(2.3, 3.6, 40.8, 30.4), px_box(50, 0, 64, 48)], [5, 13]
    )
    out = rasterize_like(labels, like, tmp_path / "out" / "MSK.tif")

    with rasterio.open(like) as a, rasterio.open(out) as b:
        assert (b.transform, b.width, b.height, b.crs) == (a.transform, a.width, a.height, a.crs)
        assert (b.count, b.dtypes[0]) == (1, "uint8")
        assert b.colormap(1)[5] == (*BY_CODE[5].rgb, 255)
        m = b.read(1)
    np.testing.assert_array_equal(m, LabelIndex.from_file(labels).mask(grid, (48, 64)))
    assert (m == 5).sum() == 39 * 26 and (m == 13).sum() == 14 * 48
    assert not list(out.parent.glob(".*tmp*"))


def test_rasterize_like_on_a_real_flair_image(tmp_path: Path, real_flair: Path) -> None:
    with rasterio.open(real_flair / REAL_IMG) as src:
        grid, shape, crs = src.transform, src.shape, src.crs
    # a polygon over the upper-left part, edges mid-pixel: 200 x 100 pixel centres inside
    left, top = grid * (10.4, 20.6)
    right, bottom = grid * (210.4, 120.6)
    labels = write_labels(tmp_path / "l.gpkg", [shapely.box(left, bottom, right, top)], [7])
    out = rasterize_like(labels, real_flair / REAL_IMG, tmp_path / "MSK_000473.tif")
    with rasterio.open(out) as b:
        assert (b.transform, b.shape, b.crs) == (grid, shape, crs)
        m = b.read(1)
    assert (m == 7).sum() == 200 * 100 and (m[21:121, 10:210] == 7).all()

    # the real MSK carries a LOCAL_CS: same grid, written as EPSG:2154, same pixels
    out2 = rasterize_like(labels, real_flair / REAL_MSK, tmp_path / "from_msk.tif")
    with rasterio.open(out2) as b:
        assert b.crs == CRS.from_epsg(2154)
        np.testing.assert_array_equal(b.read(1), m)


# --- bad input ---------------------------------------------------------------------------


def test_codes_outside_1_to_19_are_listed_by_feature_id(tmp_path: Path) -> None:
    path = write_labels(
        tmp_path / "bad.gpkg", [px_box(i, 0, i + 1, 1) for i in range(4)], [3, 0, 7, 25]
    )
    with pytest.raises(InputError) as err:
        read_labels(path)
    assert str(err.value) == (
        f"label file {path}: `code` must be an integer 1..19; 2 feature(s) are not: "
        "fid 2 (code 0), fid 4 (code 25)"
    )


@pytest.mark.parametrize("n_bad", [20, 21, 30])
def test_many_bad_codes_are_listed_up_to_a_limit(tmp_path: Path, n_bad: int) -> None:
    """The first 20 features by fid, then how many more (none said when none are left)."""
    path = write_labels(
        tmp_path / "bad.gpkg", [px_box(i, 0, i + 1, 1) for i in range(n_bad)], [40] * n_bad
    )
    with pytest.raises(InputError) as err:
        read_labels(path)
    listed = ", ".join(f"fid {i} (code 40)" for i in range(1, 21))
    more = {20: "", 21: " and 1 more", 30: " and 10 more"}[n_bad]
    assert str(err.value).endswith(f"are not: {listed}{more}")


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gpkg"
    with pytest.raises(InputError, match=r"nope\.gpkg"):
        read_labels(missing)
    like = write_geotiff(tmp_path / "IMG.tif", np.zeros((8, 8), np.uint8), GRID, "EPSG:2154")
    with pytest.raises(InputError, match=r"nope\.gpkg"):
        rasterize_like(missing, like, tmp_path / "o.tif")
    assert not (tmp_path / "o.tif").exists()


def test_no_code_column(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame({"classe": [3]}, geometry=[px_box(0, 0, 1, 1)], crs="EPSG:2154")
    gdf.to_file(tmp_path / "l.gpkg", driver="GPKG", engine="pyogrio")
    with pytest.raises(InputError, match=r"l\.gpkg has no `code` column.*classe"):
        read_labels(tmp_path / "l.gpkg")


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_text_codes_null_geometry_and_missing_crs_are_errors(tmp_path: Path) -> None:
    path = write_labels(tmp_path / "a.gpkg", [px_box(0, 0, 1, 1)], ["building"])
    with pytest.raises(InputError, match="must be an integer"):
        read_labels(path)
    path = write_labels(tmp_path / "b.gpkg", [px_box(0, 0, 1, 1), None], [3, 4])
    with pytest.raises(InputError, match=r"no geometry: fid 2 \(code 4\)"):
        read_labels(path)
    path = write_labels(tmp_path / "c.gpkg", [px_box(0, 0, 1, 1)], [3], crs=None)
    with pytest.raises(InputError, match="no CRS"):
        read_labels(path)


def test_bow_tie_is_repaired_and_lines_dropped(tmp_path: Path) -> None:
    bow_tie = px_poly((0, 0), (8, 6), (8, 0), (0, 6), (0, 0))  # no pixel centre on an edge
    both_triangles = px_poly((0, 0), (4, 3), (0, 6), (0, 0)) | px_poly((8, 0), (4, 3), (8, 6))
    line = shapely.LineString([(X0, Y0), (X0 + 1, Y0 - 1)])
    path = write_labels(tmp_path / "l.gpkg", [bow_tie, px_box(10, 0, 12, 2), line], [2, 3, 4])
    gdf = read_labels(path)
    assert (gdf.attrs["repaired"], gdf.attrs["dropped"]) == (1, 1)
    assert gdf.index.tolist() == [1, 2] and gdf.is_valid.all()
    m = LabelIndex(gdf).mask(GRID, (6, 12))
    np.testing.assert_array_equal(m[:, :8] == 2, centres_inside(both_triangles, (6, 8)))
    assert (m == 3).sum() == 4


def test_rasterize_like_places_lambert93_labels_on_a_utm_image(tmp_path: Path) -> None:
    """An image in another CRS (UTM 31N): the labels are reprojected to its grid, each pixel
    taking the code of the polygon its centre falls in (the centres mapped back to Lambert-93
    by pyproj, tested by shapely: independent of the code's GDAL burn)."""
    west, east = (
        shapely.box(X0, Y0 - 200, X0 + 100, Y0),
        shapely.box(X0 + 100, Y0 - 200, X0 + 200, Y0),
    )
    labels = write_labels(tmp_path / "l.gpkg", [west, east], [3, 7])
    ux, uy = Transformer.from_crs(2154, 32631, always_xy=True).transform(X0 + 100, Y0 - 100)
    grid = Affine(2.0, 0.0, ux - 40, 0.0, -2.0, uy + 30)  # 80 m x 60 m across the border
    like = write_geotiff(tmp_path / "IMG.tif", np.zeros((1, 30, 40), np.uint8), grid, "EPSG:32631")
    out = rasterize_like(labels, like, tmp_path / "MSK.tif")
    with rasterio.open(out) as b:
        assert b.crs == CRS.from_epsg(32631) and b.transform == grid
        m = b.read(1)
    rows, cols = np.mgrid[:30, :40]
    x, y = Transformer.from_crs(32631, 2154, always_xy=True).transform(
        *(grid * (cols + 0.5, rows + 0.5))
    )
    expected = np.where(shapely.contains_xy(west, x, y), 3, 0)
    expected = np.where(shapely.contains_xy(east, x, y), 7, expected)
    assert (expected == 3).any() and (expected == 7).any() and (expected > 0).all()
    np.testing.assert_array_equal(m, expected)


def test_bad_or_unreadable_like_image(tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "l.gpkg", [px_box(0, 0, 4, 4)], [1])
    with pytest.raises(InputError, match=r"IMG_missing\.tif"):
        rasterize_like(labels, tmp_path / "IMG_missing.tif", tmp_path / "o.tif")
    (tmp_path / "IMG_text.tif").write_text("not a raster")
    with pytest.raises(InputError, match=r"IMG_text\.tif.*cannot be read"):
        rasterize_like(labels, tmp_path / "IMG_text.tif", tmp_path / "o.tif")
    far = write_geotiff(
        tmp_path / "far.tif", np.zeros((8, 8), np.uint8), Affine(RES, 0, 0, 0, -RES, 0), "EPSG:2154"
    )
    with pytest.raises(InputError, match="no label polygon"):
        rasterize_like(labels, far, tmp_path / "o.tif")
    no_crs = write_geotiff(tmp_path / "IMG_nocrs.tif", np.zeros((8, 8), np.uint8), GRID, None)
    with pytest.raises(InputError, match=r"IMG_nocrs\.tif \(--like\) has no CRS"):
        rasterize_like(labels, no_crs, tmp_path / "o.tif")
    assert not (tmp_path / "o.tif").exists()


def test_bad_labels_or_failed_write_leave_nothing_behind(tmp_path: Path) -> None:
    like = write_geotiff(tmp_path / "IMG.tif", np.zeros((16, 16), np.uint8), GRID, "EPSG:2154")
    bad = write_labels(tmp_path / "bad.gpkg", [px_box(0, 0, 4, 4)], [0])
    good = write_labels(tmp_path / "good.gpkg", [px_box(0, 0, 4, 4)], [1])
    with pytest.raises(InputError):
        rasterize_like(bad, like, tmp_path / "out" / "MSK.tif")
    assert not (tmp_path / "out" / "MSK.tif").exists()

    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(OSError):
        rasterize_like(good, like, tmp_path / "blocker" / "MSK.tif")
    (tmp_path / "taken").mkdir()  # the rename fails after the data was written
    with pytest.raises(OSError):
        rasterize_like(good, like, tmp_path / "taken")
    leftovers = [p.name for p in tmp_path.rglob("*") if "tmp" in p.name]
    assert leftovers == [] and list((tmp_path / "taken").iterdir()) == []


def test_overlaps_go_to_the_later_feature(tmp_path: Path) -> None:
    geoms = [px_box(0, 0, 6, 6), px_box(3, 3, 9, 9), px_box(4, 0, 5, 9)]
    m = index_of(tmp_path, geoms, [1, 2, 3]).mask(GRID, (9, 9))
    assert (m[3:6, 3] == 2).all() and (m[:, 4] == 3).all() and m[1, 1] == 1 and m[7, 7] == 2


def test_labels_written_with_the_local_cs_read_as_epsg_2154(tmp_path: Path) -> None:
    path = write_labels(tmp_path / "l.gpkg", [px_box(0, 0, 4, 4)], [1], crs=LOCAL_L93)
    assert CRS.from_user_input(read_labels(path).crs) == CRS.from_epsg(2154)
    assert LabelIndex.from_file(path).mask(GRID, (4, 4), "EPSG:2154").tolist() == [[1] * 4] * 4


# --- polygonal parts of odd geometries -------------------------------------------------------


def test_polygonal_part_of_each_kind_of_geometry() -> None:
    """What a label feature burns: its polygons; lines, points and empty parts burn nothing.
    make_valid turns a polygon with a spike into a collection of a polygon and a line."""
    from flair_pipeline.dataset.rasterize import _polygonal

    a, b = px_box(0, 0, 2, 2), px_box(4, 0, 6, 2)
    line, point = shapely.LineString([(X0, Y0), (X0 + 1, Y0)]), shapely.Point(X0, Y0)
    empty = shapely.Polygon()
    collection = shapely.GeometryCollection
    assert _polygonal(a) is a
    assert _polygonal(shapely.MultiPolygon([a, b])).equals(shapely.MultiPolygon([a, b]))
    assert _polygonal(empty) is None
    assert _polygonal(shapely.MultiPolygon()) is None
    assert _polygonal(line) is None and _polygonal(point) is None
    assert _polygonal(collection([line, point])) is None
    one = _polygonal(collection([a, line]))
    assert one is not None and one.geom_type == "Polygon" and one.equals(a)
    assert _polygonal(collection([empty, a, point])).equals(a)
    two = _polygonal(collection([a, b, point]))
    assert two is not None and two.geom_type == "MultiPolygon" and two.equals(a | b)
    nested = _polygonal(collection([shapely.MultiPolygon([a, b]), line]))
    assert nested is not None and nested.geom_type == "MultiPolygon" and nested.equals(a | b)


def test_a_spiked_polygon_burns_its_area_and_drops_the_spike(tmp_path: Path) -> None:
    # a 4x4 px square with a zero-width spike out of its right side to column 9
    spiked = px_poly((0, 0), (4, 0), (4, 2), (9, 2), (4, 2), (4, 4), (0, 4), (0, 0))
    assert not spiked.is_valid
    assert shapely.make_valid(spiked).geom_type == "GeometryCollection"
    gdf = read_labels(write_labels(tmp_path / "s.gpkg", [spiked], [6]))
    assert (gdf.attrs["repaired"], gdf.attrs["dropped"]) == (1, 0)
    assert gdf.geometry.iloc[0].geom_type == "Polygon"
    m = LabelIndex(gdf).mask(GRID, (6, 10))
    expected = np.zeros((6, 10), np.uint8)
    expected[:4, :4] = 6
    np.testing.assert_array_equal(m, expected)


# --- what read_labels reads: rasters, mappings, layers, WGS84, odd features -----------------


def test_labels_in_wgs84_longitude_first_on_a_lambert93_grid(tmp_path: Path) -> None:
    """A GeoJSON in EPSG:4326 (longitude, latitude as GeoJSON and GeoPackage store them):
    burnt on a Lambert-93 grid, each pixel centre mapped to WGS84 by pyproj (always_xy) and
    tested by shapely. EPSG:4326's official axis order is latitude first: a transformer
    built without always_xy puts the polygon in the sea off Somalia."""
    to_wgs = Transformer.from_crs(2154, 4326, always_xy=True)
    lon0, lat0 = to_wgs.transform(X0 + 0.7, Y0 - 0.9)
    lon1, lat1 = to_wgs.transform(X0 + 1.9, Y0 - 2.1)
    square = shapely.box(min(lon0, lon1), min(lat0, lat1), max(lon0, lon1), max(lat0, lat1))
    path = tmp_path / "wgs84.geojson"
    gpd.GeoDataFrame({"code": [4]}, geometry=[square], crs="EPSG:4326").to_file(path)
    m = LabelIndex.from_file(path).mask(GRID, (16, 16), "EPSG:2154")
    rows, cols = np.mgrid[:16, :16]
    lon, lat = to_wgs.transform(*(GRID * (cols + 0.5, rows + 0.5)))
    expected = np.where(shapely.contains_xy(square, lon, lat), 4, 0)
    assert 10 < (expected == 4).sum() < 100
    np.testing.assert_array_equal(m, expected)


def test_a_label_raster_is_read_as_its_polygons(tmp_path: Path) -> None:
    """A label GeoTIFF (codes per pixel, nodata 0): its polygons burn back the same codes
    on its own grid, and nodata stays 0."""
    codes = np.zeros((6, 8), np.uint8)
    codes[1:4, 2:7] = 6
    codes[4:, :3] = 11
    path = write_geotiff(tmp_path / "labels.tif", codes, GRID, "EPSG:2154", nodata=0)
    from flair_pipeline.geo.label_mapping import LabelMapping

    index = LabelIndex.from_file(path, mapping=LabelMapping(("value",)))
    np.testing.assert_array_equal(index.mask(GRID, (6, 8)), codes)


def test_a_mapping_table_turns_a_text_field_into_codes(tmp_path: Path) -> None:
    from flair_pipeline.geo.label_mapping import LabelMapping

    path = write_labels(
        tmp_path / "l.gpkg",
        [px_box(0, 0, 2, 2), px_box(2, 0, 4, 2)],
        [0, 0],
        nature=["Bâti", "Eau"],
    )
    table = tmp_path / "map.csv"
    table.write_text("nature,flair\nBâti,1\nEau,5\n", encoding="utf-8")
    gdf = read_labels(path, mapping=LabelMapping(("nature",), table))
    assert gdf["code"].tolist() == [1, 5] and gdf["code"].dtype == np.uint8
    m = LabelIndex.from_file(path, mapping=LabelMapping(("nature",), table)).mask(GRID, (2, 4))
    np.testing.assert_array_equal(m, [[1, 1, 5, 5], [1, 1, 5, 5]])


def test_a_named_layer_of_a_geopackage_is_read(tmp_path: Path) -> None:
    path = tmp_path / "two.gpkg"
    for layer, code in (("first", 3), ("second", 9)):
        gpd.GeoDataFrame({"code": [code]}, geometry=[px_box(0, 0, 2, 2)], crs=2154).to_file(
            path, layer=layer, driver="GPKG", engine="pyogrio"
        )
    assert read_labels(path, layer="second")["code"].tolist() == [9]
    with pytest.raises(InputError, match=r"2 layers with geometries and none named 'labels'"):
        read_labels(path)  # never OGR's first layer (test_label_layers.py has the rule)
    index = LabelIndex.from_file(path, "second")
    assert index.source == str(path) and index.codes.tolist() == [9]
    np.testing.assert_array_equal(index.mask(GRID, (2, 2)), np.full((2, 2), 9))


@pytest.mark.parametrize(("code", "shown"), [(20, "20"), (3.5, "3.5"), (None, "nan")])
def test_codes_20_fractional_or_null_are_listed(tmp_path: Path, code, shown: str) -> None:
    path = write_labels(tmp_path / "c.gpkg", [px_box(0, 0, 1, 1), px_box(1, 0, 2, 2)], [19, code])
    with pytest.raises(InputError) as err:
        read_labels(path)
    assert str(err.value).endswith(f"1 feature(s) are not: fid 2 (code {shown})")


def test_odd_features_are_repaired_or_dropped_and_counted(tmp_path: Path) -> None:
    """Two bow ties (repaired), a multipoint, an empty polygon and a collection of a square
    and a line (its square kept): 2 repaired, 2 dropped, the line burns nothing."""
    bow_tie = px_poly((0, 0), (8, 6), (8, 0), (0, 6), (0, 0))
    bow_tie2 = px_poly((10, 0), (14, 4), (14, 0), (10, 4), (10, 0))
    points = shapely.MultiPoint(
        [(X0 + 0.5 * RES, Y0 - 7.5 * RES), (X0 + 1.5 * RES, Y0 - 7.5 * RES)]
    )
    line = shapely.LineString([(X0, Y0 - 9.5 * RES), (X0 + 16 * RES, Y0 - 9.5 * RES)])
    collection = shapely.GeometryCollection([px_box(16, 0, 18, 2), line])
    geoms = [bow_tie, bow_tie2, points, shapely.Polygon(), collection]
    path = write_labels(tmp_path / "odd.gpkg", geoms, [2, 3, 4, 5, 6])
    gdf = read_labels(path)
    assert gdf.attrs == {
        "source": str(path),
        "layer": "labels",
        "layer_decision": None,
        "repaired": 2,
        "dropped": 2,
        "features_read": len(geoms),  # no extent given: every feature read
        "within": None,
        "repaired_fids": (1, 2),  # the two bow ties (fids 1, 2)
    }
    assert gdf.index.tolist() == [1, 2, 5] and gdf["code"].dtype == np.uint8
    m = LabelIndex(gdf).mask(GRID, (12, 18))
    assert (m == 4).sum() == 0 and (m[9] == 0).all()  # no point, no line
    assert (m == 6).sum() == 4 and (m[:2, 16:18] == 6).all()


def test_a_label_index_says_where_its_labels_come_from(tmp_path: Path) -> None:
    path = write_labels(tmp_path / "l.gpkg", [px_box(0, 0, 1, 1)], [3])
    assert LabelIndex(read_labels(path)).source == str(path)  # read_labels' attrs
    assert LabelIndex(read_labels(path), source="mine").source == "mine"
    plain = gpd.GeoDataFrame({"code": [3]}, geometry=[px_box(0, 0, 1, 1)], crs=2154)
    assert LabelIndex(plain).source == "labels"  # built in memory: no file to name
    assert LabelIndex(plain).codes.dtype == np.uint8 and LabelIndex(plain).geoms.dtype == object


def test_unreadable_layer_unmapped_values_and_repairs_are_each_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from flair_pipeline.geo.label_mapping import LabelMapping

    junk = tmp_path / "junk.gpkg"
    junk.write_bytes(b"not a geopackage")
    with pytest.raises(InputError, match=rf"label file {junk} cannot be read as a vector layer: "):
        read_labels(junk)
    path = write_labels(tmp_path / "m.gpkg", [px_box(0, 0, 2, 2)], [0], nature=["Serre"])
    table = tmp_path / "map.csv"
    table.write_text("nature,flair\nBâti,1\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_labels(path, mapping=LabelMapping(("nature",), table))
    assert str(err.value).startswith(f"label file {path}: 1 value(s) of nature are not in {table}")
    bow_tie = px_poly((0, 0), (8, 6), (8, 0), (0, 6), (0, 0))
    for name, geoms, said in (
        ("repaired.gpkg", [bow_tie], "repaired 1 invalid geometries, dropped 0"),
        (
            "dropped.gpkg",
            [px_box(0, 0, 1, 1), shapely.Point(X0, Y0)],
            "repaired 0 invalid geometries, dropped 1",
        ),
        ("clean.gpkg", [px_box(0, 0, 1, 1)], None),
    ):
        caplog.clear()
        labels = write_labels(tmp_path / name, geoms, [3] * len(geoms))
        with caplog.at_level("WARNING"):
            read_labels(labels)
        lines = [r.getMessage() for r in caplog.records]
        if said is None:
            assert lines == []
        else:
            assert lines == [f"{labels}: {said} non-polygonal features"]
