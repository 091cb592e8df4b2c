"""Benchmark: synthetic world generation throughput.

Prints km² of 0.2 m imagery generated per minute and MB/s written, and, measured in the
same run, a baseline that only writes the same mosaic bytes (same tiles, same GeoTIFF
profile, pixels already in memory): the ratio says what rendering costs on top of I/O.

    .venv/bin/python bench/synth.py --scenario bench      # several km², a few minutes
    .venv/bin/python bench/synth.py --scenario demo       # quick look
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import rasterio

from flair_pipeline.synthetic.world import generate_world


def write_only_baseline(raw: Path, out: Path) -> tuple[float, int]:
    """Re-write every ortho tile of `raw` from memory with its own profile; (seconds, bytes)."""
    tiles = sorted((raw / "domains").glob("*/ortho/*.tif"))
    data = []
    for t in tiles:
        with rasterio.open(t) as src:
            data.append((src.profile, src.read()))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i, (profile, arr) in enumerate(data):
        with rasterio.open(out / f"{i}.tif", "w", **profile) as dst:
            dst.write(arr)
    elapsed = time.perf_counter() - start
    return elapsed, sum(p.stat().st_size for p in out.iterdir())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scenario", default="bench", choices=("tiny", "demo", "bench"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="where to write (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "raw"
        start = time.perf_counter()
        summary = generate_world(out, args.scenario, args.seed)
        elapsed = time.perf_counter() - start
        ortho_bytes = sum(p.stat().st_size for p in out.glob("domains/*/ortho/*.tif"))
        base_s, base_bytes = write_only_baseline(out, Path(tmp) / "baseline")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    km2 = summary.area_km2
    mpx = km2 * 1e6 / 0.04 / 1e6
    print(
        f"scenario {args.scenario}, seed {args.seed}: {len(summary.domains)} domains, "
        f"{km2:.2f} km² at 0.2 m ({mpx:.0f} Mpx), "
        f"{sum(d.dates for d in summary.domains)} Sentinel-2 scenes"
    )
    print(
        f"whole world:      {elapsed:8.1f} s  {km2 / elapsed * 60:8.2f} km²/min  "
        f"{summary.bytes_written / 1e6 / elapsed:6.1f} MB/s written "
        f"({summary.bytes_written / 1e6:.0f} MB)"
    )
    print(
        f"mosaic write-only baseline: {base_s:6.1f} s  {km2 / base_s * 60:8.2f} km²/min  "
        f"{base_bytes / 1e6 / base_s:6.1f} MB/s ({ortho_bytes / 1e6:.0f} MB of tiles)"
    )
    print(f"ratio whole world / write-only baseline: {elapsed / base_s:.1f}x")
    print(f"peak memory (RSS): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
