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
import rasterio.windows

from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.patch_writers import Elevation
from flair_pipeline.dataset.rasterize import LabelIndex, read_labels
from flair_pipeline.errors import InputError
from flair_pipeline.geo.crs import is_lambert93
from flair_pipeline.geo.label_mapping import LabelMapping
from flair_pipeline.geo.raster_vrt import Product

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
        # each product's nodata (255) where every band of its file holds it; a pixel is
        # covered where both products have data (NIR 255 alone is saturation, not a hole)
        void = (a.read() == 255).all(axis=0) | (b.read() == 255).all(axis=0)
        box = tuple(a.bounds)
    products = [Product("rvb", [rgb], {"R": 1, "G": 2, "B": 3}), Product("irc", [irc], {"NIR": 1})]
    with Mosaic(products) as m:
        assert m.vrt.crs.to_epsg() == 2154
        got, covered = m.read(box)
    assert np.array_equal(got, want)
    assert np.array_equal(covered, ~void)
    assert ((want[3] == 255) & covered).sum() == 3  # saturated NIR pixels stay data
    assert is_lambert93(rasterio.open(rgb).crs)


def test_lidar_dsm_with_voids_on_a_half_pixel_grid(ign: Path, tmp_path: Path) -> None:
    dsm = ign / "lidar_derived_dsm" / "DSM.tif"
    with rasterio.open(dsm) as src:
        heights, t, nodata = src.read(1), src.transform, src.nodata
        assert nodata == -9999 and (t.c * 2) % 1 == 0.5  # x.25 / x.75 edges
    # a DTM exactly 2 m under the DSM with the same voids: elevation is 2 m where not void
    dtm = tmp_path / "dtm.tif"
    with rasterio.open(
        dtm,
        "w",
        driver="GTiff",
        width=heights.shape[1],
        height=heights.shape[0],
        count=1,
        dtype="float32",
        crs="EPSG:2154",
        transform=t,
        nodata=-9999.0,
    ) as dst:
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


def test_label_raster_mapped_to_flair_codes(ign: Path, tmp_path: Path) -> None:
    """odeon's `naf` raster (classes 0..13) through a value -> FLAIR table, on its own grid."""
    raster = next((ign / "odeon_labels" / "train" / "2019" / "naf").glob("*.tiff"))
    table = {v: (v % 19) + 1 for v in range(14)}  # any one-to-one table will do
    csv_path = tmp_path / "naf_to_flair.csv"
    csv_path.write_text("value,flair\n" + "".join(f"{v},{c}\n" for v, c in table.items()))
    with rasterio.open(raster) as src:
        values, t, crs = src.read(1), src.transform, src.crs
    index = LabelIndex.from_file(raster, mapping=LabelMapping(("value",), csv_path))
    window = (slice(100, 228), slice(300, 428))  # 32 m x 32 m
    sub = rasterio.windows.transform(rasterio.windows.Window.from_slices(*window), t)
    got = index.mask(sub, (128, 128), crs)
    want = np.vectorize(table.get)(values[window]).astype(np.uint8)
    assert np.array_equal(got, want)


def test_label_raster_value_missing_from_the_table_is_listed_with_area(
    ign: Path, tmp_path: Path
) -> None:
    raster = next((ign / "odeon_labels" / "train" / "2019" / "naf").glob("*.tiff"))
    with rasterio.open(raster) as src:
        values = src.read(1)
    csv_path = tmp_path / "partial.csv"
    csv_path.write_text("value,flair\n" + "".join(f"{v},1\n" for v in range(14) if v != 9))
    area = float((values == 9).sum()) * 0.25 * 0.25
    with pytest.raises(InputError) as e:
        read_labels(raster, mapping=LabelMapping(("value",), csv_path))
    assert f"9 ({area:,.0f} m²)" in str(e.value) and "partial.csv" in str(e.value)


def test_shapefile_with_esri_prj_as_labels(ign: Path, tmp_path: Path) -> None:
    shp = ign / "odeon_labels" / "test_zone_data.shp"
    zones = pyogrio.read_dataframe(shp)
    csv_path = tmp_path / "zones.csv"
    csv_path.write_text(
        "id_zone,flair\n" + "".join(f"{z},{i + 1}\n" for i, z in enumerate(zones["id_zone"]))
    )
    labels = read_labels(shp, mapping=LabelMapping(("id_zone",), csv_path))
    assert labels.crs.to_epsg() == 2154
    assert sorted(labels["code"].tolist()) == list(range(1, len(zones) + 1))
