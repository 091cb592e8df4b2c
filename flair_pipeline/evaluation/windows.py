"""Where the sliding windows of large-area prediction go, and how much each pixel trusts them.

A model sees a patch_size² window; a map is many windows. Windows overlap and their class
probabilities are blended with a weight that falls off towards each window's edges, where a
convolutional network sees least context, so no seam shows where two windows meet. The
lattice is global (the same for the whole image), which is what lets prediction stream by
blocks of rows and by column stripes and still give exactly the map one pass would give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rasterio.transform import Affine
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

Bounds = tuple[float, float, float, float]


@dataclass(frozen=True)
class PatchWindow:
    """One model input window: pixel offset and size on the image grid, and its extent.

    Handed to an ``extra_inputs`` callable, which needs the extent (in the image CRS) to
    fetch e.g. the Sentinel-2 series around the patch.
    """

    row: int
    col: int
    size: int
    bounds: Bounds


def stride_for(patch_size: int, overlap: float) -> int:
    """Step between windows for an overlap given as a fraction of the patch (0 <= o < 1).

    Args:
        patch_size: Window side, pixels.
        overlap: Overlap between neighbouring windows, fraction of `patch_size`.

    Returns:
        The stride in pixels, at least 1.

    Raises:
        ValueError: `overlap` is not in [0, 1).
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    return max(1, round(patch_size * (1.0 - overlap)))


def starts(length: int, size: int, stride: int) -> list[int]:
    """Window offsets along one axis: every `stride`, the last flush with the far edge.

    Shifting the last window back (instead of padding past the edge) keeps every window
    on real pixels; an axis shorter than `size` gets one window at 0 (read padded).

    Args:
        length: Image size along the axis, pixels.
        size: Window size, pixels.
        stride: Step between windows, pixels.

    Returns:
        Increasing offsets; ``[0]`` when `length` <= `size`.
    """
    if length <= size:
        return [0]
    out = list(range(0, length - size, stride))
    out.append(length - size)
    return out


def ramp(size: int, margin: int) -> np.ndarray:
    """1-D weight: 1 in the middle, a linear ramp over `margin` pixels at both ends.

    Never 0 (the outermost pixel weighs 0.5 / margin), so image-border pixels covered by a
    single window still get a prediction; and for two windows overlapping by exactly
    `margin` the two ramps sum to 1, a partition of unity (pixels are normalised by the
    summed weight anyway, for the flush-shifted last windows).

    Args:
        size: Window size, pixels.
        margin: Ramp length at each end, pixels (0: flat).

    Returns:
        float32 (size,) weights in (0, 1].
    """
    if margin <= 0:
        return np.ones(size, dtype=np.float32)
    i = np.arange(size, dtype=np.float64) + 0.5
    return np.minimum(1.0, np.minimum(i, size - i) / margin).astype(np.float32)


def weight_window(patch_size: int, stride: int) -> np.ndarray:
    """2-D blending weight (patch_size, patch_size): the outer product of two ramps.

    Args:
        patch_size: Window side, pixels.
        stride: Step between windows (the ramps span the overlap ``patch_size - stride``).

    Returns:
        float32 (patch_size, patch_size) weights.
    """
    r = ramp(patch_size, patch_size - stride)
    return np.outer(r, r)


def stripes(width: int, stripe_width: int) -> list[tuple[int, int]]:
    """Column ranges [c0, c1) processed one after the other to bound memory in width.

    Args:
        width: Image width, pixels.
        stripe_width: Columns per stripe.

    Returns:
        Consecutive (c0, c1) ranges covering 0..width.
    """
    return [(c0, min(c0 + stripe_width, width)) for c0 in range(0, width, stripe_width)]


def patch_window(row: int, col: int, size: int, transform: Affine) -> PatchWindow:
    """A PatchWindow with its extent computed from the image transform.

    Args:
        row: Top row of the window, pixels.
        col: Left column, pixels.
        size: Window side, pixels.
        transform: The image's affine transform.

    Returns:
        The window and its bounds (left, bottom, right, top) in the image's CRS.
    """
    b = window_bounds(Window(col, row, size, size), transform)
    return PatchWindow(row, col, size, (b[0], b[1], b[2], b[3]))


def floor_to(value: int, block: int) -> int:
    """`value` rounded down to a multiple of `block`.

    Args:
        value: A non-negative integer.
        block: The block size.

    Returns:
        The largest multiple of `block` not above `value`.
    """
    return value - value % block
