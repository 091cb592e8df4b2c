"""`flair-pipeline evaluate` on real GeoTIFFs: scores, files written, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from flair_pipeline.cli import main
from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.plots import confusion_csv, confusion_png, patch_figure
from flair_pipeline.evaluation.scoring import evaluate
from flair_pipeline.io import write_geotiff
from flair_pipeline.nomenclature import colormap

T = from_origin(700_000.0, 6_600_000.0, 0.2, 0.2)


def _tif(path: Path, codes: np.ndarray, transform=T, crs: str = "EPSG:2154") -> Path:
    return write_geotiff(path, codes.astype(np.uint8), transform, crs, colormap=colormap())


def _world(tmp_path: Path) -> tuple[Path, Path]:
    """Two domains, one patch each (2 x 2 px), whose scores are worked out in the tests.

    a (D033_2021): truth [[1, 1], [2, 15]], prediction [[1, 2], [2, 19]]
    b (D004_2021): truth [[3, 3], [3, 1]],  prediction [[3, 3], [1, 1]]
    """
    labels, preds = tmp_path / "labels", tmp_path / "preds"
    _tif(labels / "D033_2021/Z1_UA/msk/MSK_a.tif", np.array([[1, 1], [2, 15]]))
    _tif(labels / "D004_2021/Z2_UN/msk/MSK_b.tif", np.array([[3, 3], [3, 1]]))
    _tif(preds / "D033_2021/PRED_a.tif", np.array([[1, 2], [2, 19]]))
    _tif(preds / "MSK_b.tif", np.array([[3, 3], [1, 1]]))  # FLAIR's own naming, flat
    return preds, labels


def test_scores_of_two_patches_by_hand(tmp_path: Path) -> None:
    preds, labels = _world(tmp_path)
    s = evaluate(preds, labels)
    # building: TP 2 (a, b), FP 1 (b), FN 1 (a) -> IoU 2/4, F1 4/6
    # pervious: TP 1, FP 1 -> IoU 1/2;   impervious: TP 2, FN 1 -> IoU 2/3
    # 15 vs 19 are both "other": right, but "other" is not in the mIoU
    assert s.iou[0] == pytest.approx(1 / 2) and s.f1[0] == pytest.approx(2 / 3)
    assert s.iou[1] == pytest.approx(1 / 2) and s.iou[2] == pytest.approx(2 / 3)
    assert s.iou[12] == 1.0
    assert s.miou == pytest.approx((1 / 2 + 1 / 2 + 2 / 3) / 3)
    assert s.overall_accuracy == pytest.approx(6 / 8)
    assert s.n_patches == 2
    assert s.per_domain["D033_2021"].iou[1] == pytest.approx(1 / 2)
    assert s.per_domain["D004_2021"].miou == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_cli_writes_metrics_csvs_and_figure(tmp_path: Path, capsys) -> None:
    preds, labels = _world(tmp_path)
    out = tmp_path / "eval"
    rc = main(
        [
            "evaluate",
            "--predictions",
            str(preds),
            "--labels",
            str(labels),
            "--out",
            str(out / "metrics.json"),
            "--confusion-csv",
            str(out / "confusion.csv"),
            "--per-domain-csv",
            str(out / "per_domain.csv"),
            "--confusion-png",
            str(out / "confusion.png"),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_patches"] == 2
    assert m["miou"] == pytest.approx((1 / 2 + 1 / 2 + 2 / 3) / 3)
    assert m["per_class"]["impervious surface"]["support"] == 3
    assert m["per_class"]["impervious surface"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["water"]["iou"] is None
    assert set(m["per_domain"]) == {"D004_2021", "D033_2021"}
    rows = (out / "confusion.csv").read_text().splitlines()
    assert rows[0].startswith("truth\\pred,building,pervious surface")
    assert rows[1] == "building,2,1,0,0,0,0,0,0,0,0,0,0,0"
    assert rows[13].endswith(",1")  # other -> other
    dom = (out / "per_domain.csv").read_text().splitlines()
    assert dom[0].startswith("domain,n_patches,miou,overall_accuracy,building")
    assert dom[1].startswith("D004_2021,1,0.583333,0.750000,0.500000,,0.666667")
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mIoU (classes 1-12) 0.5556" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "confusion.csv",
        "confusion.png",
        "metrics.json",
        "per_domain.csv",
    ]


def _error(tmp_path: Path, preds: Path, labels: Path, capsys) -> str:
    out = tmp_path / "out" / "metrics.json"
    rc = main(["evaluate", "--predictions", str(preds), "--labels", str(labels), "--out", str(out)])
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert rc == 1 and err.startswith("error: ") and "Traceback" not in err
    assert not out.parent.exists() or not any(out.parent.iterdir())
    return err


def test_missing_prediction(tmp_path: Path, capsys) -> None:
    preds, labels = _world(tmp_path)
    (preds / "MSK_b.tif").unlink()
    err = _error(tmp_path, preds, labels, capsys)
    assert "1 labelled patch(es) have no PRED_<id>.tif" in err and "MSK_b.tif" in err


def test_duplicate_prediction_id(tmp_path: Path, capsys) -> None:
    preds, labels = _world(tmp_path)
    _tif(preds / "other_run" / "PRED_b.tif", np.array([[3, 3], [1, 1]]))
    err = _error(tmp_path, preds, labels, capsys)
    assert "duplicate prediction for patch b" in err and "other_run/PRED_b.tif" in err


@pytest.mark.parametrize(
    ("codes", "transform", "crs", "message"),
    [
        (np.ones((2, 3)), T, "EPSG:2154", "shape 2x3 differs from 2x2"),
        (np.ones((2, 2)), from_origin(700_000.4, 6_600_000.0, 0.2, 0.2), "EPSG:2154", "origin"),
        (np.ones((2, 2)), from_origin(700_000.0, 6_600_000.0, 0.5, 0.5), "EPSG:2154", "transform"),
        (np.ones((2, 2)), T, "EPSG:32631", "CRS"),
    ],
)
def test_grid_mismatch(tmp_path: Path, capsys, codes, transform, crs, message) -> None:
    preds, labels = _world(tmp_path)
    _tif(preds / "D033_2021/PRED_a.tif", codes, transform, crs)
    err = _error(tmp_path, preds, labels, capsys)
    assert "PRED_a.tif: not on the grid of its label" in err and message in err


@pytest.mark.parametrize(("side", "bad"), [("pred", 0), ("pred", 20), ("label", 20)])
def test_unknown_code(tmp_path: Path, capsys, side: str, bad: int) -> None:
    preds, labels = _world(tmp_path)
    target = preds / "MSK_b.tif" if side == "pred" else labels / "D004_2021/Z2_UN/msk/MSK_b.tif"
    _tif(target, np.array([[3, bad], [1, 1]]))
    err = _error(tmp_path, preds, labels, capsys)
    allowed = "1..19" if side == "pred" else "0..19 (0 = unlabelled)"
    assert f"{target}: label codes must be {allowed}, found [{bad}]" in err


def test_no_labels_and_no_folder(tmp_path: Path) -> None:
    preds, labels = _world(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no label files"):
        evaluate(preds, tmp_path / "empty")
    with pytest.raises(InputError, match="missing: prediction folder not found"):
        evaluate(tmp_path / "missing", labels)


def test_multiband_prediction_is_refused(tmp_path: Path) -> None:
    preds, labels = _world(tmp_path)
    write_geotiff(preds / "MSK_b.tif", np.ones((2, 2, 2), np.uint8), T, "EPSG:2154")
    with pytest.raises(InputError, match=r"MSK_b\.tif: prediction has 2 bands, expected 1"):
        evaluate(preds, labels)


def test_real_flair_labels_with_local_cs_quirk(tmp_path: Path, real_flair: Path) -> None:
    """Real MSKs (some with a LOCAL_CS Lambert-93 CRS) against predictions on the IMG grid."""
    preds = tmp_path / "preds"
    n = 0
    for msk in sorted(real_flair.rglob("MSK_*.tif")):
        pid = msk.stem[4:]
        img = next(real_flair.rglob(f"IMG_{pid}.tif"))
        with rasterio.open(img) as isrc, rasterio.open(msk) as msrc:
            codes = msrc.read(1)
            pred = codes.copy()
            pred[:, :256] = 10  # left half called herbaceous vegetation
            _tif(preds / f"PRED_{pid}.tif", pred, isrc.transform, "EPSG:2154")
        n += 1
    s = evaluate(preds, real_flair)
    assert s.n_patches == n == 5 and len(s.per_domain) == 5
    right = 0
    for msk in real_flair.rglob("MSK_*.tif"):
        with rasterio.open(msk) as src:
            codes = src.read(1)
        right += int((codes[:, 256:] > 0).sum() + (codes[:, :256] == 10).sum())
    assert s.overall_accuracy == pytest.approx(right / (n * 512 * 512))
    assert 0 < s.miou < 1


def test_figures() -> None:
    m = np.diag(np.arange(1, 14))
    png = confusion_png(m)
    assert png[:4] == b"\x89PNG" and len(png) > 10_000
    assert confusion_csv(m).count("\n") == 14
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (5, 16, 16), dtype=np.uint8)
    codes = rng.integers(1, 20, (16, 16), dtype=np.uint8)
    fig = patch_figure([img, img], [codes, codes], [codes, codes], ["a", "b"])
    assert fig[:4] == b"\x89PNG"


def test_label_copies_under_predictions_are_duplicates(tmp_path: Path) -> None:
    """MSK copies under the predictions folder would pair twice: refused, not guessed."""
    preds, labels = _world(tmp_path)
    shutil.copytree(labels, preds / "copy_of_labels")
    with pytest.raises(InputError, match="duplicate prediction for patch"):
        evaluate(preds, labels)
