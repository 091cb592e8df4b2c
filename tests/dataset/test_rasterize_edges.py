"""The rasterizer on the first and last rows and columns of square and non-square grids.

A polygon that reaches into a grid by less than a pixel over one edge covers exactly the
pixel centres of that edge row or column (FLAIR's pixel-centre rule): the expected mask is
written by hand, so a candidate window one pixel short of an edge (or rows and columns
swapped) shows as a wrong edge.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine

from flair_pipeline.dataset.rasterize import LabelIndex

X0, Y0, RES = 651_234.4, 6_861_002.2, 0.2  # origin off the 1 m lattice: no lucky alignment
GRID = Affine(RES, 0.0, X0, 0.0, -RES, Y0)
SHAPES = [(5, 5), (3, 8), (8, 3), (1, 6)]


def _box(c0: float, r0: float, c1: float, r1: float) -> shapely.Polygon:
    """A rectangle in (fractional) columns/rows of GRID."""
    return shapely.box(X0 + c0 * RES, Y0 - r1 * RES, X0 + c1 * RES, Y0 - r0 * RES)


def _index(tmp_path: Path, geoms: list, codes: list) -> LabelIndex:
    path = tmp_path / "labels.gpkg"
    gdf = gpd.GeoDataFrame({"code": codes}, geometry=geoms, crs="EPSG:2154")
    gdf.to_file(path, layer="labels", driver="GPKG", engine="pyogrio")
    return LabelIndex.from_file(path)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_strips_reaching_in_over_each_edge_fill_exactly_that_edge(tmp_path, shape) -> None:
    h, w = shape
    # each strip reaches 0.4 px into the grid (covers the edge centres, not the next ones)
    # and 3 px out of it; codes 1..4 tell the four edges apart
    strips = {
        "first_row": (_box(-3, -3, w + 3, 0.6), 1),
        "last_row": (_box(-3, h - 0.6, w + 3, h + 3), 2),
        "first_col": (_box(-3, -3, 0.6, h + 3), 3),
        "last_col": (_box(w - 0.6, -3, w + 3, h + 3), 4),
    }
    expected_edge = {
        "first_row": (slice(0, 1), slice(None)),
        "last_row": (slice(h - 1, h), slice(None)),
        "first_col": (slice(None), slice(0, 1)),
        "last_col": (slice(None), slice(w - 1, w)),
    }
    for name, (geom, code) in strips.items():
        (tmp_path / name).mkdir()
        mask = _index(tmp_path / name, [geom], [code]).mask(GRID, shape, "EPSG:2154")
        expected = np.zeros(shape, np.uint8)
        expected[expected_edge[name]] = code
        assert mask.shape == shape
        np.testing.assert_array_equal(mask, expected, err_msg=f"{name} on a {h}x{w} grid")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_single_corner_pixels(tmp_path, shape) -> None:
    """A small square around each corner pixel's centre burns that pixel only."""
    h, w = shape
    corners = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)]
    geoms = [_box(c + 0.3, r + 0.3, c + 0.7, r + 0.7) for r, c in corners]
    codes = [5, 6, 7, 8]
    mask = _index(tmp_path, geoms, codes).mask(GRID, shape, "EPSG:2154")
    expected = np.zeros(shape, np.uint8)
    for (r, c), code in zip(corners, codes, strict=True):
        expected[r, c] = code  # on a 1-row grid the later feature wins, as documented
    np.testing.assert_array_equal(mask, expected)


def test_polygon_just_outside_each_edge_burns_nothing(tmp_path) -> None:
    """Strips that stop 0.4 px short of the edge centres (still inside the grid) leave 0s."""
    h, w = 4, 7
    geoms = [
        _box(-3, -3, w + 3, 0.4),
        _box(-3, h - 0.4, w + 3, h + 3),
        _box(-3, -3, 0.4, h + 3),
        _box(w - 0.4, -3, w + 3, h + 3),
    ]
    mask = _index(tmp_path, geoms, [1, 2, 3, 4]).mask(GRID, (h, w), "EPSG:2154")
    assert not mask.any()


def _raster(path: Path, transform: Affine, shape: tuple[int, int] = (4, 5), crs: str = "EPSG:2154"):
    import rasterio

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=shape[0],
        width=shape[1],
        count=1,
        dtype="uint8",
        crs=crs,
        transform=transform,
    ) as dst:
        dst.write(np.zeros((1, *shape), np.uint8))
    return rasterio.open(path)


# (b's transform, shape, CRS) against a's Affine(0.2, 0, X0, 0, -0.5, Y0), 4x5, EPSG:2154;
# tolerances by hand: pixel terms 1e-6 x max(|0.2|, |-0.5|) = 5e-7, origin 0.01 m
GRID_CASES = {
    "same grid": (Affine(0.2, 0, X0, 0, -0.5, Y0), (4, 5), "EPSG:2154", None),
    "one row more": (
        Affine(0.2, 0, X0, 0, -0.5, Y0),
        (5, 5),
        "EPSG:2154",
        "shape 5x5 differs from 4x5",
    ),
    "one column less": (
        Affine(0.2, 0, X0, 0, -0.5, Y0),
        (4, 4),
        "EPSG:2154",
        "shape 4x4 differs from 4x5",
    ),
    "pixel height within 5e-7": (Affine(0.2, 0, X0, 0, -0.5 - 3e-7, Y0), (4, 5), "EPSG:2154", None),
    "pixel width within 5e-7": (Affine(0.2 + 4e-7, 0, X0, 0, -0.5, Y0), (4, 5), "EPSG:2154", None),
    "pixel width off by 6e-7": (
        Affine(0.2 + 6e-7, 0, X0, 0, -0.5, Y0),
        (4, 5),
        "EPSG:2154",
        "transform",
    ),
    "pixel height off by 6e-7": (
        Affine(0.2, 0, X0, 0, -0.5 + 6e-7, Y0),
        (4, 5),
        "EPSG:2154",
        "transform",
    ),
    "row skew": (Affine(0.2, 1e-5, X0, 0, -0.5, Y0), (4, 5), "EPSG:2154", "transform"),
    "column skew": (Affine(0.2, 0, X0, 1e-5, -0.5, Y0), (4, 5), "EPSG:2154", "transform"),
    "x origin within 1 cm": (Affine(0.2, 0, X0 + 0.009, 0, -0.5, Y0), (4, 5), "EPSG:2154", None),
    "y origin within 1 cm": (Affine(0.2, 0, X0, 0, -0.5, Y0 - 0.009), (4, 5), "EPSG:2154", None),
    "x origin 2 cm off": (Affine(0.2, 0, X0 + 0.02, 0, -0.5, Y0), (4, 5), "EPSG:2154", "origin"),
    "y origin 2 cm off": (Affine(0.2, 0, X0, 0, -0.5, Y0 + 0.02), (4, 5), "EPSG:2154", "origin"),
    "other CRS": (Affine(0.2, 0, X0, 0, -0.5, Y0), (4, 5), "EPSG:32631", "CRS EPSG:32631 differs"),
}


@pytest.mark.parametrize("case", list(GRID_CASES))
def test_grid_problem_names_what_differs(tmp_path: Path, case: str) -> None:
    from flair_pipeline.geo.grid import grid_problem

    transform, shape, crs, expected = GRID_CASES[case]
    with (
        _raster(tmp_path / "a.tif", Affine(0.2, 0, X0, 0, -0.5, Y0)) as a,
        _raster(tmp_path / "b.tif", transform, shape, crs) as b,
    ):
        got = grid_problem(a, b)
    if expected is None:
        assert got is None
    else:
        assert got is not None and got.startswith(expected), got


@pytest.mark.parametrize(
    ("transform", "expected"),
    [
        (Affine(0.2, 5e-7, 0.0, 0.0, -0.5, 0.0), None),  # skew of exactly 1e-6 x 0.5
        (Affine(0.2, 0.0, 0.0, -5e-7, -0.5, 0.0), None),
        (Affine(0.2, 6e-7, 0.0, 0.0, -0.5, 0.0), "transform"),
        (Affine(0.2, 0.0, 0.01, 0.0, -0.5, 0.0), None),  # origin off by exactly 1 cm
        (Affine(0.2, 0.0, 0.0, 0.0, -0.5, -0.01), None),
        (Affine(0.2, 0.0, 0.0105, 0.0, -0.5, 0.0), "origin"),
        (Affine(0.2, 0.0, 0.0, 0.0, -0.5, 0.0105), "origin"),
    ],
)
def test_grid_problem_tolerances_are_inclusive(
    tmp_path: Path, transform: Affine, expected: str | None
) -> None:
    """A difference of exactly the tolerance (1e-6 of the pixel size, 1 cm of origin) is
    accepted; values exact in binary, on a grid at the origin so no subtraction rounds."""
    from flair_pipeline.geo.grid import grid_problem

    with (
        _raster(tmp_path / "a.tif", Affine(0.2, 0.0, 0.0, 0.0, -0.5, 0.0)) as a,
        _raster(tmp_path / "b.tif", transform) as b,
    ):
        assert abs(b.transform.b) in (0.0, 5e-7, 6e-7) and abs(b.transform.d) in (0.0, 5e-7)
        got = grid_problem(a, b)
    assert got == expected if expected is None else (got or "").startswith(expected)


def test_grid_problem_message_gives_both_six_term_transforms(tmp_path: Path) -> None:
    from flair_pipeline.geo.grid import grid_problem

    ta, tb = (0.2, 0.0, X0, 0.0, -0.5, Y0), (0.2 + 6e-7, 0.0, X0, 0.0, -0.5, Y0)
    with (
        _raster(tmp_path / "a.tif", Affine(*ta)) as a,
        _raster(tmp_path / "b.tif", Affine(*tb)) as b,
    ):
        assert grid_problem(a, b) == f"transform {tb} differs from {ta}"


@pytest.mark.parametrize("degrees", [30.0, 60.0])
def test_each_corner_pixel_of_a_rotated_grid(degrees: float) -> None:
    """A grid rotated by 30 or 60 degrees (a rotated GeoTIFF as ``--like``): each of its
    four corners is the extreme of the grid in one direction, so the labels' candidate
    window must come from all four. A tiny square (0.1 px) around each corner pixel's
    centre, the centre computed from the affine transform: that pixel alone takes its code."""
    import math

    import geopandas as gpd
    import shapely

    from flair_pipeline.dataset.rasterize import LabelIndex

    r, t = 0.2, math.radians(degrees)
    grid = Affine(
        r * math.cos(t), r * math.sin(t), 1000.0, r * math.sin(t), -r * math.cos(t), 2000.0
    )
    h, w = 5, 7
    corners = {(0, 0): 3, (0, w - 1): 5, (h - 1, 0): 7, (h - 1, w - 1): 9}
    squares = []
    for (row, col), _ in corners.items():
        x, y = grid * (col + 0.5, row + 0.5)
        squares.append(shapely.box(x - 0.01, y - 0.01, x + 0.01, y + 0.01))
    gdf = gpd.GeoDataFrame({"code": list(corners.values())}, geometry=squares, crs=2154)
    m = LabelIndex(gdf).mask(grid, (h, w))
    expected = np.zeros((h, w), np.uint8)
    for (row, col), code in corners.items():
        expected[row, col] = code
    np.testing.assert_array_equal(m, expected)
