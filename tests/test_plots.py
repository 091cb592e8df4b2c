"""plots.patch_rows: the one patch-figure drawer behind the dataset preview and the evaluation
figure (issue 16: two near-duplicate figure functions folded into one)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from flair_pipeline.evaluation.plots import patch_figure
from flair_pipeline.plots import patch_preview, patch_rows


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # IHDR: the first chunk
    return width, height


def _rows(n: int) -> list[list[tuple[np.ndarray, str, str]]]:
    rng = np.random.default_rng(n)
    return [
        [
            (rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), f"p{i}", "image"),
            (rng.integers(0, 20, (32, 32), dtype=np.uint8), "labels", "codes"),
        ]
        for i in range(n)
    ]


def test_one_row_per_patch_and_one_column_per_panel() -> None:
    w1, h1 = _png_size(patch_rows(_rows(1)))
    w3, h3 = _png_size(patch_rows(_rows(3)))
    assert abs(w3 - w1) <= 8  # same panels per row (titles differ a little)
    wide, _ = _png_size(patch_rows([[*r, r[1]] for r in _rows(1)]))  # a third panel
    assert wide > 1.3 * w1
    assert 2.5 * h1 < h3 < 3.5 * h1  # 2.5 inch rows (tight bounding box: not exactly 3x)


def test_unknown_panel_kind_is_refused_by_name() -> None:
    rows = _rows(1)
    rows[0][1] = (rows[0][1][0], "labels", "heatmap")
    with pytest.raises(ValueError, match="'labels': unknown kind 'heatmap'"):
        patch_rows(rows)


def test_both_figures_draw_through_patch_rows() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (5, 32, 32), dtype=np.uint8)
    codes = rng.integers(1, 20, (32, 32), dtype=np.uint8)
    # three panels per patch in both figures, one row per patch
    for png in (
        patch_preview([img] * 2, [codes] * 2, ["a", "b"]),
        patch_figure([img] * 2, [codes] * 2, [codes] * 2, ["a", "b"]),
    ):
        three = patch_rows([[(np.zeros((32, 32, 3), np.uint8), "t", "image")] * 3] * 2)
        assert abs(_png_size(png)[0] - _png_size(three)[0]) <= 8
        assert abs(_png_size(png)[1] - _png_size(three)[1]) <= 8
