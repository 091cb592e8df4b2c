"""Benchmark: Sentinel-2 series from the STAC archive, per domain, as the pipeline asks for them.

For each domain the mosaic is tiled into 700 m zones, each grown by 200 m (half a 40 px
window) on every side, as super-areas are. Timed:

(a) one ``StacProvider.fetch`` of all the domain's zone grids: every scene asset is opened
    once and every zone's window read from it → zone series/s and patch windows/s (a
    zone holds (side / 102.4 m)² patches of 512 px at 0.2 m, each with a 40 × 40 window);
(b) baseline, same run: one ``fetch`` per patch of a 40 × 40 grid around its centroid, so
    every scene is opened once per patch; run on a few patches, extrapolated per patch.

The ratio (b)/(a) per patch should be >= 5×. Also printed: the Sentinel Hub processing
units (PU) one patch-year would cost by the published PU rules, for comparison.

    .venv/bin/python bench/sentinel2.py --raw /tmp/benchraw     # reuse a generated world
    .venv/bin/python bench/sentinel2.py                         # generate `bench` (minutes)
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import tempfile
import time
from pathlib import Path

from flair_pipeline.sentinel2.provider import Grid
from flair_pipeline.sentinel2.stac import StacProvider

ZONE_M, GROW_M, PATCH_M, WINDOW_PX = 700.0, 200.0, 102.4, 40
TARGET = 5.0


def zones(bounds: list[float]) -> list[tuple[float, float, float, float]]:
    """The domain mosaic cut into squares of ZONE_M (the last row/column may be narrower)."""
    x0, y0, x1, y1 = bounds
    xs = [*list(_steps(x0, x1)), x1]
    ys = [*list(_steps(y0, y1)), y1]
    return [(a, b, c, d) for a, c in itertools.pairwise(xs) for b, d in itertools.pairwise(ys)]


def _steps(lo: float, hi: float):
    v = lo
    while v < hi - 1e-6:
        yield v
        v += ZONE_M


def patch_centroids(zone: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """Centroids of the whole 102.4 m patches that fit in the zone."""
    x0, y0, x1, y1 = zone
    nx, ny = int((x1 - x0) // PATCH_M), int((y1 - y0) // PATCH_M)
    return [
        (x0 + (i + 0.5) * PATCH_M, y1 - (j + 0.5) * PATCH_M) for j in range(ny) for i in range(nx)
    ]


def window_grid(x: float, y: float) -> Grid:
    half = WINDOW_PX * 10 / 2
    return Grid.around((x - half, y - half, x + half, y + half))


def pu_estimate(*, width: int, height: int, bands: int, dates: int, float32: bool = False) -> float:
    """Sentinel Hub PU of one Process API request (docs.sentinel-hub.com, "Processing Unit").

    area factor = W·H / 512² (at least 0.01), × input bands / 3, × data samples (dates),
    × 2 for FLOAT32 output (1 up to 16 bits), and a request costs at least 0.005 PU.
    """
    area = max(width * height / 512**2, 0.01)
    return max(area * bands / 3 * dates * (2 if float32 else 1), 0.005)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--raw", type=Path, default=None, help="existing world (…/sentinel2/catalog.json)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-patches", type=int, default=3, help="per domain, for (b)")
    ap.add_argument("--workers", type=int, default=None, help="default: the provider's")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw
        if raw is None:
            from flair_pipeline.synthetic.world import generate_world

            raw = Path(tmp) / "raw"
            print("generating the `bench` world (a few minutes)…", flush=True)
            generate_world(raw, "bench", args.seed)
        run(raw, args.baseline_patches, args.workers)


def run(raw: Path, n_base: int, workers: int | None) -> None:
    provider = StacProvider(catalog=raw / "sentinel2" / "catalog.json", workers=workers)
    t0 = time.perf_counter()
    provider.fetch_each([], dt.date(1, 1, 1), dt.date(9999, 12, 31))  # load the catalog
    print(f"catalog loaded in {time.perf_counter() - t0:.1f} s (once per provider, not timed)")
    tot = {"zones": 0, "patches": 0, "a_s": 0.0, "b_s": 0.0, "b_n": 0, "dates": 0, "series": 0}
    for info_path in sorted((raw / "domains").glob("*/domain.json")):
        info = json.loads(info_path.read_text())
        year = int(info["year"])
        start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
        zs = zones(info["bounds"])
        grids = [Grid.around((a - GROW_M, b - GROW_M, c + GROW_M, d + GROW_M)) for a, b, c, d in zs]
        cents = [p for z in zs for p in patch_centroids(z)]
        t = time.perf_counter()
        series = provider.fetch(grids, start, end)
        a_s = time.perf_counter() - t
        step = max(len(cents) // max(n_base, 1), 1)
        sample = cents[::step][:n_base]
        t = time.perf_counter()
        for x, y in sample:
            provider.fetch([window_grid(x, y)], start, end)
        b_s = time.perf_counter() - t
        n_dates = len(series[0].dates)
        size = max(max(g.width, g.height) for g in grids)
        print(
            f"{info['domain']}: {len(grids)} zones (≤ {size} px), {len(cents)} patches, "
            f"{n_dates} dates | (a) {a_s:6.2f} s  {len(grids) / a_s:6.2f} zone series/s  "
            f"{len(cents) / a_s:7.1f} patch windows/s | (b) {b_s / len(sample):5.2f} s/patch "
            f"on {len(sample)} patches"
        )
        tot["zones"] += len(grids)
        tot["patches"] += len(cents)
        tot["a_s"] += a_s
        tot["b_s"] += b_s
        tot["b_n"] += len(sample)
        tot["dates"] += sum(len(s.dates) for s in series)
        tot["series"] += len(series)
    if not tot["series"]:
        print("no domain found under", raw / "domains")
        return
    a_pp = tot["a_s"] / tot["patches"]
    b_pp = tot["b_s"] / tot["b_n"]
    ratio = b_pp / a_pp
    print(
        f"\nall domains: {tot['zones']} zones, {tot['patches']} patches, "
        f"{tot['dates'] / tot['series']:.1f} dates/zone on average"
    )
    print(
        f"(a) one fetch per domain:  {tot['zones'] / tot['a_s']:7.2f} zone series/s  "
        f"{1 / a_pp:8.1f} patch windows/s  ({a_pp * 1000:.1f} ms/patch)"
    )
    print(
        f"(b) one fetch per patch:   {1 / b_pp:8.1f} patch windows/s  ({b_pp * 1000:.1f} ms/patch, "
        f"measured on {tot['b_n']} patches, extrapolated)"
    )
    print(
        f"ratio (b)/(a) per patch: {ratio:.1f}x (target >= {TARGET:.0f}x): "
        f"{'PASS' if ratio >= TARGET else 'MISS'}"
    )
    dates = round(tot["dates"] / tot["series"])
    pu_patch = pu_estimate(width=WINDOW_PX, height=WINDOW_PX, bands=12, dates=55)
    pu_here = pu_estimate(width=WINDOW_PX, height=WINDOW_PX, bands=12, dates=dates)
    pu_zone = pu_estimate(width=110, height=110, bands=12, dates=55)
    print(
        f"\nSentinel Hub PU estimate per patch-year ({WINDOW_PX}×{WINDOW_PX} px window requested "
        f"alone): {pu_patch:.2f} PU at 55 dates (FLAIR mean), {pu_here:.2f} PU at {dates} "
        f"dates (this world); a 110×110 px super-area of ~36 patches: {pu_zone:.2f} PU, "
        f"{pu_zone / 36:.2f} PU per patch"
    )
    print(
        "  assumptions: Process API, one request per window and year; area factor "
        "40·40/512² = 0.0061 raised to the 0.01 minimum; 12 input bands (10 spectral + SNW "
        "+ CLD) → ×4; ORBIT mosaicking → ×dates; UINT16/UINT8 outputs → ×1; no other "
        "factor; request minimum 0.005 PU (not reached)"
    )


if __name__ == "__main__":
    main()
