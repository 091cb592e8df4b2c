"""Evaluation predictions over the void (issue 29): nodata where the IMG has none, not scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.checkpoint_eval import image_valid
from flair_pipeline.evaluation.scoring import evaluate
from flair_pipeline.io import write_geotiff
from tests.evaluation.test_evaluate import T, _tif


def test_declared_nodata_in_a_prediction_is_not_scored(tmp_path: Path) -> None:
    labels, preds = tmp_path / "labels", tmp_path / "preds"
    _tif(labels / "D033_2021/Z1_UA/msk/MSK_a.tif", np.array([[1, 1], [2, 15]]))
    write_geotiff(
        preds / "PRED_a.tif", np.array([[0, 2], [2, 13]], np.uint8), T, "EPSG:2154", nodata=0
    )
    s = evaluate(preds, labels)
    # by hand, pixel (0, 0) left out: (1 -> 2), (2 -> 2), (15 -> 13: both "other")
    assert s.iou[0] == 0.0 and s.iou[1] == pytest.approx(1 / 2)
    assert s.overall_accuracy == pytest.approx(2 / 3) and int(s.support.sum()) == 3
    # the same 0 undeclared is refused, as any code outside 1..19
    _tif(preds / "PRED_a.tif", np.array([[0, 2], [2, 13]]))
    with pytest.raises(InputError, match=r"PRED_a\.tif: label codes must be 1\.\.19, found \[0\]"):
        evaluate(preds, labels)


def test_image_valid_reads_the_img_nodata(tmp_path: Path) -> None:
    img = np.full((5, 32, 32), 90, np.uint8)
    img[:, :, :11] = 0  # columns 0..10 outside the flight, every band at nodata 0
    img[:4, 20, 3] = 7  # a pixel with data in the margin
    path = write_geotiff(tmp_path / "IMG_1.tif", img, T, "EPSG:2154", nodata=0)
    expected = np.ones((32, 32), bool)
    expected[:, :11] = False
    expected[20, 3] = True
    np.testing.assert_array_equal(image_valid(path, 5, (32, 32)), expected)
    plain = write_geotiff(tmp_path / "IMG_2.tif", img, T, "EPSG:2154")  # declares nothing
    assert image_valid(plain, 5, (32, 32)).all()
    with pytest.raises(InputError, match=r"IMG_1\.tif: \(32, 32\) image, its label is"):
        image_valid(path, 5, (64, 64))
    with rasterio.open(path) as src:
        assert src.nodata == 0


def test_evaluate_checkpoint_writes_nodata_and_skips_it(tmp_path: Path) -> None:
    """A test IMG with a nodata margin: PRED is 0 there, declared, and those pixels unscored."""
    from types import SimpleNamespace

    from flair_pipeline.evaluation.checkpoint_eval import evaluate_checkpoint
    from flair_pipeline.sources.flair_release import ManifestRow, write_manifest
    from tests.evaluation.test_predict import _checkpoint, _image

    img = _image(64, 64)
    img[:, :, :21] = 255  # columns 0..20: no data (nodata 255 in every band)
    rel = tmp_path / "rel"
    i = write_geotiff(rel / "D033_2021/Z1_UA/img/IMG_1.tif", img, T, "EPSG:2154", nodata=255)
    truth = np.where(np.arange(64)[None, :] < 32, 1, 10).repeat(64, 0).astype(np.uint8)
    m = _tif(rel / "D033_2021/Z1_UA/msk/MSK_1.tif", truth)
    row = ManifestRow(
        "1", "D033_2021", "Z1_UA", "test", "folder", "test", "", "img", "msk", 64, 64, 4,
        "EPSG:2154", 0.0, 0.0, str(i), str(m),
    )  # fmt: skip
    manifest = write_manifest(SimpleNamespace(rows=[row]), tmp_path / "manifest.csv")  # type: ignore[arg-type]
    report = evaluate_checkpoint(
        _checkpoint(tmp_path / "u.ckpt"), manifest, tmp_path / "ev", device="cpu"
    )
    pred_file = next((tmp_path / "ev").rglob("PRED_1.tif"))
    with rasterio.open(pred_file) as p:
        assert p.nodata == 0 and p.colormap(1)[13] == (0, 0, 0, 255)
        pred = p.read(1)
    assert (pred[:, :21] == 0).all() and (pred[:, 21:] >= 1).all()
    assert report.void_pixels == 64 * 21 == report.as_metadata()["void_pixels"]
    assert int(report.scores.support.sum()) == 64 * 43  # only pixels with data are scored
    again = evaluate(pred_file.parent, rel)  # the files alone give the same score
    np.testing.assert_array_equal(again.matrix, report.scores.matrix)
