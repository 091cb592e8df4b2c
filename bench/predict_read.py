"""Benchmark: window reading of large-area prediction, one reader thread vs N.

`predict_map` reads its windows (R, G, B, NIR from the ortho, elevation from DSM − DTM)
in reader threads ahead of the model (``readers``, each with its own GDAL handles). This
times that reading alone, exactly as the prediction does it (``_Run.load`` per batch,
batches taken in lattice order), on a synthetic ortho: a tiled, DEFLATE GeoTIFF of
R, G, B, NIR uint8 (or folder of 1 km tiles read through the VRT) with a DSM/DTM at 1 m.

Printed: windows/s for 1 reader (the baseline, measured in the same run) and for each N
given, windows/s per reader, the speed-up over 1 reader, and the projection to the GPU
machine's 16 cores: (windows/s of 1 reader) × 16 × (parallel efficiency measured at the
largest N), against the target of >= 1,000 patches/s of reads. Timings are printed, never
asserted; on a shared machine they are noisy (say so when you quote them).

    PYTHONPATH=$PWD .venv/bin/python bench/predict_read.py --size 4096 --patch 512 --readers 1,2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin

from flair_pipeline.evaluation.predict import _Run
from flair_pipeline.evaluation.raster_input import ElevationSource, ImageSource
from flair_pipeline.evaluation.windows import stride_for
from flair_pipeline.io import write_geotiff

X0, Y0, RES = 700_000.0, 6_600_000.0, 0.2


def _world(folder: Path, size: int) -> tuple[Path, Path, Path]:
    """A size² ortho (tiled DEFLATE, smooth fields + noise) and a DSM/DTM at 1 m."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    bands = []
    for b in range(4):
        f = 127 + 90 * np.sin(xx / (37 + 3 * b)) * np.cos(yy / (41 + 2 * b))
        bands.append(np.clip(f + rng.normal(0, 12, (size, size)), 0, 255).astype(np.uint8))
    ortho = folder / "ortho.tif"
    with rasterio.open(
        ortho,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=4,
        dtype="uint8",
        crs="EPSG:2154",
        transform=from_origin(X0, Y0, xsize=RES, ysize=RES),
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    ) as dst:
        dst.write(np.stack(bands))
    side = int(size * RES) + 4
    dtm = (200 + rng.normal(0, 1, (side, side))).astype(np.float32)
    dsm = dtm + np.clip(rng.normal(4, 6, (side, side)), 0, None).astype(np.float32)
    t = from_origin(X0 - 2.0, Y0 + 2.0, xsize=1.0, ysize=1.0)
    return (
        ortho,
        write_geotiff(folder / "dsm.tif", dsm, t, crs="EPSG:2154"),
        write_geotiff(folder / "dtm.tif", dtm, t, crs="EPSG:2154"),
    )


def _read_all(
    ortho: Path,
    dsm: Path | None,
    dtm: Path | None,
    *,
    patch: int,
    batch: int,
    readers: int,
    gdal_threads: str = "ALL_CPUS",
) -> tuple[int, float]:
    """Read every window of the image as predict_map does; (windows, seconds).

    Returns:
        The number of windows read and the wall seconds it took.
    """
    with (
        rasterio.Env(GDAL_NUM_THREADS=gdal_threads, GDAL_CACHEMAX=256),
        ImageSource(ortho) as src,
    ):
        elev = ElevationSource(dsm, dtm, src, scale=5.0) if dsm and dtm else None
        channels = 5 if elev is not None else 4
        run = _Run(
            torch.nn.Identity(),
            src,
            elev,
            channels=channels,
            patch=patch,
            stride=stride_for(patch, 0.25),
            batch=batch,
            mean=[0.0] * channels,
            std=[1.0] * channels,
            dev=torch.device("cpu"),
            block=512,
            stripe=src.width + (-src.width) % 512,
            extra=None,
            downsample=1,
            readers=readers,
        )
        wins = [(ri, r, c) for ri, r in enumerate(run.rows) for c in run.cols]
        batches = [wins[i : i + batch] for i in range(0, len(wins), batch)]
        depth = readers + 1
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=readers) as pool:
            ahead: list[Future[np.ndarray]] = [pool.submit(run.load, b) for b in batches[:depth]]
            for i in range(len(batches)):
                ahead.pop(0).result()
                if i + depth < len(batches):
                    ahead.append(pool.submit(run.load, batches[i + depth]))
        seconds = time.perf_counter() - start
        if elev is not None:
            elev.__exit__(None, None, None)
    return len(wins), seconds


def main(argv: list[str] | None = None) -> int:
    """Print windows/s for 1 reader and for N readers, and the 16-core projection.

    Args:
        argv: Command-line arguments (None: sys.argv).

    Returns:
        The exit status (0).
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4096, help="ortho side, px")
    ap.add_argument("--patch", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--readers", default="1,2", help="reader counts to time (1 is the baseline)")
    ap.add_argument("--no-elevation", action="store_true", help="4 bands, no DSM/DTM")
    ap.add_argument("--repeat", type=int, default=2, help="best of this many runs each")
    ap.add_argument(
        "--gdal-threads", default="ALL_CPUS", help="GDAL_NUM_THREADS (predict_map: ALL_CPUS)"
    )
    ap.add_argument("--cores", type=int, default=16, help="cores of the projection")
    args = ap.parse_args(argv)
    counts = sorted({1, *(int(n) for n in args.readers.split(","))})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        ortho, dsm, dtm = _world(Path(tmp), args.size)
        if args.no_elevation:
            dsm = dtm = None  # type: ignore[assignment]
        _read_all(
            ortho, dsm, dtm, patch=args.patch, batch=args.batch, readers=1
        )  # warm the page cache
        rate: dict[int, float] = {}
        for n in counts:
            runs = [
                _read_all(
                    ortho,
                    dsm,
                    dtm,
                    patch=args.patch,
                    batch=args.batch,
                    readers=n,
                    gdal_threads=args.gdal_threads,
                )
                for _ in range(args.repeat)
            ]
            rate[n] = runs[0][0] / min(s for _, s in runs)
    print(
        f"predict window reads: {args.size}² px ortho, patch {args.patch}, overlap 0.25, "
        f"{'4 bands' if args.no_elevation else '4 bands + DSM/DTM elevation'}, {cores} core(s) here"
    )
    print("readers | windows/s | windows/s per reader | vs 1 reader")
    for n in counts:
        print(f"{n:7d} | {rate[n]:9.1f} | {rate[n] / n:20.1f} | {rate[n] / rate[1]:.2f}×")
    top = max(counts)
    eff = min(1.0, rate[top] / (top * rate[1])) if top > 1 else 1.0
    projected = rate[1] * args.cores * eff
    print(
        f"projection to {args.cores} cores: {rate[1]:.1f} windows/s × {args.cores} × "
        f"{eff:.2f} (efficiency at {top} readers) = {projected:.0f} windows/s "
        f"(target >= 1,000: {'met' if projected >= 1000 else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
