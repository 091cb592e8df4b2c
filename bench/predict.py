"""Benchmark: large-area prediction, end to end (read, infer, blend, write), and its memory.

1. Throughput, per device (CPU, and CUDA when present): `predict_map` on a synthetic ortho
   (R, G, B, NIR uint8 tiles-like GeoTIFF + DSM/DTM at 1 m) with FLAIR's U-Net (ResNet34,
   5 channels, random weights), overlap 0.25; patches/s and km²/h include opening, reading,
   elevation, inference, blending, writing and the COG conversion. In the same run a
   baseline: read the whole image into memory, predict non-overlapping tiles with no
   blending, write the map; the ratio is what overlap + blending + streaming cost.
2. Peak memory: each variant runs in a fresh process on two image sizes (with a 1x1-conv
   model, so the figures are the pipeline's, not the network's); streaming stays flat while
   the whole-image baseline grows with the image.

The H100 target is >= 1,000 patches of 512² per second end to end. Timings are printed,
never asserted. Default run: a couple of minutes on 2 CPU cores.

    .venv/bin/python bench/predict.py                       # CPU-sized defaults
    .venv/bin/python bench/predict.py --size 4096 --patch 512 --batch 16 \\
        --mem-sizes 4096x4096,4096x16384
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin
from rasterio.windows import Window

from flair_pipeline.dataset.patch_writers import Elevation
from flair_pipeline.evaluation.predict import predict_map, resolve_device
from flair_pipeline.io import write_geotiff
from flair_pipeline.nomenclature import colormap

RES, X0, Y0 = 0.2, 800_000.0, 6_500_000.0
MEAN = [110.0, 110.0, 100.0, 120.0, 20.0]
STD = [45.0, 40.0, 40.0, 45.0, 25.0]


def synth_ortho(folder: Path, size: int, height: int | None = None) -> tuple[Path, Path, Path]:
    """A size x height 4-band ortho (written by blocks, tiled, deflate), 1 m DSM/DTM around."""
    folder.mkdir(parents=True, exist_ok=True)
    height = height or size
    path = folder / f"ortho_{size}x{height}.tif"
    profile = dict(
        driver="GTiff",
        width=size,
        height=height,
        count=4,
        dtype="uint8",
        crs="EPSG:2154",
        transform=from_origin(west=X0, north=Y0, xsize=RES, ysize=RES),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        zlevel=1,
    )
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, height, 512):
            h = min(512, height - r)
            yy, xx = np.mgrid[r : r + h, 0:size].astype(np.float32)
            base = 120 + 80 * np.sin(xx / 97) * np.cos(yy / 131)
            block = np.stack([base + 20 * b + rng.normal(0, 8, base.shape) for b in range(4)])
            dst.write(
                np.clip(block, 0, 255).astype(np.uint8),
                window=Window(col_off=0, row_off=r, width=size, height=h),
            )
    yy, xx = np.mgrid[0 : int(height * RES) + 4, 0 : int(size * RES) + 4].astype(np.float32)
    dtm = 150 + 0.05 * xx
    dsm = dtm + np.clip(8 * np.sin(xx / 7) * np.cos(yy / 9), 0, None)
    t = from_origin(west=X0 - 2, north=Y0 + 2, xsize=1.0, ysize=1.0)
    return (
        path,
        write_geotiff(folder / f"dsm_{size}x{height}.tif", array=dsm, transform=t, crs="EPSG:2154"),
        write_geotiff(folder / f"dtm_{size}x{height}.tif", array=dtm, transform=t, crs="EPSG:2154"),
    )


class PixelModel(torch.nn.Module):
    """1x1 convolution: a negligible network, to measure the pipeline's own memory."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(5, 13, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.conv(batch["img"])}


def unet() -> torch.nn.Module:
    from flair_pipeline.models import build_model

    return build_model("unet", in_channels=5).eval()


@torch.inference_mode()
def naive_predict(
    *,
    model: torch.nn.Module,
    image: Path,
    dsm: Path,
    dtm: Path,
    out: Path,
    patch: int,
    batch: int,
    device: str,
) -> int:
    """Baseline: whole image in memory, non-overlapping tiles, no blending; returns tiles."""
    dev = torch.device(device)
    model = model.to(dev).eval()
    with rasterio.open(image) as src:
        img, transform, crs, bounds = src.read(), src.transform, src.crs, tuple(src.bounds)
    elev = Elevation(dsm, dtm, 5.0)
    img = np.concatenate([img, elev.patch(bounds, img.shape[1:])[None]])
    elev.close()
    h, w = img.shape[1:]
    ph, pw = -h % patch, -w % patch
    img = np.pad(img, ((0, 0), (0, ph), (0, pw)))
    codes = np.zeros(img.shape[1:], dtype=np.uint8)
    tiles = [(r, c) for r in range(0, h, patch) for c in range(0, w, patch)]
    mean = torch.tensor(MEAN, device=dev).view(1, -1, 1, 1)
    std = torch.tensor(STD, device=dev).view(1, -1, 1, 1)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")
    for i in range(0, len(tiles), batch):
        group = tiles[i : i + batch]
        x = np.stack([img[:, r : r + patch, c : c + patch] for r, c in group])
        xt = (torch.from_numpy(x).to(dev).float() - mean) / std
        with amp:
            logits = model({"img": xt})["logits"]
        pred = (logits.argmax(1) + 1).to(torch.uint8).cpu().numpy()
        for (r, c), p in zip(group, pred, strict=True):
            codes[r : r + patch, c : c + patch] = p
    write_geotiff(out, array=codes[:h, :w], transform=transform, crs=crs, colormap=colormap())
    return len(tiles)


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith(key))
    return int(line.split()[1]) / 1024


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so imports' peaks are not counted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def worker(args: argparse.Namespace) -> None:
    """One memory measurement in a fresh process; prints a JSON line."""
    image, dsm, dtm = (Path(p) for p in args.worker_files.split(","))
    model = PixelModel()
    _reset_peak()
    before = _status_mb("VmRSS")
    t = time.perf_counter()
    out = Path(args.worker_out)
    if args.worker == "stream":
        predict_map(
            model,
            image,
            out,
            patch_size=args.patch,
            overlap=0.25,
            batch_size=args.batch,
            mean=MEAN,
            std=STD,
            dsm=dsm,
            dtm=dtm,
            device="cpu",
        )
    else:
        naive_predict(
            model=model,
            image=image,
            dsm=dsm,
            dtm=dtm,
            out=out,
            patch=args.patch,
            batch=args.batch,
            device="cpu",
        )
    peak = _status_mb("VmHWM")
    print(json.dumps({"before_mb": before, "peak_mb": peak, "s": time.perf_counter() - t}))


def throughput(*, dev: str, size: int, patch: int, batch: int, tmp: Path) -> None:
    image, dsm, dtm = synth_ortho(tmp / "tp", size)
    model = unet().to(dev)
    with torch.inference_mode():  # warm-up (allocator, cuDNN), not counted
        model({"img": torch.zeros(batch, 5, patch, patch, device=dev)})
    if dev == "cuda":
        torch.cuda.synchronize()
    r = predict_map(
        model,
        image,
        tmp / "map.tif",
        patch_size=patch,
        overlap=0.25,
        batch_size=batch,
        mean=MEAN,
        std=STD,
        dsm=dsm,
        dtm=dtm,
        device=dev,
    )
    t = time.perf_counter()
    n = naive_predict(
        model=model,
        image=image,
        dsm=dsm,
        dtm=dtm,
        out=tmp / "naive.tif",
        patch=patch,
        batch=batch,
        device=dev,
    )
    naive_s = time.perf_counter() - t
    km2 = r.km2
    print(
        f"\n[{dev}] {size}x{size} px ({km2:.3f} km²), U-Net ResNet34 5 ch, patch {patch}, "
        f"batch {batch}"
    )
    print(
        f"  predict_map (overlap 0.25, blended, streamed): {r.n_windows} windows in "
        f"{r.seconds:.1f} s = {r.patches_per_s:.2f} patches/s, {r.km2_per_h:.2f} km²/h"
    )
    print(
        f"  baseline (whole image, no overlap, no blend):  {n} windows in {naive_s:.1f} s = "
        f"{n / naive_s:.2f} patches/s, {km2 / naive_s * 3600:.2f} km²/h"
    )
    print(
        f"  ratio predict_map / baseline: {r.seconds / naive_s:.2f}x the time per km² "
        f"({(n / naive_s) / r.patches_per_s:.2f}x per window; overlap alone costs "
        f"{r.n_windows / n:.2f}x windows)"
    )
    if patch == 512:
        print(f"  vs H100 target 1,000 patches/s: {r.patches_per_s / 1000:.3f} of it")


def memory(*, sizes: list[tuple[int, int]], patch: int, batch: int, tmp: Path) -> None:
    print(f"\npeak RSS in a fresh process (1x1-conv model, patch {patch}, batch {batch}):")
    print(
        f"  {'W x H':>12} {'variant':<28} {'RSS before':>11} {'peak RSS':>10} {'growth':>9}"
        f" {'time':>7}"
    )
    for w, h in sizes:
        files = ",".join(str(p) for p in synth_ortho(tmp / "mem", w, h))
        for variant, label in (
            ("stream", "predict_map (streamed)"),
            ("naive", "baseline (whole image)"),
        ):
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                variant,
                "--worker-files",
                files,
                "--worker-out",
                str(tmp / f"mem_{variant}.tif"),
                "--patch",
                str(patch),
                "--batch",
                str(batch),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            m = json.loads(res.stdout.strip().splitlines()[-1])
            grow = m["peak_mb"] - m["before_mb"]
            print(
                f"  {f'{w}x{h}':>12} {label:<28} {m['before_mb']:>8.0f} MB "
                f"{m['peak_mb']:>7.0f} MB {grow:>6.0f} MB {m['s']:>6.1f}s"
            )
        Path(files.split(",")[0]).unlink()
    print(
        "  streamed: the accumulator is 13 x (block + patch + stride x rows per batch) x "
        "min(width, stripe 4096 px) float32, independent of the height (and of the width "
        "beyond one stripe);\n  baseline: holds 5 B/px of image + 1 B/px of map, i.e. "
        "~2.4 GB for a 20,000² px (4 km x 4 km) ortho."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=None, help="throughput image side (px)")
    ap.add_argument("--patch", type=int, default=None, help="patch side (default 256 CPU)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument(
        "--mem-sizes",
        default="2048x2048,2048x6144",
        help="W x H of the images for the memory runs (comma-separated)",
    )
    ap.add_argument("--mem-patch", type=int, default=512)
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    ap.add_argument("--worker", choices=["stream", "naive"], help=argparse.SUPPRESS)
    ap.add_argument("--worker-files", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.patch, args.batch = args.patch or 512, args.batch or 4
        return worker(args)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    print(
        f"predict benchmark: {os.cpu_count()} CPU(s), torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, default device {resolve_device(None)}"
    )
    side = 512 * RES
    print(
        "H100 target: >= 1,000 patches/s of 512² px end to end = "
        f"{1000 * side**2 / 1e6 * 3600:,.0f} km²/h of new area without overlap, "
        f"{1000 * (0.75 * side) ** 2 / 1e6 * 3600:,.0f} km²/h at overlap 0.25 "
        "(a département of ~6,000 km² in ~17 min)"
    )
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as d:
        tmp = Path(d)
        for dev in devices:
            gpu = dev == "cuda"
            throughput(
                dev=dev,
                size=args.size or (4096 if gpu else 768),
                patch=args.patch or (512 if gpu else 256),
                batch=args.batch or (16 if gpu else 4),
                tmp=tmp,
            )
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.mem_sizes.split(",")]
        memory(sizes=sizes, patch=args.mem_patch, batch=4, tmp=tmp)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
