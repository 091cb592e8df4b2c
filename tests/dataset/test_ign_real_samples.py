"""The project's readers on real IGN files (../shared/real-samples/ign), as delivered.

Skips with a message where the shared folder is absent. Expected values come from the raw
arrays read with rasterio, not from the readers under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio

from flair_pipeline.dataset.crs import is_lambert93
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.patches import Elevation
from flair_pipeline.dataset.raster_vrt import Product

IGN = Path(__file__).resolve().parents[2].parent / "shared" / "real-samples" / "ign"


@pytest.fixture(scope="module")
def ign() -> Path:
    if not IGN.is_dir():
        pytest.skip(f"real IGN samples not found at {IGN} (../shared is absent)")
    return IGN


def test_bd_ortho_rvb_and_irc_stack_to_r_g_b_nir(ign: Path) -> None:
    rgb = ign / "bd_ortho_wms_extract_rvb_irc" / "test_data_rgb.tif"
    irc = ign / "bd_ortho_wms_extract_rvb_irc" / "test_data_irc.tif"
    with rasterio.open(rgb) as a, rasterio.open(irc) as b:
        assert a.crs.to_epsg() is None  # the quirk: Lambert-93 without its code
        want = np.concatenate([a.read(), b.read(1)[None]])
        box = tuple(a.bounds)
    products = [Product("rvb", [rgb], {"R": 1, "G": 2, "B": 3}),
                Product("irc", [irc], {"NIR": 1})]  # fmt: skip
    with Mosaic(products) as m:
        assert m.vrt.crs.to_epsg() == 2154
        got, covered = m.read(box)
    assert np.array_equal(got, want)
    # nodata 255 only where all four bands hold it
    assert np.array_equal(covered, ~(want == 255).all(axis=0))
    assert is_lambert93(rasterio.open(rgb).crs)


def test_lidar_dsm_with_voids_on_a_half_pixel_grid(ign: Path, tmp_path: Path) -> None:
    dsm = ign / "lidar_derived_dsm" / "DSM.tif"
    with rasterio.open(dsm) as src:
        heights, t, nodata = src.read(1), src.transform, src.nodata
        assert nodata == -9999 and (t.c * 2) % 1 == 0.5  # x.25 / x.75 edges
    # a DTM exactly 2 m under the DSM with the same voids: elevation is 2 m where not void
    dtm = tmp_path / "dtm.tif"
    with rasterio.open(dtm, "w", driver="GTiff", width=heights.shape[1], height=heights.shape[0],
                       count=1, dtype="float32", crs="EPSG:2154", transform=t,
                       nodata=-9999.0) as dst:  # fmt: skip
        dst.write(np.where(heights == nodata, nodata, heights - 2.0).astype(np.float32), 1)
    left, top = np.ceil(t.c / 0.2) * 0.2, np.floor(t.f / 0.2) * 0.2  # FLAIR's 0.2 m grid
    n = 64
    bounds = (left, top - n * 0.2, left + n * 0.2, top)
    elev = Elevation(dsm, dtm, 5.0)
    try:
        band = elev.patch(bounds, (n, n))
        z = elev.ground(left + 6.4, top - 6.4, bounds)
    finally:
        elev.close()
    assert set(np.unique(band).tolist()) <= {0, 10}  # 2 m x 5, or 0 on voids
    # pixel centres whose nearest DSM pixel is void are void (0)
    cx = left + (np.arange(n) + 0.5) * 0.2
    cy = top - (np.arange(n) + 0.5) * 0.2
    cols = np.floor((cx - t.c) / t.a).astype(int)
    rows = np.floor((cy - t.f) / t.e).astype(int)
    void_nearest = heights[np.ix_(rows, cols)] == nodata
    assert (band[void_nearest] == 0).all()
    assert (band[~void_nearest] == 10).mean() > 0.9  # bilinear edges of voids may be void
    assert z != nodata and np.isfinite(z)
    valid = heights[heights != nodata] - 2.0
    assert valid.min() <= z <= valid.max()


def test_label_crs_as_delivered(ign: Path) -> None:
    labels = ign / "odeon_labels"
    prj = (labels / "test_zone_data.prj").read_text()
    assert "RGF_1993_Lambert_93" in prj and "AUTHORITY" not in prj  # ESRI style
    assert is_lambert93(prj)
    assert is_lambert93(pyogrio.read_info(labels / "test_zone_data.shp")["crs"])
    assert is_lambert93(pyogrio.read_info(labels / "test_patch_data.geojson")["crs"])
    raster = next((labels / "train" / "2019" / "naf").glob("*.tiff"))
    with rasterio.open(raster) as src:
        assert is_lambert93(src.crs) and src.dtypes[0] == "uint8"
