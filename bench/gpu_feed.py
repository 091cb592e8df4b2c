"""Benchmark: the packed loader with N workers feeding U-Net ResNet34 training (bf16 + cl).

Writes a pack of `--patches` random 512 px patches (img.npy N×5×H×W uint8, msk.npy N×H×W
uint8, the format of flair_pipeline.training.packing; pixel values do not change the cost of
a memory-mapped read), then times, after a warm-up, `--steps` training steps of U-Net
ResNet34 (SGD, cross-entropy, bf16 autocast + channels_last on CUDA) fed by a DataLoader of
`PackedDataset` with `--workers` workers, pinned memory, collate and FLAIR's augmentation on
the device batch. The same steps on one fixed device batch give the model's own speed; the
ratio fed / fixed is the share of the model's speed the loader keeps (1.0: the GPU never
waits). Each timed window runs at least `--steps` steps and at least `--seconds` seconds, so
that fixed costs fade (bench/gpu.sh: 20 s each). The loader draws its patches at random with
replacement, in one epoch that lasts the whole run: its workers and prefetch queue never
drain at an epoch's end inside the timed window (a pack of 512 patches is 16 batches, an
epoch of ~0.5 s on an H200). Run by bench/gpu.sh; `--size 64 --patches 16 --steps 2` runs on
a CPU in seconds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler

from flair_pipeline.models import build_model
from flair_pipeline.training.augment import augment_batch
from flair_pipeline.training.records import PatchRecord
from flair_pipeline.training.samples import PackedDataset, collate


def write_pack(folder: Path, n: int, size: int) -> list[PatchRecord]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    img = np.lib.format.open_memmap(
        folder / "img.npy", mode="w+", dtype=np.uint8, shape=(n, 5, size, size)
    )
    msk = np.lib.format.open_memmap(
        folder / "msk.npy", mode="w+", dtype=np.uint8, shape=(n, size, size)
    )
    for i in range(n):
        img[i] = rng.integers(0, 255, (5, size, size), dtype=np.uint8)
        msk[i] = rng.integers(0, 13, (size, size), dtype=np.uint8)
    img.flush()
    msk.flush()
    return [
        PatchRecord(
            patch_id=str(i),
            domain="D000_2020",
            zone="Z1",
            split="train",
            img=folder / f"IMG_{i}.tif",
            msk=None,
        )
        for i in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--patches", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=40, help="at least this many timed steps")
    ap.add_argument("--seconds", type=float, default=0.0, help="and at least this long, each")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    torch.manual_seed(0)
    net = build_model("unet", in_channels=5).to(dev).train()
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def step(batch: dict[str, torch.Tensor]) -> None:
        # packed batches are uint8: on the device, as FlairModule does (fixed scale here)
        img = batch["img"].float().div_(255.0)
        if cuda:
            img = img.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(net({"img": img})["logits"].float(), batch["msk"].long())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    with tempfile.TemporaryDirectory(prefix="bench-feed-") as tmp:
        records = write_pack(Path(tmp), args.patches, args.size)
        ds = PackedDataset(Path(tmp), records)
        # one epoch for the whole run (warm-up, both windows, with margin): no drain inside
        sampler = RandomSampler(ds, replacement=True, num_samples=2**40)
        dl = DataLoader(
            ds,
            batch_size=args.batch_size,
            sampler=sampler,
            num_workers=args.workers,
            collate_fn=collate,
            pin_memory=cuda,
            drop_last=True,
            persistent_workers=args.workers > 0,
            prefetch_factor=4 if args.workers else None,
        )

        def batches():
            while True:
                for b in dl:
                    yield augment_batch({k: v.to(dev, non_blocking=True) for k, v in b.items()})

        it = batches()
        fixed = next(it)
        for _ in range(3):  # warm-up: cuDNN autotune, worker start
            step(next(it))
        sync()

        def timed(batch: Callable[[], dict[str, torch.Tensor]]) -> tuple[float, float]:
            """(images/s, seconds) of >= --steps steps lasting >= --seconds."""
            t0, n = time.perf_counter(), 0
            while n < args.steps or time.perf_counter() - t0 < args.seconds:
                step(batch())
                n += 1
            sync()
            s = time.perf_counter() - t0
            return n * args.batch_size / s, s

        fed, fed_s = timed(lambda: next(it))
        alone, alone_s = timed(lambda: fixed)
    print(
        f"gpu_feed: U-Net R34 {args.size} px on {dev}, batch {args.batch_size}, "
        f"{args.workers} packed-loader workers: fed {fed:.1f} img/s, model alone "
        f"{alone:.1f} img/s, fed/alone {fed / alone:.2f} (timed {fed_s:.1f} s and {alone_s:.1f} s)"
    )


if __name__ == "__main__":
    main()
