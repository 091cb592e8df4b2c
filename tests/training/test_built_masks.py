"""MSK patches of a built dataset against an independent rasterization of the raw labels.

Every pixel centre of every MSK (36 patches of 64 x 64 px) is located here with shapely's
point-in-polygon on the raw ``labels.gpkg`` polygons: its expected code is that of the
last polygon containing it (the documented overlap rule) or 0 (unlabelled) when none does.
Centres lying on a polygon edge (within 1 µm) are left out: GDAL's pixel-centre rule does
not define which side they fall on. The MSK writer (``LabelIndex.mask``) is not used.
Uses the built ``tiny_dataset`` of ``tests/training/conftest.py``.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import rasterio
import shapely


def expected_codes(
    labels: gpd.GeoDataFrame, xs: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(code per point, True where the point is on no polygon edge)."""
    codes = np.zeros(xs.shape, dtype=np.int64)
    clear = np.ones(xs.shape, dtype=bool)
    points = shapely.points(xs, ys)
    for geom, code in zip(labels.geometry, labels["code"], strict=True):  # later wins
        inside = shapely.contains_xy(geom, xs, ys)
        codes[inside] = int(code)
        clear &= shapely.distance(geom.boundary, points) > 1e-6
    return codes, clear


def test_masks_match_point_in_polygon_of_the_raw_labels(tiny_dataset, tiny_world) -> None:
    dataset, _ = tiny_dataset
    msks = sorted((dataset / "labels").glob("*/*/msk/MSK_*.tif"))
    assert len(msks) == 36
    labels: dict[str, gpd.GeoDataFrame] = {}
    checked, seen_codes = 0, set()
    for path in msks:
        domain = path.parts[-4]
        if domain not in labels:
            labels[domain] = gpd.read_file(tiny_world.out / "domains" / domain / "labels.gpkg")
            assert labels[domain].crs.to_epsg() == 2154
        with rasterio.open(path) as src:
            got = src.read(1)
            t = src.transform
            assert src.crs.to_epsg() == 2154
        rows, cols = np.mgrid[0 : got.shape[0], 0 : got.shape[1]]
        xs = t.c + (cols + 0.5) * t.a  # pixel centres, north-up grid
        ys = t.f + (rows + 0.5) * t.e
        want, clear = expected_codes(labels[domain], xs.ravel(), ys.ravel())
        got = got.ravel()
        bad = np.flatnonzero(clear & (got != want))
        assert bad.size == 0, (
            f"{path.name}: {bad.size} px differ, first at row/col "
            f"{divmod(int(bad[0]), src.width)}: MSK {got[bad[0]]}, polygons {want[bad[0]]}"
        )
        checked += int(clear.sum())
        seen_codes |= set(np.unique(want[clear]).tolist())
    assert checked > 0.95 * 36 * 64 * 64  # edge pixels are few: almost all are checked
    assert len(seen_codes) >= 5  # several classes, so a code mix-up cannot pass
