"""Elevation read once per window row of a stripe: the values of the per-window read, bit for bit.

On IGN's real LiDAR-derived DSM (0.5 m, grid offset by half a pixel, nodata −9999) with a
DTM on its grid holding a band of voids: rows free of voids are read in one piece, rows
touching the voids window by window, and every window equals the per-window read; one
window is also checked against a direct rasterio read of DSM − DTM and one pixel against
bilinear interpolation by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import from_bounds

from flair_pipeline.dataset.patch_writers import Elevation
from flair_pipeline.evaluation.predict_elevation import ElevationRows
from flair_pipeline.evaluation.raster_input import ElevationSource, ImageSource
from flair_pipeline.evaluation.windows import starts
from flair_pipeline.io import write_geotiff
from tests.evaluation.test_predict import (
    MEAN5,
    RES,
    STD5,
    X0,
    Y0,
    PixelModel,
    _image,
    _per_pixel,
    _predict,
    _read,
    _surfaces,
)

REAL_DSM = Path("../shared/real-samples/ign/lidar_derived_dsm/DSM.tif")
# the ortho lies on the DSM's void-free columns 1..25 (its columns 0 and 26..29 are void)
OX, OY, OH, OW = 961405.8, 6431694.6, 64, 56
P, STRIDE = 16, 12


@pytest.fixture
def real(tmp_path: Path) -> tuple[Path, Path, Path]:
    if not REAL_DSM.is_file():
        pytest.skip(f"{REAL_DSM} absent (real samples, /work/shared/real-samples)")
    with rasterio.open(REAL_DSM) as src:
        t, shape, crs = src.transform, src.shape, src.crs
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    dtm = (2538.0 + 0.1 * cols + 0.05 * rows).astype(np.float32)
    dtm[14:16] = -9999.0  # a band of voids: the rows of windows over it are read one by one
    dtm_path = write_geotiff(tmp_path / "dtm.tif", dtm, t, crs, nodata=-9999.0)
    ortho = write_geotiff(
        tmp_path / "ortho.tif", _image(OH, OW), from_origin(OX, OY, RES, RES), "EPSG:2154"
    )
    return ortho, REAL_DSM, dtm_path


def _bilinear(path: Path, x: float, y: float) -> float:
    """The raster's value at (x, y) by bilinear interpolation between pixel centres."""
    with rasterio.open(path) as src:
        a, t = src.read(1).astype(np.float64), src.transform
    fc, fr = (x - t.c) / t.a - 0.5, (y - t.f) / t.e - 0.5
    c, r = int(np.floor(fc)), int(np.floor(fr))
    dc, dr = fc - c, fr - r
    top = a[r, c] * (1 - dc) + a[r, c + 1] * dc
    bottom = a[r + 1, c] * (1 - dc) + a[r + 1, c + 1] * dc
    return float(top * (1 - dr) + bottom * dr)


def test_rows_read_once_equal_the_per_window_read(real: tuple[Path, Path, Path]) -> None:
    ortho, dsm, dtm = real
    rows, cols = starts(OH, P, STRIDE), starts(OW, P, STRIDE)
    assert cols[-1] - cols[-2] < STRIDE  # the last column of windows is a partial step
    with ImageSource(ortho) as src, ElevationSource(dsm, dtm, src, 5.0) as elev:
        stripe = ElevationRows(elev, cols, P)
        got = {(r, c): stripe.window(r, c) for r in rows for c in cols}
        assert stripe.held() == 0  # each row dropped once its windows were cut
        for (r, c), band in got.items():
            np.testing.assert_array_equal(band, elev.read(r, c, P, P), err_msg=f"{r}, {c}")
    assert stripe.rows_whole >= 2 and stripe.rows_per_window >= 1  # both paths ran
    assert len({b.tobytes() for b in got.values()}) == len(got)  # windows really differ

    # one window of a row read whole, independently: rasterio's bilinear resampled reads
    r, c = rows[0], cols[-1]
    left, top = OX + c * RES, OY - r * RES
    bounds = (left, top - P * RES, left + P * RES, top)
    h = []
    for path in (dsm, dtm):
        with rasterio.open(path) as s:
            win = from_bounds(*bounds, transform=s.transform)
            h.append(s.read(1, window=win, out_shape=(P, P), resampling=Resampling.bilinear))
    expected = np.clip(np.round((h[0] - h[1]) * 5.0), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(got[r, c], expected)
    # and one pixel of it by hand: bilinear between the 0.5 m pixel centres, 0.2 m a level
    i, j = 5, 11
    x, y = left + (j + 0.5) * RES, top - (i + 0.5) * RES
    by_hand = (_bilinear(dsm, x, y) - _bilinear(dtm, x, y)) * 5.0
    assert abs(int(got[r, c][i, j]) - by_hand) <= 0.5 + 1e-3


def test_predict_with_partial_stripes_and_readers_maps_the_elevation(tmp_path: Path) -> None:
    h, w = 96, 150  # stripes of 64 columns: 64, 64 and a partial 22
    img = _image(h, w)
    dsm, dtm = _surfaces(tmp_path, h, w)
    elev = Elevation(dsm, dtm, 5.0)
    try:  # the elevation band as the dataset build encodes it, the whole image at once
        band = elev.patch((X0, Y0 - h * RES, X0 + w * RES, Y0), (h, w))
    finally:
        elev.close()
    expected, _ = _per_pixel(PixelModel(5), np.concatenate([img, band[None]]), MEAN5, STD5)
    ortho = write_geotiff(tmp_path / "o.tif", img, from_origin(X0, Y0, RES, RES), "EPSG:2154")
    for n in (1, 3):
        out = tmp_path / f"map{n}.tif"
        kw = dict(mean=MEAN5, std=STD5, dsm=dsm, dtm=dtm, readers=n, batch_size=3)
        _predict(PixelModel(5), ortho, out, **kw)
        np.testing.assert_array_equal(_read(out), expected)


def test_a_window_outside_the_stripe_is_refused(real: tuple[Path, Path, Path]) -> None:
    ortho, dsm, dtm = real
    with ImageSource(ortho) as src, ElevationSource(dsm, dtm, src, 5.0) as elev:
        stripe = ElevationRows(elev, [0, 12], P)
        with pytest.raises(ValueError, match="outside the stripe"):
            stripe.window(0, 24)


def test_a_dsm_covering_the_image_exactly_reads_rows_between_the_edge_windows(
    tmp_path: Path,
) -> None:
    """IGN's DSM/DTM tiles cover the ortho exactly: no margin at the image's edges."""
    h, w, p = 80, 150, 32  # 16 m x 30 m; the DSM/DTM are 16 x 30 pixels of 1 m on its extent
    rng = np.random.default_rng(5)
    dtm = (300 + rng.normal(0, 1, (h // 5, w // 5))).astype(np.float32)
    dsm = dtm + np.clip(rng.normal(5, 6, dtm.shape), 0, None).astype(np.float32)
    t = from_origin(X0, Y0, 1.0, 1.0)
    dsm_p = write_geotiff(tmp_path / "dsm.tif", dsm, t, "EPSG:2154")
    dtm_p = write_geotiff(tmp_path / "dtm.tif", dtm, t, "EPSG:2154")
    ortho = write_geotiff(
        tmp_path / "o.tif", _image(h, w), from_origin(X0, Y0, RES, RES), "EPSG:2154"
    )
    rows, cols = starts(h, p, 24), starts(w, p, 24)
    with ImageSource(ortho) as src, ElevationSource(dsm_p, dtm_p, src, 5.0) as elev:
        assert elev.read_direct(rows[1], cols[0], p, cols[-1] + p) is None  # no edge margin
        stripe = ElevationRows(elev, cols, p)
        for r in rows:
            for c in cols:
                np.testing.assert_array_equal(stripe.window(r, c), elev.read(r, c, p, p))
    # the middle row between its edge windows; the top and bottom rows window by window
    assert (stripe.rows_whole, stripe.rows_per_window) == (1, 2)
