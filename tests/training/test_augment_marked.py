"""Augmentation moves image, mask and Sentinel-2 window together, through all 8 transforms.

Each sample carries one marked pixel at a position whose 8 images under the square's
symmetries are distinct, in the image, the mask and (at the same place relative to the
centre) the Sentinel-2 window. The transform applied to the image is identified by where
the mark went; the mask and the window must have moved by that same transform, computed
here with numpy, and across the batch all 8 transforms must occur.
"""

from __future__ import annotations

import numpy as np
import torch

from flair_pipeline.training.augment import augment_batch


def _dihedral(a: np.ndarray) -> list[np.ndarray]:
    """The 8 symmetries of the square on the last two axes: 4 turns, with and without a flip."""
    out = []
    for flip in (False, True):
        b = np.flip(a, -1) if flip else a
        out += [np.rot90(b, k, axes=(-2, -1)) for k in range(4)]
    return out


def _which(original: np.ndarray, moved: np.ndarray) -> int:
    hits = [k for k, t in enumerate(_dihedral(original)) if np.array_equal(t, moved)]
    assert len(hits) == 1, f"moved array matches {len(hits)} symmetries"
    return hits[0]


def test_marked_pixel_follows_every_transform_in_all_three_inputs() -> None:
    n, size, win, t = 96, 8, 4, 2
    img = torch.zeros(n, 4, size, size)
    msk = torch.zeros(n, size, size, dtype=torch.long)
    s2 = torch.zeros(n, t, 10, win, win)
    # (1, 2) of the 8 px patch and (0, 1) of the 4 px window lie off both diagonals and
    # both mid-lines, so each has 8 distinct images: one mark identifies the transform
    img[:, :, 1, 2] = 1.0
    img[:, 0, 6, 6] = 0.5  # a second mark on the diagonal: the transform stays unique
    msk[:, 1, 2] = 7
    s2[:, :, :, 0, 1] = 3.0
    batch = {"img": img, "msk": msk, "s2": s2, "meta": torch.arange(n).float()}
    out = augment_batch(batch, torch.Generator().manual_seed(3))
    assert out["meta"] is batch["meta"]
    seen = set()
    for i in range(n):
        k = _which(img[i].numpy(), out["img"][i].numpy())
        assert _which(msk[i].numpy(), out["msk"][i].numpy()) == k, f"sample {i}: mask"
        assert _which(s2[i].numpy(), out["s2"][i].numpy()) == k, f"sample {i}: S2 window"
        seen.add(k)
    assert seen == set(range(8))
    assert batch["img"] is img and float(img[:, :, 1, 2].min()) == 1.0  # input untouched
