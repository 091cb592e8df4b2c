"""FLAIR's metric against confusion matrices and scores computed by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from flair_pipeline.metrics import (
    ConfusionAccumulator,
    Scores,
    confusion_matrix,
    domain_of,
)
from flair_pipeline.nomenclature import INVALID, MERGED_NAMES

# 10 pixels: truth / prediction as merged class indices (12 = "other").
TRUTH = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 12], dtype=np.uint8)
PRED = np.array([0, 0, 0, 1, 1, 1, 2, 2, 0, 12], dtype=np.uint8)


def test_confusion_matrix_rows_are_truth() -> None:
    m = confusion_matrix(TRUTH, PRED)
    assert m.shape == (13, 13) and m.dtype == np.int64
    expected = np.zeros((13, 13), dtype=np.int64)
    expected[0, 0], expected[0, 1] = 3, 1  # truth 0: three right, one called 1
    expected[1, 1], expected[1, 2] = 2, 1
    expected[2, 2], expected[2, 0] = 1, 1
    expected[12, 12] = 1
    np.testing.assert_array_equal(m, expected)


def test_scores_by_hand() -> None:
    s = Scores.from_confusion(confusion_matrix(TRUTH, PRED))
    # class 0: TP 3, FP 1 (a true 2), FN 1 -> IoU 3/5, P 3/4, R 3/4, F1 3/4
    # class 1: TP 2, FP 1, FN 1 -> IoU 2/4, P = R = F1 = 2/3
    # class 2: TP 1, FP 1, FN 1 -> IoU 1/3, P = R = F1 = 1/2
    # other:   TP 1 -> IoU 1, but it is not part of the mIoU
    assert s.iou[:3] == pytest.approx([3 / 5, 2 / 4, 1 / 3])
    assert s.precision[:3] == pytest.approx([3 / 4, 2 / 3, 1 / 2])
    assert s.recall[:3] == pytest.approx([3 / 4, 2 / 3, 1 / 2])
    assert s.f1[:3] == pytest.approx([3 / 4, 2 / 3, 1 / 2])
    assert s.iou[12] == 1.0
    assert list(s.support[[0, 1, 2, 12]]) == [4, 3, 2, 1]
    # classes 3..11 appear nowhere: undefined, and left out of the mean
    assert np.isnan(s.iou[3:12]).all()
    assert s.miou == pytest.approx((3 / 5 + 2 / 4 + 1 / 3) / 3)
    assert s.overall_accuracy == pytest.approx(7 / 10)


def test_predicted_but_absent_class_counts_as_zero() -> None:
    # truth [0, 0], prediction [0, 3]: class 3 is a pure false positive -> IoU 0, not NaN
    s = Scores.from_confusion(confusion_matrix(np.array([0, 0]), np.array([0, 3])))
    assert s.iou[0] == pytest.approx(1 / 2)
    assert s.iou[3] == 0.0
    assert s.miou == pytest.approx(0.25)
    assert s.precision[3] == 0.0 and np.isnan(s.recall[3]) and s.f1[3] == 0.0
    assert s.precision[0] == 1.0 and s.recall[0] == 0.5 and s.f1[0] == pytest.approx(2 / 3)


def test_invalid_and_out_of_range_pixels_are_ignored() -> None:
    truth = np.array([0, INVALID, 1, 1], dtype=np.uint8)
    pred = np.array([0, 0, INVALID, 1], dtype=np.uint8)
    m = confusion_matrix(truth, pred)
    assert m.sum() == 2 and m[0, 0] == 1 and m[1, 1] == 1
    assert confusion_matrix(np.array([-1, 0]), np.array([0, 0])).sum() == 1


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="pixels"):
        confusion_matrix(np.zeros(3, np.uint8), np.zeros(4, np.uint8))


def test_accumulator_sums_patches_and_domains() -> None:
    acc = ConfusionAccumulator()
    acc.add(TRUTH[:5], PRED[:5], "D033_2021")
    acc.add(TRUTH[5:], PRED[5:], "D004_2021")
    acc.add(np.array([[0, 0]]), np.array([[0, 0]]), None)  # counted overall, no domain
    s = acc.scores()
    whole = confusion_matrix(TRUTH, PRED)
    whole[0, 0] += 2
    np.testing.assert_array_equal(s.matrix, whole)
    assert s.n_patches == 3
    assert list(s.per_domain) == ["D004_2021", "D033_2021"]  # sorted
    d33 = s.per_domain["D033_2021"]
    # D033: truth [0,0,0,0,1], pred [0,0,0,1,1] -> class 0 IoU 3/4, class 1 IoU 1/2
    assert d33.iou[0] == pytest.approx(3 / 4) and d33.iou[1] == pytest.approx(1 / 2)
    assert d33.miou == pytest.approx(5 / 8) and d33.overall_accuracy == pytest.approx(4 / 5)
    assert d33.n_patches == 1


def test_to_dict_is_strict_json_with_null_for_undefined() -> None:
    acc = ConfusionAccumulator()
    acc.add(TRUTH, PRED, "D033_2021")
    d = acc.scores().to_dict()
    text = json.dumps(d, allow_nan=False)  # raises on NaN
    back = json.loads(text)
    assert set(back) == {"miou", "overall_accuracy", "per_class", "per_domain", "n_patches"}
    assert list(back["per_class"]) == list(MERGED_NAMES)
    assert back["per_class"]["building"] == {
        "iou": pytest.approx(0.6),
        "f1": pytest.approx(0.75),
        "precision": pytest.approx(0.75),
        "recall": pytest.approx(0.75),
        "support": 4,
    }
    assert back["per_class"]["water"]["iou"] is None
    dom = back["per_domain"]["D033_2021"]
    assert dom["miou"] == pytest.approx(back["miou"])
    assert dom["per_class"]["pervious surface"] == pytest.approx(0.5)


def test_empty_matrix_has_undefined_scores() -> None:
    s = Scores.from_confusion(np.zeros((13, 13), dtype=np.int64))
    assert math.isnan(s.miou) and math.isnan(s.overall_accuracy)
    assert s.to_dict()["miou"] is None


def test_domain_of_patch_paths() -> None:
    assert domain_of("data/dataset/labels/D033_2021/Z1_UA/msk/MSK_000123.tif") == "D033_2021"
    assert domain_of("/preds/D004_2021/PRED_1.tif") == "D004_2021"
    assert domain_of("/preds/PRED_1.tif") is None
    assert domain_of("/D033_2021.tif") is None  # a file name is not a folder
