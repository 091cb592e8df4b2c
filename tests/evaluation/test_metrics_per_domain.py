"""Per-domain scores with several patches per domain, against counts made pixel by pixel."""

from __future__ import annotations

import numpy as np

from flair_pipeline.evaluation.metrics import ConfusionAccumulator
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
    for c in range(N - 1):  # classes 0..11; "other" (12) is not averaged (DESIGN §5)
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
