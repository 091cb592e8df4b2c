"""Benchmark: training throughput, FLOPs, MFU and memory of the baselines; loader speed.

For U-Net ResNet34 (and U-T&T with --model utt) at --size px and --batch-size, timed
training steps (forward, backward, SGD step) in:
  fp32                      plain float32, NCHW
  bf16+cl                   bf16 autocast + channels_last (CUDA only)
  bf16+cl+compile           the same under torch.compile (CUDA only, --compile)
For each: images/s, model FLOPs per image (forward × 3 for a training step, counted by
torch.utils.flop_counter), the resulting model FLOPs utilisation (MFU) against the GPU's
dense bf16 peak, and peak GPU memory. In the same run, the data loader's images/s reading
real IMG/MSK GeoTIFFs (written like the dataset's) with the machine's CPUs, and the
ratio loader / model (target >= 1.5: the GPU never waits). Target on an H100: MFU >= 35 %
for U-Net in bf16.

    .venv/bin/python bench/train_throughput.py                       # CPU: small and quick
    .venv/bin/python bench/train_throughput.py --size 512 --batch-size 32 --steps 30 --compile
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from affine import Affine
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from flair_pipeline.config import S2Preprocessing
from flair_pipeline.io import write_geotiff
from flair_pipeline.models import build_model
from flair_pipeline.training.augment import augment_batch
from flair_pipeline.training.records import PatchRecord
from flair_pipeline.training.samples import PatchDataset, collate

#: Dense bf16 tensor-core peak (FLOP/s) by GPU name fragment (vendor data sheets, SXM).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def batch_for(*, model: str, b: int, size: int, t: int, device: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch = {
        "img": torch.randn(b, 5, size, size, generator=g),
        "msk": torch.randint(0, 12, (b, size, size), generator=g),
    }
    if model == "utt":
        batch["s2"] = torch.randn(b, t, 10, 40, 40, generator=g)
        batch["dates"] = torch.sort(torch.randint(1, 366, (b, t), generator=g), dim=1).values
        batch["pad_mask"] = torch.zeros(b, t, dtype=torch.bool)
    return {k: v.to(device) for k, v in batch.items()}


def flops_per_image(net: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
    """Training FLOPs per image: forward FLOPs × 3 (backward ≈ 2 × forward)."""
    one = {k: v[:1] for k, v in batch.items() if k != "msk"}
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(one)
    return 3.0 * counter.get_total_flops()


def time_steps(*, net, batch, steps: int, bf16: bool, cl: bool, device: str) -> tuple[float, float]:
    """(images/s, peak memory GiB) over `steps` timed steps after warm-up."""
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    inputs = {k: v for k, v in batch.items() if k != "msk"}
    if cl:
        inputs["img"] = inputs["img"].contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            out = net(inputs)
            loss = F.cross_entropy(out["logits"].float(), batch["msk"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return steps * batch["img"].shape[0] / dt, mem


def _super_area(tmp: Path, dates: int, rng: np.random.Generator) -> Path:
    """A 110 × 110 px super-area series in FLAIR's layout with `dates` acquisitions."""
    prefix = tmp / "SEN2_sp_D000_2020-Z1"
    np.save(f"{prefix}_data.npy", rng.integers(1000, 5000, (dates, 10, 110, 110), np.uint16))
    np.save(f"{prefix}_masks.npy", rng.integers(0, 100, (dates, 2, 110, 110), np.uint8))
    first = dt.date(2020, 1, 1)
    days = [first + dt.timedelta(days=int(k)) for k in np.linspace(4, 359, dates)]
    names = [f"S2A_MSIL2A_{d:%Y%m%d}T105619_N0500_R051_T31TCJ" for d in days]
    Path(f"{prefix}_products.txt").write_text("\n".join(names))
    return prefix


def loader_speed(
    *, size: int, n: int, batch: int, workers: int, device: str, s2_dates: int | None = None
) -> float:
    """Images/s of the real training loader (IMG + MSK GeoTIFFs, collate, augment) and,
    for U-T&T (`s2_dates`), the 40 px Sentinel-2 window with FLAIR-2's cloud filter and
    monthly averages cut from a memory-mapped super-area, as training does."""
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        prefix = _super_area(Path(tmp), s2_dates, rng) if s2_dates else None

        def write_patch(i: int) -> PatchRecord:
            r = np.random.default_rng(i)
            img = r.integers(0, 255, (5, size, size), dtype=np.uint8)
            msk = r.integers(1, 13, (size, size), dtype=np.uint8)
            tr = Affine(0.2, 0, 800000 + i * 200, 0, -0.2, 6500000)
            ip = write_geotiff(
                Path(tmp) / f"IMG_{i}.tif", array=img, transform=tr, crs="EPSG:2154", zlevel=1
            )
            mp = write_geotiff(Path(tmp) / f"MSK_{i}.tif", array=msk, transform=tr, crs="EPSG:2154")
            return PatchRecord(
                patch_id=str(i),
                domain="D000_2020",
                zone="Z1",
                split="train",
                img=ip,
                msk=mp,
                sen_prefix=prefix,
                centroid=(int(r.integers(20, 90)), int(r.integers(20, 90))),
            )

        # thousands of patches (several batches for every worker): written by every CPU
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            recs = list(pool.map(write_patch, range(n)))
        s2 = S2Preprocessing(filter_clouds=True, monthly_average=True) if s2_dates else None
        dl = DataLoader(
            PatchDataset(recs, s2=s2),
            batch_size=batch,
            num_workers=workers,
            collate_fn=collate,
            shuffle=True,
            persistent_workers=workers > 0,
        )
        for _ in dl:  # warm-up epoch (worker start, page cache)
            pass
        t0 = time.perf_counter()
        seen = 0
        for _ in range(2):
            for b in dl:
                b = {k: v.to(device) for k, v in b.items()}
                augment_batch(b)
                seen += b["img"].shape[0]
        return seen / (time.perf_counter() - t0)


def main() -> None:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", choices=["unet", "utt"], default="unet")
    ap.add_argument("--size", type=int, default=512 if cuda else 256)
    ap.add_argument("--batch-size", type=int, default=32 if cuda else 2)
    ap.add_argument("--steps", type=int, default=30 if cuda else 3)
    ap.add_argument("--dates", type=int, default=12, help="U-T&T series length")
    ap.add_argument(
        "--s2-dates",
        type=int,
        default=60,
        help="U-T&T loader: acquisitions in the super-area before filtering",
    )
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--loader-patches", type=int, default=64 if cuda else 16)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    device = "cuda" if cuda else "cpu"
    name = torch.cuda.get_device_name() if cuda else "CPU"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    print(
        f"{args.model} at {args.size}² px, batch {args.batch_size}, {args.steps} timed steps on "
        f"{name} ({os.cpu_count()} CPUs), torch {torch.__version__}"
    )
    kw = {"utae": {"encoder_widths": [64, 64, 64, 128], "decoder_widths": [32, 32, 64, 128]}}
    modes = [("fp32", False, False, False)]
    if cuda:
        modes.append(("bf16+cl", True, True, False))
        if args.compile:
            modes.append(("bf16+cl+compile", True, True, True))
    best = 0.0
    for label, bf16, cl, comp in modes:
        torch.manual_seed(0)
        net = build_model(args.model, **(kw if args.model == "utt" else {})).to(device).train()
        if cl:
            net = net.to(memory_format=torch.channels_last)
        batch = batch_for(
            model=args.model, b=args.batch_size, size=args.size, t=args.dates, device=device
        )
        flops = flops_per_image(net, batch)
        if comp:
            net.compile()
        ips, mem = time_steps(
            net=net, batch=batch, steps=args.steps, bf16=bf16, cl=cl, device=device
        )
        best = max(best, ips)
        mfu = f"{100 * ips * flops / peak:5.1f} %" if peak else "n/a (unknown peak)"
        print(
            f"  {label:<16} {ips:9.1f} images/s   {flops / 1e9:8.1f} GFLOP/image (train)   "
            f"MFU {mfu}   peak memory {mem:6.2f} GiB"
        )
        del net
        if cuda:
            torch.cuda.empty_cache()
    s2_dates = args.s2_dates if args.model == "utt" else None
    lps = loader_speed(
        size=args.size,
        n=args.loader_patches,
        batch=args.batch_size,
        workers=args.workers,
        device=device,
        s2_dates=s2_dates,
    )
    ratio = lps / best
    what = "IMG+MSK GeoTIFF read, collate, augment"
    if s2_dates:
        what += f", S2 window of a {s2_dates}-date super-area, cloud filter, monthly means"
    per_worker = args.loader_patches / args.batch_size / max(1, args.workers)
    print(
        f"  loader           {lps:9.1f} images/s with {args.workers} workers ({what}; "
        f"{args.loader_patches} patches, {per_worker:.1f} batches a worker an epoch)"
    )
    print(
        f"ratio loader / fastest model: {ratio:.2f}x (target >= 1.5x): "
        f"{'PASS' if ratio >= 1.5 else 'MISS'}"
    )
    if peak:
        print("MFU target for U-Net bf16 on H100: >= 35 %")


if __name__ == "__main__":
    main()
