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


def _expected_frequencies(p: float) -> np.ndarray:
    """Probability of each of the 8 symmetries under FLAIR's recipe, by enumeration: flip
    columns with p, flip rows with p, then with p a turn by 1, 2 or 3 quarters (equally)."""
    mark = np.zeros((4, 4))
    mark[0, 1] = 1.0
    probs = np.zeros(8)
    for fx in (0, 1):
        for fy in (0, 1):
            for k, pk in ((0, 1 - p), (1, p / 3), (2, p / 3), (3, p / 3)):
                a = np.flip(mark, 1) if fx else mark
                a = np.flip(a, 0) if fy else a
                a = np.rot90(a, k)
                prob = (p if fx else 1 - p) * (p if fy else 1 - p) * pk
                probs[_which(mark, a)] += prob
    return probs


def test_transform_frequencies_follow_the_recipe() -> None:
    n = 4000
    img = torch.zeros(n, 1, 4, 4)
    img[:, 0, 0, 1] = 1.0
    out = augment_batch({"img": img, "s2": img[:, None].clone()}, torch.Generator().manual_seed(11))
    ks = np.array([_which(img[i].numpy(), out["img"][i].numpy()) for i in range(n)])
    freq = np.bincount(ks, minlength=8) / n
    expected = _expected_frequencies(0.5)
    sigma = np.sqrt(expected * (1 - expected) / n)
    assert (np.abs(freq - expected) < 4 * sigma).all(), (freq, expected)
    # the S2 window moved with the image although the batch has no mask
    for i in range(0, n, 97):
        assert _which(img[i].numpy(), out["s2"][i, 0].numpy()) == ks[i]


def test_same_seed_same_draws_other_seed_other_draws() -> None:
    img = torch.zeros(64, 1, 4, 4)
    img[:, 0, 0, 1] = 1.0

    def run(seed: int) -> torch.Tensor:
        return augment_batch({"img": img}, torch.Generator().manual_seed(seed))["img"]

    torch.manual_seed(0)
    a = run(5)
    torch.manual_seed(1)  # the global RNG must not matter
    assert torch.equal(a, run(5))
    assert not torch.equal(a, run(6))
