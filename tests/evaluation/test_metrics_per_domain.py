"""Per-domain scores with several patches per domain, against counts made pixel by pixel."""

from __future__ import annotations

import numpy as np

from flair_pipeline.metrics import ConfusionAccumulator
from flair_pipeline.nomenclature import N_CLASSES_MERGED

N = N_CLASSES_MERGED


def _count(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The confusion matrix by a plain loop over pixels (rows truth, columns prediction)."""
    m = np.zeros((N, N), np.int64)
    for truth, pred in pairs:
        for t, p in zip(truth.ravel().tolist(), pred.ravel().tolist(), strict=True):
            if t < N and p < N:
                m[t, p] += 1
    return m


def _miou(m: np.ndarray) -> float:
    ious = []
    for c in range(N - 1):  # classes 0..11; "other" (12) is not averaged (metrics.py: FLAIR's mIoU)
        tp, fp, fn = m[c, c], m[:, c].sum() - m[c, c], m[c, :].sum() - m[c, c]
        if tp + fp + fn:
            ious.append(tp / (tp + fp + fn))
    return float(np.mean(ious))


def test_domains_sum_all_their_patches() -> None:
    rng = np.random.default_rng(7)
    patches = {"D004_2021": 3, "D033_2021": 2, "D060_2021": 4}
    acc = ConfusionAccumulator()
    seen: dict[str, list] = {d: [] for d in patches}
    order = [d for d, k in patches.items() for _ in range(k)]
    rng.shuffle(order)  # domains interleaved, as a loader returns them
    for d in order:
        truth = rng.integers(0, 14, (6, 5)).astype(np.uint8)  # 13 = beyond the classes
        truth[0, 0] = 255  # INVALID is ignored
        pred = np.where(rng.random((6, 5)) < 0.6, truth, rng.integers(0, N, (6, 5)))
        pred = pred.astype(np.uint8)
        acc.add(truth, pred, domain=d)
        seen[d].append((truth, pred))
    scores = acc.scores()
    assert scores.n_patches == 9
    np.testing.assert_array_equal(scores.matrix, _count([p for v in seen.values() for p in v]))
    assert sorted(scores.per_domain) == sorted(patches)
    for d, k in patches.items():
        s = scores.per_domain[d]
        expected = _count(seen[d])
        assert s.n_patches == k
        np.testing.assert_array_equal(s.matrix, expected)
        assert abs(s.miou - _miou(expected)) < 1e-12
        assert s.matrix.sum() == sum(int(((t < N) & (p < N)).sum()) for t, p in seen[d])
    out = scores.to_dict()["per_domain"]
    assert {d: v["n_patches"] for d, v in out.items()} == patches


def test_invalid_and_out_of_range_pixels_of_any_dtype_are_ignored() -> None:
    """Signed truth with -1, 13 and 255; unsigned prediction with 13 (one past the classes)."""
    truth = np.array([0, 1, -1, 13, 255, 2, 2, 12], dtype=np.int16)
    pred = np.array([0, 13, 3, 1, 1, 2, 4, 12], dtype=np.uint8)
    expected = np.zeros((N, N), np.int64)
    for t, p in ((0, 0), (2, 2), (2, 4), (12, 12)):  # the pairs with both in 0..12, by hand
        expected[t, p] += 1
    for a, b in (
        (truth, pred),
        (truth.astype(np.int64), pred.astype(np.int32)),
        (truth.astype(np.float32), pred.astype(np.int8)),
    ):
        acc = ConfusionAccumulator()
        acc.add(a, b, domain="D004_2021")
        np.testing.assert_array_equal(acc.scores().matrix, expected, err_msg=f"{a.dtype}")


def test_custom_class_list_reaches_every_score() -> None:
    """Five named classes: the matrix size, names and mIoU classes follow, per domain too."""
    names = ("a", "b", "c", "d", "e")
    acc = ConfusionAccumulator(n_classes=5)
    assert acc.total.dtype == np.int64
    truth = np.array([0, 1, 2, 3, 4, 4, 7])
    pred = np.array([0, 1, 1, 3, 4, 0, 4])  # 7 is outside the 5 classes: ignored
    acc.add(truth, pred, domain="D033_2021")
    s = acc.scores(names=names)
    assert s.names == names and s.per_domain["D033_2021"].names == names
    assert s.matrix.shape == (5, 5) and s.matrix.sum() == 6
    # IoU by hand: a 1/2, b 1/2, c 0/1, d 1/1, e 1/2; all five are mIoU classes here
    assert abs(s.miou - (0.5 + 0.5 + 0.0 + 1.0 + 0.5) / 5) < 1e-12
    assert abs(s.per_domain["D033_2021"].miou - s.miou) < 1e-12
    assert s.to_dict()["per_domain"]["D033_2021"]["overall_accuracy"] == 4 / 6


def test_from_confusion_counts_are_integers_and_shape_is_checked() -> None:
    from flair_pipeline.metrics import Scores

    m = np.eye(N) * 3.0  # the validation loop hands a float matrix
    s = Scores.from_confusion(m)
    assert s.matrix.dtype == np.int64 and s.n_patches == 0 and s.miou == 1.0
    import pytest

    with pytest.raises(ValueError, match=r"confusion matrix is \(3, 3\), expected 13 classes"):
        Scores.from_confusion(np.zeros((3, 3)))
