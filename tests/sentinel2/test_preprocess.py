"""FLAIR-2 preprocessing on hand-made arrays with known answers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from flair_pipeline.sentinel2.preprocess import cloud_filter, cloudy_share, monthly_average

D = [dt.date(2021, 1, 5), dt.date(2021, 1, 20), dt.date(2021, 2, 9), dt.date(2021, 3, 1)]


def _masks(snw_px: list[int], cld_px: list[int], value: int = 60) -> np.ndarray:
    """T×2×2×2 masks: the first n pixels (of 4) of each date at `value`."""
    m = np.zeros((len(snw_px), 2, 4), np.uint8)
    for t, (s, c) in enumerate(zip(snw_px, cld_px, strict=True)):
        m[t, 0, :s], m[t, 1, :c] = value, value
    return m.reshape(len(snw_px), 2, 2, 2)


def _data(t: int) -> np.ndarray:
    return np.arange(t * 10 * 4, dtype=np.uint16).reshape(t, 10, 2, 2)


def test_cloudy_share_counts_the_union() -> None:
    # date 1: the same 2 pixels snowy and cloudy -> 0.5, not 1.0
    np.testing.assert_allclose(
        cloudy_share(_masks([0, 2, 3, 0], [1, 2, 0, 4])), [0.25, 0.5, 0.75, 1]
    )


def test_cloud_filter_keeps_exact_dates() -> None:
    data, masks = _data(4), _masks([0, 2, 3, 0], [1, 2, 0, 4])
    f = cloud_filter(data, masks, D)
    assert f.dates == [D[0], D[1]]  # 0.25 and 0.5 (not above 0.5) kept; 0.75 and 1.0 dropped
    np.testing.assert_array_equal(f.kept, [0, 1])
    np.testing.assert_array_equal(f.data, data[[0, 1]])
    np.testing.assert_array_equal(f.masks, masks[[0, 1]])


def test_cloud_filter_threshold_is_inclusive_and_tunable() -> None:
    masks = _masks([0, 0, 0, 0], [3, 3, 0, 0], value=59)  # below 60: not cloudy
    assert cloud_filter(_data(4), masks, D).dates == D
    assert cloud_filter(_data(4), masks, D, threshold=59).dates == [D[2], D[3]]
    assert cloud_filter(_data(4), masks, D, threshold=59, max_fraction=0.8).dates == D


def test_cloud_filter_keeps_least_cloudy_when_all_fail() -> None:
    f = cloud_filter(_data(4), _masks([4, 3, 4, 3], [0, 3, 3, 4]), D)
    assert f.dates == [D[1]] and f.kept.tolist() == [1] and f.data.shape == (1, 10, 2, 2)


def test_monthly_average() -> None:
    data = np.zeros((4, 10, 2, 2), np.uint16)
    data[0], data[1], data[2], data[3] = 100, 201, 7, 65535
    masks = np.zeros((4, 2, 2, 2), np.uint8)
    masks[1, 1] = 100
    dates = [D[2], D[0], D[3], D[1]]  # February, January, March, January (unsorted)
    avg, avg_m, months = monthly_average(data, masks, dates)
    assert months == [dt.date(2021, 1, 15), dt.date(2021, 2, 15), dt.date(2021, 3, 15)]
    assert avg.dtype == np.float32 and avg.shape == (3, 10, 2, 2)
    np.testing.assert_array_equal(avg[:, 0, 0, 0], [(201 + 65535) / 2, 100, 7])
    assert avg_m.dtype == np.float32 and avg_m[0, 1, 0, 0] == 50 and avg_m[1].max() == 0


def test_monthly_average_spans_years_and_rejects_bad_shapes() -> None:
    dates = [dt.date(2020, 12, 30), dt.date(2021, 1, 2)]
    _, _, months = monthly_average(_data(2), _masks([0, 0], [0, 0]), dates)
    assert months == [dt.date(2020, 12, 15), dt.date(2021, 1, 15)]
    with pytest.raises(ValueError, match="differ"):
        monthly_average(_data(3), _masks([0, 0], [0, 0]), dates)
