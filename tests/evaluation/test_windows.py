"""The sliding-window arithmetic of large-area prediction, function by function.

Pure integer and float arithmetic, so every expected value is written out by hand; the
inputs are a few pixels long, so a mutant that would loop or build a huge list still ends at
once (mutation testing: docs/testing.md). End-to-end behaviour on image edges is in
test_predict_edges.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from rasterio.transform import from_origin

from flair_pipeline.evaluation.windows import (
    PatchWindow,
    floor_to,
    patch_window,
    ramp,
    starts,
    stride_for,
    stripes,
    weight_window,
)


@pytest.mark.parametrize(
    ("patch", "overlap", "stride"),
    [
        (16, 0.0, 16),  # no overlap: windows side by side
        (16, 0.25, 12),  # 16 * 0.75
        (512, 0.5, 256),
        (10, 0.25, 8),  # 7.5 rounds to the even 8
        (10, 0.35, 6),  # 6.5 rounds to the even 6
        (1, 0.9, 1),  # round(0.1) = 0, floored at one pixel
        (3, 0.9, 1),  # round(0.3) = 0, floored at one pixel
    ],
)
def test_stride_is_the_non_overlapping_part_of_the_patch(
    patch: int, overlap: float, stride: int
) -> None:
    assert stride_for(patch, overlap) == stride


@pytest.mark.parametrize("overlap", [-0.01, 1.0, 1.5])
def test_overlap_outside_zero_to_one_is_refused(overlap: float) -> None:
    with pytest.raises(ValueError, match="overlap must be in"):
        stride_for(16, overlap)


@pytest.mark.parametrize(
    ("length", "size", "stride", "expected"),
    [
        (40, 16, 12, [0, 12, 24]),  # 24 = 40 - 16: the last window flush with the far edge
        (36, 16, 10, [0, 10, 20]),  # 20 = 36 - 16 is on the lattice: not repeated
        (37, 16, 10, [0, 10, 20, 21]),
        (17, 16, 12, [0, 1]),  # one pixel longer than a patch: two windows
        (16, 16, 12, [0]),  # exactly one patch
        (10, 16, 12, [0]),  # shorter than a patch: one window at 0, read padded
        (5, 1, 2, [0, 2, 4]),
    ],
)
def test_window_starts_cover_the_axis(
    length: int, size: int, stride: int, expected: list[int]
) -> None:
    got = starts(length, size, stride)
    assert got == expected
    assert got[-1] + size >= length  # the far edge is covered


def test_ramp_falls_linearly_over_the_margin_at_both_ends() -> None:
    # pixel centres 0.5, 1.5, ... from each end, divided by the margin, capped at 1
    expected = [0.125, 0.375, 0.625, 0.875, 1.0, 1.0, 0.875, 0.625, 0.375, 0.125]
    got = ramp(10, 4)
    assert got.dtype == np.float32
    assert got.tolist() == pytest.approx(expected, abs=1e-7)
    assert ramp(6, 2).tolist() == pytest.approx([0.25, 0.75, 1, 1, 0.75, 0.25], abs=1e-7)


def test_ramp_of_a_one_pixel_margin_halves_the_border_pixels() -> None:
    assert ramp(4, 1).tolist() == [0.5, 1.0, 1.0, 0.5]


@pytest.mark.parametrize("margin", [0, -3])
def test_ramp_without_margin_is_flat(margin: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by a zero margin on the way
        got = ramp(5, margin)
    assert got.dtype == np.float32
    assert got.tolist() == [1.0] * 5


def test_two_ramps_overlapping_by_the_margin_sum_to_one() -> None:
    size, margin = 12, 4
    r = ramp(size, margin).astype(np.float64)
    total = np.zeros(2 * size - margin)
    total[:size] += r
    total[size - margin :] += r
    overlap = total[size - margin : size]
    assert overlap.tolist() == pytest.approx([1.0] * margin, abs=1e-6)


def test_weight_window_is_the_outer_product_of_the_ramps() -> None:
    w = weight_window(8, 6)  # margin 8 - 6 = 2
    r = [0.25, 0.75, 1, 1, 1, 1, 0.75, 0.25]
    assert w.shape == (8, 8)
    for i in range(8):
        for j in range(8):
            assert w[i, j] == pytest.approx(r[i] * r[j], abs=1e-7)
    assert weight_window(4, 4).tolist() == [[1.0] * 4] * 4  # no overlap: flat


@pytest.mark.parametrize(
    ("width", "stripe", "expected"),
    [
        (70, 32, [(0, 32), (32, 64), (64, 70)]),
        (64, 32, [(0, 32), (32, 64)]),
        (5, 32, [(0, 5)]),
        (3, 1, [(0, 1), (1, 2), (2, 3)]),
    ],
)
def test_stripes_tile_the_width(width: int, stripe: int, expected: list) -> None:
    assert stripes(width, stripe) == expected


def test_patch_window_extent_from_the_transform() -> None:
    x0, y0, res = 702_345.6, 6_601_234.4, 0.2
    w = patch_window(3, 5, 4, from_origin(x0, y0, res, res))
    assert (w.row, w.col, w.size) == (3, 5, 4)
    # columns 5..9 and rows 3..7 of a north-up 0.2 m grid
    expected = (x0 + 5 * res, y0 - 7 * res, x0 + 9 * res, y0 - 3 * res)
    assert w.bounds == pytest.approx(expected, abs=1e-6)
    assert isinstance(w, PatchWindow)


def test_patch_window_on_a_non_square_pixel_grid() -> None:
    w = patch_window(0, 2, 3, from_origin(100.0, 50.0, 2.0, 0.5))
    assert w.bounds == pytest.approx((104.0, 48.5, 110.0, 50.0), abs=1e-9)


@pytest.mark.parametrize(
    ("value", "block", "expected"), [(13, 4, 12), (12, 4, 12), (3, 4, 0), (0, 4, 0), (31, 16, 16)]
)
def test_floor_to_rounds_down_to_the_block(value: int, block: int, expected: int) -> None:
    assert floor_to(value, block) == expected
