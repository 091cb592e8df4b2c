"""FLAIR's augmentations on a batch already on the device: flips and quarter turns.

Applied per sample with p = 0.5 each (horizontal flip, vertical flip, rotation by a
random multiple of 90°), identically to the image, the mask and the Sentinel-2 window:
the window is centred on the patch, so the same flip or turn about its centre keeps it
aligned with the image. Done on the GPU batch rather than in loader workers because
these are cheap index permutations there and the CPU is the scarcer resource.
"""

from __future__ import annotations

import torch

SPATIAL = {"img": 3, "msk": 2, "s2": 4}  # tensor rank of one sample, last two dims spatial


def augment_batch(
    batch: dict[str, torch.Tensor], generator: torch.Generator | None = None, p: float = 0.5
) -> dict[str, torch.Tensor]:
    """A new batch dict with each sample flipped/rotated at random (keys in SPATIAL).

    Args:
        batch: Tensors of shape (B, …, H, W) by key; the keys in ``SPATIAL`` are transformed
            alike per sample, others copied.
        generator: Random generator of the draws (None: torch's global one).
        p: Probability of each of the three transforms (horizontal flip, vertical flip,
            1 to 3 quarter turns).

    Returns:
        A new dict; the input tensors are not modified.
    """
    n = batch["img"].shape[0]
    draws = torch.rand(n, 3, generator=generator)
    turns = torch.randint(1, 4, (n,), generator=generator)
    out = dict(batch)
    for key in SPATIAL:
        if key not in batch:
            continue
        x = batch[key]
        samples = []
        for i in range(n):
            s = x[i]
            if draws[i, 0] < p:
                s = s.flip(-1)
            if draws[i, 1] < p:
                s = s.flip(-2)
            if draws[i, 2] < p:
                s = torch.rot90(s, int(turns[i]), dims=(-2, -1))
            samples.append(s)
        out[key] = torch.stack(samples)
    return out
