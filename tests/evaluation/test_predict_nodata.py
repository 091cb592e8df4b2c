"""Maps over the void (issue 29): the ortho's no data is the map's nodata, declared.

Real GeoTIFFs with a nodata margin, an alpha band, an internal mask, and tiles with a gap;
the expected void pixels are written down by hand (a column, a row, a quadrant), and the
expected classes inside come from the per-pixel model applied to the whole image at once.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from flair_pipeline.errors import InputError
from flair_pipeline.io import write_geotiff
from tests.evaluation.test_predict import (
    MEAN4,
    MEAN5,
    RES,
    STD4,
    STD5,
    X0,
    Y0,
    PixelModel,
    T,
    _image,
    _per_pixel,
    _predict,
)

H, W = 70, 90
MARGIN = 37  # columns 0..36 lie outside the flight; 37 is the first pixel of data


def _map(path):
    with rasterio.open(path) as src:
        return src.read(1), src.nodata, src.tags()


def _expected(img: np.ndarray, void: np.ndarray, model: PixelModel) -> np.ndarray:
    codes, _ = _per_pixel(model, img[:4], MEAN4, STD4)
    return np.where(void, 0, codes).astype(np.uint8)


def test_nodata_margin_is_nodata_in_the_map(tmp_path) -> None:
    img = _image(H, W)
    img[:, :, :MARGIN] = 255  # IGN's BD ORTHO nodata
    img[:, 5, MARGIN] = 255  # the first data column, row 5: 255 in every band: void
    img[:3, 6, MARGIN] = 255  # row 6: 255 in every band but NIR: data
    img[3, 6, MARGIN] = 17
    img[1, 9, MARGIN + 4] = 255  # inside: one band at 255 is still data
    src = write_geotiff(tmp_path / "o.tif", img, T, "EPSG:2154", nodata=255)
    void = np.zeros((H, W), bool)
    void[:, :MARGIN] = True  # by hand: the margin, and the one pixel at 255 everywhere
    void[5, MARGIN] = True
    model = PixelModel(4)
    report = _predict(model, src, tmp_path / "map.tif")
    codes, nodata, tags = _map(tmp_path / "map.tif")
    assert nodata == 0
    np.testing.assert_array_equal(codes, _expected(img, void, model))
    assert (codes[:, MARGIN - 1] == 0).all()  # the edge: the last void column
    assert codes[5, MARGIN] == 0 and (np.delete(codes[:, MARGIN], 5) >= 1).all()
    assert codes[6, MARGIN] >= 1 and codes[9, MARGIN + 4] >= 1
    assert report.void_pixels == H * MARGIN + 1 == int(tags["FLAIR_VOID_PIXELS"])
    assert sum(report.class_pixels.values()) == H * (W - MARGIN) - 1  # void is in no class


def test_alpha_band_is_the_mask(tmp_path) -> None:
    img = _image(H, W, bands=5)
    img[4] = 255
    img[4, 41:, :] = 0  # rows 41.. transparent
    img[4, 40, 10] = 1  # a barely opaque pixel is data
    path = tmp_path / "rgbn_alpha.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=W, height=H, count=5, dtype="uint8", crs="EPSG:2154",
        transform=T,
    ) as dst:  # fmt: skip
        dst.write(img)
    with rasterio.open(path, "r+") as dst:  # as gdal_edit.py -colorinterp_5 alpha does
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue,
                           ColorInterp.undefined, ColorInterp.alpha]  # fmt: skip
    with rasterio.open(path) as check:  # the file really declares band 5 as its mask
        assert check.colorinterp[4] == ColorInterp.alpha
    void = np.zeros((H, W), bool)
    void[41:, :] = True
    model = PixelModel(4)
    report = _predict(model, path, tmp_path / "map.tif", probabilities=tmp_path / "p.tif")
    codes, nodata, _ = _map(tmp_path / "map.tif")
    assert nodata == 0 and report.void_pixels == 29 * W
    np.testing.assert_array_equal(codes, _expected(img, void, model))
    with rasterio.open(tmp_path / "p.tif") as p:  # probabilities: same void, as a mask
        np.testing.assert_array_equal(p.dataset_mask() == 0, void)
        assert (p.read()[:, void] == 0).all()
    # a 5-channel model must not read the alpha band as elevation
    with pytest.raises(InputError, match=r"rgbn_alpha\.tif: band 5 is declared alpha"):
        _predict(PixelModel(5), path, tmp_path / "m5.tif", mean=MEAN5, std=STD5)


def test_internal_mask_is_the_mask(tmp_path) -> None:
    img = _image(H, W)
    mask = np.full((H, W), 255, np.uint8)
    rows, cols = np.mgrid[0:H, 0:W]
    void = cols > rows + 30  # a triangle, by hand: the pixel (r, c) is void when c > r + 30
    mask[void] = 0
    path = tmp_path / "masked.tif"
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(
            path, "w", driver="GTiff", width=W, height=H, count=4, dtype="uint8",
            crs="EPSG:2154", transform=T,
        ) as dst,
    ):  # fmt: skip
        dst.write(img)
        dst.write_mask(mask)
    assert not (tmp_path / "masked.tif.msk").exists()  # internal
    model = PixelModel(4)
    report = _predict(model, path, tmp_path / "map.tif")
    codes, nodata, _ = _map(tmp_path / "map.tif")
    assert nodata == 0 and report.void_pixels == int(void.sum())
    np.testing.assert_array_equal(codes, _expected(img, void, model))
    assert codes[0, 30] >= 1 and codes[0, 31] == 0  # the diagonal edge


def test_rgba_default_band_4_is_nir_and_said_so(tmp_path) -> None:
    """GDAL flags band 4 of a 4-band uint8 GeoTIFF as alpha: it stays NIR, with a line."""
    img = _image(H, W)
    img[3, :20, :] = 0  # NIR 0: water-like, not void
    src = write_geotiff(tmp_path / "o.tif", img, T, "EPSG:2154")
    with rasterio.open(src) as check:
        assert check.colorinterp[3] == ColorInterp.alpha  # GDAL's RGBA default
    model = PixelModel(4)
    report = _predict(model, src, tmp_path / "map.tif")
    codes, _, tags = _map(tmp_path / "map.tif")
    assert report.void_pixels == 0
    np.testing.assert_array_equal(codes, _expected(img, np.zeros((H, W), bool), model))
    assert report.decisions and "band 4 is flagged alpha" in report.decisions[0]
    assert "read as NIR" in tags["FLAIR_DECISIONS"]


def test_tiles_with_a_gap_and_a_nodata_tile(tmp_path) -> None:
    img = _image(64, 96)
    folder = tmp_path / "tiles"
    for r, c in ((0, 0), (0, 48), (32, 0)):  # no tile at rows 32.., columns 48..
        t = from_origin(X0 + c * RES, Y0 - r * RES, RES, RES)
        part = img[:, r : r + 32, c : c + 48].copy()
        nodata = None
        if (r, c) == (0, 48):
            part[:, :, 40:] = 0  # the last 8 columns of this tile are outside the flight
            nodata = 0
        write_geotiff(folder / f"t{r}_{c}.tif", part, t, "EPSG:2154", nodata=nodata)
    full = img.copy()
    full[:, 0:32, 88:] = 0
    void = np.zeros((64, 96), bool)
    void[32:, 48:] = True
    void[:32, 88:] = True
    model = PixelModel(4)
    report = _predict(model, folder, tmp_path / "map.tif")
    codes, nodata, _ = _map(tmp_path / "map.tif")
    assert nodata == 0 and report.void_pixels == 32 * 48 + 32 * 8
    np.testing.assert_array_equal(codes, _expected(full, void, model))


def test_cli_prints_the_void_count(tmp_path, capsys) -> None:
    from flair_pipeline.cli import main
    from tests.evaluation.test_predict import _checkpoint

    img = _image(100, 120)
    img[:, :, :MARGIN] = 255
    src = write_geotiff(tmp_path / "o.tif", img, T, "EPSG:2154", nodata=255)
    ckpt = _checkpoint(tmp_path / "unet.ckpt")
    out = tmp_path / "cli_map.tif"
    rc = main(["predict", "--checkpoint", str(ckpt), "--image", str(src), "--out", str(out),
               "--device", "cpu"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"{100 * MARGIN} pixel(s) with no data in the ortho" in captured.out
    assert (tmp_path / "cli_map.qml").is_file()
    codes, nodata, _ = _map(out)
    assert nodata == 0 and (codes[:, :MARGIN] == 0).all() and (codes[:, MARGIN:] >= 1).all()
