"""Raw inputs as users have them: each doubtful kind handled or refused in one line.

Every raster is written here, small, the way the product is delivered; expected values are
computed from the arrays written (numpy, pyproj), never by the reader under test.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.transform import from_origin

from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.patch_writers import (
    Elevation,
    VoidElevationError,
    build_aerial_patches,
    build_label_masks,
)
from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.raster_input import ImageSource
from flair_pipeline.geo.crs import is_lambert93, same_crs
from flair_pipeline.geo.raster_vrt import Product
from flair_pipeline.geo.surface import SurfaceInput
from flair_pipeline.layout import DatasetLayout
from flair_pipeline.sources.domain_inputs import scan_domain

X0, Y1 = 700000.0, 6600000.0  # top-left of the test ortho (Lambert-93)
RES = 0.2

# Lambert-93 as a BD ORTHO WMS extract writes it: no authority code anywhere.
L93_NO_CODE = (
    'PROJCS["EPSG:2154",GEOGCS["unknown",DATUM["unnamed",SPHEROID["unretrievable - using '
    'WGS84",6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
    'PROJECTION["Lambert_Conformal_Conic_2SP"],PARAMETER["latitude_of_origin",46.5],'
    'PARAMETER["central_meridian",3],PARAMETER["standard_parallel_1",49],'
    'PARAMETER["standard_parallel_2",44],PARAMETER["false_easting",700000],'
    'PARAMETER["false_northing",6600000],UNIT["metre",1],AXIS["Easting",EAST],'
    'AXIS["Northing",NORTH]]'
)
L93_ESRI = (
    'PROJCS["RGF_1993_Lambert_93",GEOGCS["GCS_RGF_1993",DATUM["D_RGF_1993",SPHEROID['
    '"GRS_1980",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],UNIT["Degree",'
    '0.0174532925199433]],PROJECTION["Lambert_Conformal_Conic"],PARAMETER["False_Easting",'
    '700000.0],PARAMETER["False_Northing",6600000.0],PARAMETER["Central_Meridian",3.0],'
    'PARAMETER["Standard_Parallel_1",49.0],PARAMETER["Standard_Parallel_2",44.0],'
    'PARAMETER["Latitude_Of_Origin",46.5],UNIT["Meter",1.0]]'
)
L93_LOCAL = 'LOCAL_CS["RGF93 v1 / Lambert-93",UNIT["metre",1,AUTHORITY["EPSG","9001"]]]'


def _tif(path: Path, arr: np.ndarray, transform, crs="EPSG:2154", **kw) -> Path:
    arr = arr if arr.ndim == 3 else arr[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype=arr.dtype,
        crs=crs,
        transform=transform,
        **kw,
    ) as dst:
        dst.write(arr)
    return path


def _rgbn(h: int, w: int, seed: int = 0, bands: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 255, (bands, h, w), dtype=np.uint8)


# --- one CRS-equivalence function -------------------------------------------------------


@pytest.mark.parametrize("crs", ["EPSG:2154", L93_LOCAL, L93_ESRI, L93_NO_CODE])
def test_every_spelling_of_lambert93_is_lambert93(crs: str) -> None:
    assert is_lambert93(crs)
    assert same_crs(crs, "EPSG:2154")


@pytest.mark.parametrize(
    "crs",
    ["EPSG:3946", "EPSG:27572", "EPSG:32631", "EPSG:4326", L93_NO_CODE.replace("700000", "700100")],
)
def test_other_crs_are_not_lambert93(crs: str) -> None:
    assert not is_lambert93(crs)


# --- the four cases of the "Why" ------------------------------------------------


def test_uint16_ortho_is_refused_and_no_img_is_written(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(420, 2830, (4, 64, 64)).astype(np.uint16)
    tile = _tif(tmp_path / "ortho" / "a.tif", arr, from_origin(X0, Y1, RES, RES))
    with pytest.raises(InputError) as e:
        build_aerial_patches(
            None,
            tmp_path / "ortho",
            tile,
            tile,  # type: ignore[arg-type]
            DatasetLayout(tmp_path / "ds"),
            64,
            5.0,
        )
    msg = str(e.value)
    assert str(tile) in msg and "uint16" in msg and "rescale" in msg and "\n" not in msg
    assert not (tmp_path / "ds").exists()
    with pytest.raises(InputError, match=r"a\.tif.*uint16"):
        ImageSource(tmp_path / "ortho")


def test_uint16_ortho_with_a_rescale_is_scaled_not_wrapped(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(420, 2830, (4, 64, 64)).astype(np.uint16)
    tile = _tif(tmp_path / "a.tif", arr, from_origin(X0, Y1, RES, RES))
    prod = Product("ortho16", [tile], {"R": 1, "G": 2, "B": 3, "NIR": 4}, rescale=(420, 2829))
    with Mosaic([prod]) as m:
        got, covered = m.read((X0, Y1 - 64 * RES, X0 + 64 * RES, Y1))
    expected = np.clip((arr.astype(float) - 420) * 255 / (2829 - 420), 0, 255)
    assert covered.all()
    assert np.abs(got.astype(float) - expected).max() <= 0.5 + 1e-9
    assert not np.array_equal(got, (arr % 256).astype(np.uint8))


@pytest.mark.parametrize("nodata", [65535, 0])
def test_nodata_through_a_rescale_stays_no_data(tmp_path: Path, nodata: int) -> None:
    """uint16 with nodata and `rescale: [0, 3000]`: the nodata is found on the source values,
    before scaling. 65535 would otherwise scale to 255 (white pixels counted as data), and
    valid dark pixels (1 -> 0.085 -> 0) must not be taken for a nodata of 0."""
    lo, hi = 0, 3000
    arr = np.random.default_rng(3).integers(1, 3000, (4, 64, 128)).astype(np.uint16)
    arr[:, 8:20, 8:20] = nodata  # 3.5 % of patch A: within max_nodata_fraction, so it is built
    arr[:, 40:44, 70:80] = 1  # valid dark pixels of patch B, scaled to 0
    tile = _tif(tmp_path / "a.tif", arr, from_origin(X0, Y1, RES, RES), nodata=nodata)
    prod = Product("sat16", [tile], {"R": 1, "G": 2, "B": 3, "NIR": 4}, rescale=(lo, hi))
    void = (arr == nodata).all(axis=0)
    scaled = np.clip((arr.astype(float) - lo) * 255 / (hi - lo), 0, 255)
    with Mosaic([prod]) as m:
        got, covered = m.read((X0, Y1 - 12.8, X0 + 25.6, Y1))
        assert any("sat16" in d and f"nodata {nodata}" in d for d in m.vrt.decisions), (
            m.vrt.decisions
        )
    assert np.array_equal(covered, ~void)  # the sampler counts exactly the nodata as uncovered
    assert (got[:, void] == 0).all()  # never the scaled nodata (255 for 65535)
    assert np.abs(got[:, ~void] - scaled[:, ~void]).max() <= 0.5 + 1e-9
    # built: IMG bands R, G, B, NIR hold 0 where the source is nodata; the decision is recorded
    dem = _tif(tmp_path / "dem.tif", np.full((16, 32), 50.0, np.float32), from_origin(X0, Y1, 1, 1))
    boxes = [shapely.box(X0 + c * 12.8, Y1 - 12.8, X0 + (c + 1) * 12.8, Y1) for c in (0, 1)]
    grid = gpd.GeoDataFrame(
        {"domain": ["D033_2021"] * 2, "zone": ["Z1_UU"] * 2, "patch_id": ["0-0", "0-1"]},
        geometry=boxes,
        crs="EPSG:2154",
    )
    layout = DatasetLayout(tmp_path / "ds")
    report = build_aerial_patches(grid, [prod], dem, dem, layout, 64, 5.0)
    assert report.written == 2 and any(f"nodata {nodata}" in d for d in report.decisions)
    for c, pid in enumerate(("0-0", "0-1")):
        with rasterio.open(layout.img("D033_2021", "Z1_UU", pid)) as src:
            img = src.read()
        cols = np.s_[c * 64 : (c + 1) * 64]
        assert (img[:4][:, void[:, cols]] == 0).all()
        assert np.array_equal(img[:4], got[:, :, cols])


def test_dem_in_another_crs_gives_the_true_elevation(tmp_path: Path) -> None:
    """DSM/DTM in EPSG:3946 over an EPSG:2154 patch: heights reprojected, never 0."""
    to_cc46 = Transformer.from_crs("EPSG:2154", "EPSG:3946", always_xy=True)
    bounds = (X0, Y1 - 12.8, X0 + 12.8, Y1)
    xs, ys = to_cc46.transform([bounds[0], bounds[2]], [bounds[1], bounds[3]])
    left, top = min(xs) - 20, max(ys) + 20
    n, r = 60, 1.0  # 60 m of 1 m DEM around the patch
    cols, rows = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5)
    dtm = (200.0 + 0.05 * cols * r - 0.02 * rows * r).astype(np.float32)  # a tilted plane
    dsm = dtm + 8.0
    t = from_origin(left, top, r, r)
    dsm_p = _tif(tmp_path / "dsm.tif", dsm, t, "EPSG:3946")
    dtm_p = _tif(tmp_path / "dtm.tif", dtm, t, "EPSG:3946")
    elev = Elevation(dsm_p, dtm_p, 5.0)
    try:
        band = elev.patch(bounds, (64, 64))
        cx, cy = X0 + 6.4, Y1 - 6.4
        z = elev.ground(cx, cy, bounds)
    finally:
        elev.close()
    assert (band == 40).all()  # 8 m above ground x 5 grey levels per metre
    ex, ey = to_cc46.transform(cx, cy)
    assert z == pytest.approx(200.0 + 0.05 * (ex - left) - 0.02 * (top - ey), abs=0.01)
    assert elev.decisions and "EPSG:3946" in elev.decisions[0]


def test_tiles_named_upper_case_are_read_and_fingerprinted(tmp_path: Path) -> None:
    folder = tmp_path / "raw" / "domains" / "D033_2021"
    names = ["a.tif", "b.TIF", "c.tif", "d.TIF"]
    img = _rgbn(128, 128)
    for k, name in enumerate(names):
        r, c = divmod(k, 2)
        _tif(
            folder / "ortho" / name,
            img[:, r * 64 : r * 64 + 64, c * 64 : c * 64 + 64],
            from_origin(X0 + c * 12.8, Y1 - r * 12.8, RES, RES),
        )
    with Mosaic(folder / "ortho") as m:
        got, covered = m.read((X0, Y1 - 25.6, X0 + 25.6, Y1))
        assert len(m.tiles) == 4
    assert covered.all() and np.array_equal(got, img)
    from fsspec.implementations.local import LocalFileSystem

    scan = scan_domain(LocalFileSystem(), str(tmp_path / "raw"), "D033_2021")
    assert sorted(Path(f).name for f in scan.files if "/ortho/" in f) == sorted(names)
    with ImageSource(folder / "ortho") as src:
        assert (src.width, src.height) == (128, 128)


def test_rvb_only_is_refused_naming_nir(tmp_path: Path) -> None:
    tile = _tif(
        tmp_path / "ortho" / "rvb.tif", _rgbn(64, 64, bands=3), from_origin(X0, Y1, RES, RES)
    )
    with pytest.raises(InputError) as e:
        Mosaic(tmp_path / "ortho")
    msg = str(e.value)
    assert str(tile) in msg and "NIR" in msg and "IRC" in msg and "band index" not in msg


# --- the other kinds --------------------------------------------------------------------


def test_rvb_and_irc_products_stack_to_r_g_b_nir(tmp_path: Path) -> None:
    rvb, irc = _rgbn(64, 64, 1, 3), _rgbn(64, 64, 2, 3)
    t = from_origin(X0, Y1, RES, RES)
    a = _tif(tmp_path / "49-2022-0700-6600-LA93-0M20-E080.tif", rvb, t, L93_NO_CODE)
    b = _tif(tmp_path / "49-2022-0700-6600-LA93-0M20-IRC-E080.tif", irc, t, L93_NO_CODE)
    products = [Product("rvb", [a], {"R": 1, "G": 2, "B": 3}), Product("irc", [b], {"NIR": 1})]
    with Mosaic(products) as m:
        got, _ = m.read((X0, Y1 - 12.8, X0 + 12.8, Y1))
    assert np.array_equal(got, np.concatenate([rvb, irc[:1]]))


def test_rotated_geotransform_is_refused(tmp_path: Path) -> None:
    t = Affine(0.2, 0.01, X0, 0.01, -0.2, Y1)
    tile = _tif(tmp_path / "ortho" / "rot.tif", _rgbn(32, 32), t)
    with pytest.raises(InputError, match=r"rot\.tif.*not north-up.*gdalwarp"):
        Mosaic(tmp_path / "ortho")
    with pytest.raises(InputError, match=r"rot\.tif.*not north-up"):
        ImageSource(tile)


def test_ortho_in_another_crs_is_refused(tmp_path: Path) -> None:
    _tif(
        tmp_path / "ortho" / "utm.tif",
        _rgbn(32, 32),
        from_origin(500000, 5000000, RES, RES),
        "EPSG:32631",
    )
    with pytest.raises(InputError, match=r"utm\.tif.*EPSG:32631.*gdalwarp -t_srs EPSG:2154"):
        Mosaic(tmp_path / "ortho")


def _plane(left: float, top: float, n: int, r: float) -> np.ndarray:
    cols, rows = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5)
    return (100.0 + 0.1 * (left + cols * r - X0) - 0.05 * (top - rows * r - Y1)).astype(np.float32)


def test_half_pixel_dem_grid_and_voids(tmp_path: Path) -> None:
    """LiDAR HD-like 0.5 m DSM/DTM offset by half a pixel, a DTM void of nodata -9999.

    Read as data, the void would give DSM - (-9999) = 255 everywhere near it.
    """
    left, top, n, r = X0 - 2.25, Y1 + 2.25, 40, 0.5  # x.25 / x.75 edges
    dtm = _plane(left, top, n, r)
    dsm = dtm + 3.0
    dtm[10:14, 10:14] = -9999.0  # a 2 m void of the DTM inside the patch
    t = from_origin(left, top, r, r)
    dsm_p = _tif(tmp_path / "dsm.tif", dsm, t, nodata=-9999.0)
    dtm_p = _tif(tmp_path / "dtm.tif", dtm, t, nodata=-9999.0)
    bounds = (X0, Y1 - 12.8, X0 + 12.8, Y1)
    elev = Elevation(dsm_p, dtm_p, 5.0)
    try:
        band = elev.patch(bounds, (64, 64))
        # an all-void patch far from the data
        with pytest.raises(VoidElevationError, match="void over 100%"):
            elev.patch((X0 + 100, Y1 - 112.8, X0 + 112.8, Y1 - 100), (64, 64))
    finally:
        elev.close()
    # pixel centres of the patch in DEM pixel units: the void covers DEM cols/rows 10..13
    centres = X0 + (np.arange(64) + 0.5) * RES
    dem_col = (centres - left) / r - 0.5  # continuous index of pixel centres
    near_void = (dem_col > 9 - 1e-9) & (dem_col < 14 + 1e-9)
    far = ~near_void[:, None] & ~near_void[None, :]
    assert (band[far] == 15).all()  # 3 m x 5
    assert band.min() >= 0 and (band[~far] <= 15).all()  # voids never become heights
    void_core = (dem_col > 10) & (dem_col < 13)
    assert (band[np.ix_(void_core, void_core)] == 0).all()  # ground level where void


def test_ground_under_a_void_is_the_patch_mean_not_nodata(tmp_path: Path) -> None:
    left, top, n, r = X0, Y1, 64, 0.2
    dtm = _plane(left, top, n, r)
    dtm[28:36, 28:36] = -9999.0  # void under the centroid
    t = from_origin(left, top, r, r)
    p = _tif(tmp_path / "dtm.tif", dtm, t, nodata=-9999.0)
    bounds = (X0, Y1 - 12.8, X0 + 12.8, Y1)
    elev = Elevation(p, p, 5.0)
    try:
        z = elev.ground(X0 + 6.4, Y1 - 6.4, bounds)
    finally:
        elev.close()
    assert z != -9999.0
    valid = dtm[dtm != -9999.0]
    assert valid.min() <= z <= valid.max()
    assert z == pytest.approx(float(_plane(left, top, n, r).mean()), abs=0.3)


def test_asc_tiles_without_crs_take_the_spec_crs(tmp_path: Path) -> None:
    """RGE ALTI-like ESRI ASCII tiles: no CRS inside; the spec's CRS stands in."""
    left, top, n, r = X0 - 5, Y1 + 5, 25, 1.0
    dtm = _plane(left, top, n, r)
    paths = []
    for k, (c0, name) in enumerate(((0, "RGEALTI_A.asc"), (13, "RGEALTI_B.asc"))):
        part = dtm[:, c0 : c0 + (13 if k == 0 else 12)]
        p = tmp_path / name
        with rasterio.open(
            p,
            "w",
            driver="AAIGrid",
            width=part.shape[1],
            height=n,
            count=1,
            dtype="float32",
            transform=from_origin(left + c0 * r, top, r, r),
            nodata=-99999.0,
        ) as dst:
            dst.write(part, 1)
        (tmp_path / (name[:-4] + ".prj")).unlink(missing_ok=True)
        paths.append(p)
    with rasterio.open(paths[0]) as src:
        assert src.crs is None
    with pytest.raises(InputError, match=r"RGEALTI_A\.asc.*no CRS"):
        Elevation(SurfaceInput(tuple(paths)), SurfaceInput(tuple(paths)), 5.0)
    surf = SurfaceInput(tuple(paths), crs="EPSG:2154")
    elev = Elevation(surf, surf, 5.0)
    try:
        z = elev.ground(X0 + 6.1, Y1 - 3.3)
    finally:
        elev.close()
    col, row = int((X0 + 6.1 - left) // r), int((top - (Y1 - 3.3)) // r)
    assert z == pytest.approx(float(dtm[row, col]), abs=1e-4)


def test_labels_in_another_crs_are_reprojected_and_recorded(tiny_world, tmp_path: Path) -> None:
    import geopandas as gpd
    import shapely

    folder = tiny_world.out / "domains" / tiny_world.domains[0].domain
    labels = gpd.read_file(folder / "labels.gpkg")
    labels.to_crs("EPSG:3946").to_file(tmp_path / "cc46.gpkg", driver="GPKG")
    x0, _, _, y1 = labels.total_bounds
    box = shapely.box(x0, y1 - 12.8, x0 + 12.8, y1)
    grid = gpd.GeoDataFrame(
        {
            "domain": ["D033_2021"],
            "zone": ["Z1_UU"],
            "patch_id": ["0-0"],
            "x_centroid": [box.centroid.x],
            "y_centroid": [box.centroid.y],
        },
        geometry=[box],
        crs="EPSG:2154",
    )
    ref = build_label_masks(grid, folder / "labels.gpkg", DatasetLayout(tmp_path / "a"), 64, RES)
    rep = build_label_masks(grid, tmp_path / "cc46.gpkg", DatasetLayout(tmp_path / "b"), 64, RES)
    assert ref.written == rep.written == 1 and not ref.decisions
    assert rep.decisions and "EPSG:3946" in rep.decisions[0]
    with rasterio.open(DatasetLayout(tmp_path / "a").msk("D033_2021", "Z1_UU", "0-0")) as a:
        want = a.read(1)
    with rasterio.open(DatasetLayout(tmp_path / "b").msk("D033_2021", "Z1_UU", "0-0")) as b:
        got = b.read(1)
    # vertices are reprojected exactly; only pixel centres within float noise of an edge flip
    assert (got == want).mean() > 0.99 and want.any()
