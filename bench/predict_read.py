"""Benchmark: window reading of large-area prediction, one reader thread vs N.

`predict_map` reads its windows (R, G, B, NIR from the ortho, elevation from DSM − DTM)
in reader threads ahead of the model (``readers``, each with its own GDAL handles). This
times that reading alone, exactly as the prediction does it (``_Run.load`` per batch,
batches taken in lattice order, the elevation read once per window row of the stripe:
:class:`~flair_pipeline.evaluation.predict_elevation.ElevationRows`), on a synthetic
ortho: a tiled, DEFLATE GeoTIFF of R, G, B, NIR uint8 with a DSM/DTM at 1 m.

Three modes, each for 1 reader (the baseline) and each N given: the 4 bands alone; with
the elevation read per window row (what `predict_map` does); and with the elevation read
per batch's windows (the previous way, ``_Run.load`` without rows), timed in the same run
as the baseline of the per-row read. Printed: windows/s, windows/s per reader, the speed-up
over 1 reader, the ratio of per-row to per-window elevation, and the projection to the GPU
machine's 16 cores, ``rate(1 reader) × 16 × e`` with ``e`` the parallel efficiency
measured here at the largest N (capped at 1): it assumes the efficiency measured from 1 to
N readers holds up to 16 readers on 16 cores, which the readers' independence (own GDAL
handles, no shared lock but the per-row elevation's) supports and only a run there checks.
PASS/MISS against the target of >= 1,000 windows/s of reads. Timings are printed, never
asserted; on a shared machine they are noisy (the load average is printed: say so when you
quote them).

    .venv/bin/python bench/predict_read.py --size 3072 --patch 512 --readers 1,2
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
    per_row: bool = True,
    gdal_threads: str = "ALL_CPUS",
) -> tuple[int, float, float]:
    """Read every window of the image as predict_map does; (windows, seconds, CPU seconds).

    `per_row`: the elevation read once per window row (predict_map's way); False reads it
    per batch's windows of a row (the previous way, the baseline).

    Returns:
        The number of windows read, the wall seconds it took and the CPU seconds of this
        process (every thread, GDAL's included) meanwhile.
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
        start, cpu = time.perf_counter(), time.process_time()
        rows = run.elevation_rows(run.cols) if per_row else None
        with ThreadPoolExecutor(max_workers=readers) as pool:
            ahead: list[Future[np.ndarray]] = [
                pool.submit(run.load, b, rows) for b in batches[:depth]
            ]
            for i in range(len(batches)):
                ahead.pop(0).result()
                if i + depth < len(batches):
                    ahead.append(pool.submit(run.load, batches[i + depth], rows))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        if elev is not None:
            elev.__exit__(None, None, None)
    return len(wins), seconds, cpu


#: (label, elevation, per-row elevation) of each mode timed
MODES = (
    ("4 bands", False, False),
    ("4 bands + elevation per row", True, True),
    ("4 bands + elevation per window (previous)", True, False),
)
TARGET = 1000.0


def main(argv: list[str] | None = None) -> int:
    """Print windows/s for 1 reader and for N readers, per mode, and the 16-core projection.

    Args:
        argv: Command-line arguments (None: sys.argv).

    Returns:
        The exit status (0).
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=3072, help="ortho side, px")
    ap.add_argument("--patch", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--readers", default="1,2", help="reader counts to time (1 is the baseline)")
    ap.add_argument("--no-elevation", action="store_true", help="the 4 bands only")
    ap.add_argument("--repeat", type=int, default=2, help="best of this many runs each")
    ap.add_argument(
        "--gdal-threads", default="ALL_CPUS", help="GDAL_NUM_THREADS (predict_map: ALL_CPUS)"
    )
    ap.add_argument("--cores", type=int, default=16, help="cores of the projection")
    args = ap.parse_args(argv)
    counts = sorted({1, *(int(n) for n in args.readers.split(","))})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    modes = [m for m in MODES if not (args.no_elevation and m[1])]
    rate: dict[tuple[str, int], float] = {}
    cpu_ms: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ortho, dsm, dtm = _world(Path(tmp), args.size)
        _read_all(ortho, dsm, dtm, patch=args.patch, batch=args.batch, readers=1)  # warm caches
        load = os.getloadavg()[0]
        for _ in range(args.repeat):  # rounds over every mode: contention hits them alike
            for label, with_elev, per_row in modes:
                for n in counts:
                    windows, seconds, cpu = _read_all(
                        ortho,
                        dsm if with_elev else None,
                        dtm if with_elev else None,
                        patch=args.patch,
                        batch=args.batch,
                        readers=n,
                        per_row=per_row,
                        gdal_threads=args.gdal_threads,
                    )
                    rate[label, n] = max(rate.get((label, n), 0.0), windows / seconds)
                    ms = 1000 * cpu / windows
                    cpu_ms[label, n] = min(cpu_ms.get((label, n), ms), ms)
        load = max(load, os.getloadavg()[0])
    print(
        f"predict window reads: {args.size}² px ortho, patch {args.patch}, overlap 0.25, "
        f"batch {args.batch}, GDAL_NUM_THREADS={args.gdal_threads}, best of {args.repeat}; "
        f"{cores} core(s) here, load average up to {load:.1f}"
    )
    width = max(len(m[0]) for m in modes)
    print(
        f"{'mode':{width}} | readers | windows/s | windows/s per reader | vs 1 reader "
        "| CPU ms/window"
    )
    for label, _, _ in modes:
        for n in counts:
            r = rate[label, n]
            print(
                f"{label:{width}} | {n:7d} | {r:9.1f} | {r / n:20.1f} | {r / rate[label, 1]:.2f}× | {cpu_ms[label, n]:13.2f}"
            )
    if not args.no_elevation:
        new, old = MODES[1][0], MODES[2][0]
        ratios = ", ".join(f"{n} reader(s) {rate[new, n] / rate[old, n]:.2f}×" for n in counts)
        print(f"elevation per row vs per window (previous), same run: {ratios}")
        cpu = ", ".join(f"{n} reader(s) {cpu_ms[old, n] / cpu_ms[new, n]:.2f}×" for n in counts)
        print(f"CPU per window, per window (previous) / per row: {cpu}")
    top = max(counts)
    print(
        f"projection to {args.cores} cores = rate(1 reader) × {args.cores} × e, e = "
        f"rate({top}) / ({top} × rate(1)) measured here, capped at 1; assumes e holds from "
        f"{top} to {args.cores} readers (independent GDAL handles; {cores} shared core(s) here)"
    )
    for label, _, _ in modes:
        eff = min(1.0, rate[label, top] / (top * rate[label, 1])) if top > 1 else 1.0
        projected = rate[label, 1] * args.cores * eff
        verdict = "PASS" if projected >= TARGET else "MISS"
        print(
            f"  {label}: {rate[label, 1]:.1f} windows/s × {args.cores} × {eff:.2f} = "
            f"{projected:.0f} windows/s: {verdict} (target >= {TARGET:,.0f})"
        )
    print(
        f"CPU-bound check: {args.cores} cores × 1000 / (CPU ms a window at 1 reader), "
        "assuming the reads scale perfectly (CPU time is robust to a shared machine)"
    )
    for label, _, _ in modes:
        bound = args.cores * 1000 / cpu_ms[label, 1]
        verdict = "PASS" if bound >= TARGET else "MISS"
        print(f"  {label}: {bound:.0f} windows/s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
