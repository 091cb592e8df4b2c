"""Parallel window reading in predict_map: N readers, the same map bytes as one reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasterio.transform import from_origin

from flair_pipeline.dataset.patch_writers import Elevation
from flair_pipeline.evaluation.predict import default_readers
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


def _tiles(folder: Path, img: np.ndarray, side: int) -> Path:
    """`img` cut into side x side GeoTIFF tiles (a folder, read through one VRT)."""
    folder.mkdir()
    for r in range(0, img.shape[1], side):
        for c in range(0, img.shape[2], side):
            t = from_origin(X0 + c * RES, Y0 - r * RES, RES, RES)
            write_geotiff(
                folder / f"t_{r}_{c}.tif", img[:, r : r + side, c : c + side], t, "EPSG:2154"
            )
    return folder


def test_many_readers_write_the_bytes_of_one_reader(tmp_path: Path) -> None:
    h, w = 160, 128
    img = _image(h, w)
    dsm, dtm = _surfaces(tmp_path, h, w)
    elev = Elevation(dsm, dtm, 5.0)
    try:  # the elevation band as the dataset build encodes it, for the expected map
        band = elev.patch((X0, Y0 - h * RES, X0 + w * RES, Y0), (h, w))
    finally:
        elev.close()
    expected, _ = _per_pixel(PixelModel(5), np.concatenate([img, band[None]]), MEAN5, STD5)
    folder = _tiles(tmp_path / "tiles", img, 64)
    maps = {}
    for n in (1, 4):
        out, probs = tmp_path / f"map{n}.tif", tmp_path / f"probs{n}.tif"
        kw = dict(mean=MEAN5, std=STD5, dsm=dsm, dtm=dtm, probabilities=probs, readers=n)
        report = _predict(PixelModel(5), folder, out, batch_size=2, **kw)
        assert report.n_windows > 3 * n  # more batches than readers: reading runs ahead
        maps[n] = (out.read_bytes(), probs.read_bytes())
        np.testing.assert_array_equal(_read(out), expected)
    assert maps[4] == maps[1]  # same bytes, whatever the number of readers


def test_readers_below_one_is_refused_and_default_is_bounded(tmp_path: Path) -> None:
    img = tmp_path / "o.tif"
    write_geotiff(img, _image(40, 40), from_origin(X0, Y0, RES, RES), "EPSG:2154")
    with pytest.raises(ValueError, match="readers"):
        _predict(PixelModel(4), img, tmp_path / "m.tif", readers=0)
    assert not (tmp_path / "m.tif").exists()
    assert 1 <= default_readers() <= 8
