"""Deterministic, seamless noise keyed on global pixel coordinates.

Rendering the synthetic world tile by tile must give the same pixels as rendering it in one
piece (no seams between mosaic tiles, bounded memory). So noise is a pure function of
(seed, global x, global y): an integer hash for white noise, and value noise on a lattice of
hashed values for smooth fields, summed over octaves for fractal relief, clouds and canopy.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a cheap, well-distributed 64-bit hash.

    Args:
        h: uint64 values.

    Returns:
        uint64 hashes, same shape.
    """
    h = h ^ (h >> np.uint64(30))
    h = h * _M2
    h = h ^ (h >> np.uint64(27))
    h = h * _M3
    mixed: np.ndarray = h ^ (h >> np.uint64(31))
    return mixed


def hash_uniform(seed: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) float32 values, one per (x, y) integer pair (broadcast).

    Args:
        seed: Noise seed (its low 32 bits are used).
        x: Integer column indices.
        y: Integer row indices, broadcast against `x`.

    Returns:
        float32 values in [0, 1) with 24 random bits each, the broadcast shape.
    """
    with np.errstate(over="ignore"):
        xs = np.asarray(x, dtype=np.int64).astype(np.uint64)
        ys = np.asarray(y, dtype=np.int64).astype(np.uint64)
        h: np.ndarray = np.asarray(np.uint64(seed & 0xFFFFFFFF) * _M1)
        h = _mix(h ^ xs * _M2)
        h = _mix(h ^ ys * _M3)
    return np.asarray((h >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24))


def white(seed: int, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """White noise in [-1, 1) on the grid ``rows x cols`` of global pixel indices.

    Args:
        seed: Noise seed.
        cols: Global column indices (W,).
        rows: Global row indices (H,).

    Returns:
        float32 (H, W).
    """
    return hash_uniform(seed, cols[None, :], rows[:, None]) * 2.0 - 1.0


def value_noise(seed: int, cols: np.ndarray, rows: np.ndarray, scale: float) -> np.ndarray:
    """Smooth noise in about [-1, 1] with features of `scale` pixels, on global indices.

    Args:
        seed: Noise seed.
        cols: Global column indices (W,).
        rows: Global row indices (H,).
        scale: Lattice spacing in pixels.

    Returns:
        float32 (H, W), smoothstep-interpolated lattice values.
    """
    gx = cols.astype(np.float64) / scale
    gy = rows.astype(np.float64) / scale
    ix0 = np.floor(gx).astype(np.int64)
    iy0 = np.floor(gy).astype(np.int64)
    fx = (gx - ix0).astype(np.float32)
    fy = (gy - iy0).astype(np.float32)
    fx = fx * fx * (3 - 2 * fx)
    fy = fy * fy * (3 - 2 * fy)
    lx = np.arange(ix0.min(), ix0.max() + 2)
    ly = np.arange(iy0.min(), iy0.max() + 2)
    lattice = hash_uniform(seed, lx[None, :], ly[:, None]) * 2.0 - 1.0
    cx = ix0 - lx[0]
    cy = iy0 - ly[0]
    top = (
        lattice[cy[:, None], cx[None, :]] * (1 - fx)[None, :]
        + lattice[cy[:, None], cx[None, :] + 1] * fx[None, :]
    )
    bottom = (
        lattice[cy[:, None] + 1, cx[None, :]] * (1 - fx)[None, :]
        + lattice[cy[:, None] + 1, cx[None, :] + 1] * fx[None, :]
    )
    field: np.ndarray = top * (1 - fy)[:, None] + bottom * fy[:, None]
    return field


def fractal(
    seed: int, cols: np.ndarray, rows: np.ndarray, scale: float, octaves: int = 4
) -> np.ndarray:
    """Sum of value-noise octaves (halving scale, halving amplitude), normalised to ~[-1, 1].

    Args:
        seed: Noise seed (each octave offsets it).
        cols: Global column indices (W,).
        rows: Global row indices (H,).
        scale: Feature size of the first octave, pixels.
        octaves: Number of octaves.

    Returns:
        float32 (H, W).
    """
    out = np.zeros((rows.size, cols.size), dtype=np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        out += amp * value_noise(seed + 7919 * o, cols, rows, max(scale / 2**o, 1.0))
        total += amp
        amp *= 0.5
    return out / total


def blobs(seed: int, cols: np.ndarray, rows: np.ndarray, sigma: float) -> np.ndarray:
    """Isotropic blobs (blurred white noise, unit std) of about `sigma` pixels, e.g. crowns.

    Seamless only in the interior: callers render a halo of 3 sigma and crop it.

    Args:
        seed: Noise seed.
        cols: Global column indices (W,).
        rows: Global row indices (H,).
        sigma: Gaussian blur sigma, pixels.

    Returns:
        float32 (H, W), rescaled to about unit standard deviation.
    """
    field = gaussian_filter(white(seed, cols, rows), sigma=sigma, mode="nearest")
    return field * np.float32(2.0 * np.sqrt(np.pi) * sigma * np.sqrt(3.0))
