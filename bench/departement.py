"""Benchmark: one département-size domain built to FLAIR's density (issue 27 item 6).

On the ``departement`` scenario (:mod:`flair_pipeline.synthetic.departement`: IGN-named
JPEG 2000 dalles through one VRT per product, OCS GE-density labels), in a fresh spawned
process (so its peak RSS, VmHWM, is the build's alone) it runs the build's first steps as
``build-domain`` does:

1. ``domain_sources`` (inputs resolved, label layer checked block by block);
2. ``patch_grid`` with areas first: FLAIR's density, ``--areas`` areas of ``--zone`` m
   (19 × 81 patches ≈ 1,540, FLAIR's ~1,550 a domain), strategy ``balanced``: the
   **area selection time** (scoring streamed from the labels + the chosen cells' checks);
3. IMG and MSK of the kept patches (``--build``; patches/s over both steps).

Baseline measured in the same run: the OLD whole-candidate sampling (``sample_patches`` with
``areas_per_domain`` None reads every lattice cell at full resolution), timed on
``--subset`` random candidates and extrapolated to all the lattice's candidates; the ratio
old / new is printed. Targets, printed PASS / MISS, never failing: choosing areas and
patches for 6,000 km² ≤ 2 min on one core; peak RSS ≤ 3 GB (at ``--scale 1`` and 0.25).
Not measured here: the Sentinel-2 super-areas of the kept patches (≤ 15 min on 2 cores
with the IMG and MSK).

    .venv/bin/python bench/departement.py --scale 0.01 --no-build          # a minute or two
    .venv/bin/python bench/departement.py --scale 0.25 --raw /tmp/dept025  # world reused
    .venv/bin/python bench/departement.py --scale 1.0 --raw /tmp/dept100
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DOMAIN = "D049_2022"


def _vmhwm_mb() -> float:
    """Peak RSS of this process (VmHWM), MB.

    Returns:
        The peak, or nan when /proc is not there.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _config(zone: float, areas: int | None) -> Any:
    from flair_pipeline.config import config_from_dict

    return config_from_dict(
        {
            "sampling": {
                "zone_size_m": zone,
                "areas_per_domain": areas,
                "area_strategy": "balanced",
                "strategy": "grid",
            }
        }
    )


def _run(raw: str, out: str, *, zone: float, areas: int, build: bool, q: Any) -> None:
    """In a fresh process: sources, grid (areas first), IMG + MSK; times and VmHWM."""
    from flair_pipeline.dataset.domain_context import DomainContext
    from flair_pipeline.dataset.domain_steps import (
        build_domain_images,
        build_domain_masks,
        sample_domain_grid,
    )
    from flair_pipeline.dataset.sources_record import record_domain_sources
    from flair_pipeline.layout import DatasetLayout, RawLayout

    res: dict[str, Any] = {}
    ctx = DomainContext.open(
        DOMAIN, raw=RawLayout(Path(raw)), dataset=DatasetLayout(Path(out)), cfg=_config(zone, areas)
    )
    t0 = time.perf_counter()
    src = record_domain_sources(ctx)
    res["sources_s"] = time.perf_counter() - t0
    res["label_polygons"] = src.label_polygons
    res["vmhwm_sources"] = _vmhwm_mb()
    t0 = time.perf_counter()
    grid = sample_domain_grid(ctx)
    res["grid_s"] = time.perf_counter() - t0
    res["patches"] = grid.patches
    res["candidates"] = grid.candidates
    res["candidates_read"] = grid.candidates_read
    res["areas"] = grid.areas
    res["vmhwm_grid"] = _vmhwm_mb()
    if build:
        t0 = time.perf_counter()
        build_domain_images(ctx)
        build_domain_masks(ctx)
        res["build_s"] = time.perf_counter() - t0
    res["vmhwm"] = _vmhwm_mb()
    q.put(res)


def _old_sampling(raw: Path, zone: float, subset: int, *, seed: int = 0) -> tuple[float, int]:
    """Seconds per candidate of the old whole-candidate sampling, on `subset` random ones.

    The old loop reads every lattice cell at full resolution (``Mosaic.read_products``);
    here the same read on a random subset of the lattice, timed, per candidate.

    Returns:
        (seconds per candidate, candidates of the whole lattice).
    """
    from flair_pipeline.dataset.areas import PatchLattice
    from flair_pipeline.dataset.mosaic import Mosaic, mosaic_options
    from flair_pipeline.sources.domain_spec import resolve

    cfg = _config(zone, None)
    inputs = resolve(raw / "domains" / DOMAIN)
    with Mosaic(inputs.ortho, **mosaic_options(cfg.sampling)) as mosaic:
        lattice = PatchLattice.of(mosaic, cfg.sampling)
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(lattice.boxes), min(subset, len(lattice.boxes)), replace=False)
        t0 = time.perf_counter()
        for i in pick.tolist():
            mosaic.read_products(tuple(lattice.boxes[i].bounds))
        per = (time.perf_counter() - t0) / max(len(pick), 1)
    return per, len(lattice.boxes)


def main() -> None:
    """Generate (or reuse) the world, run the build in a fresh process, print the figures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", type=float, default=0.25, help="share of 78 km x 78 km")
    p.add_argument("--raw", type=Path, help="the world's raw root (generated when absent)")
    p.add_argument("--zone", type=float, default=972.8, help="area side, m (9 x 9 patches)")
    p.add_argument("--areas", type=int, default=19, help="areas a domain (FLAIR: ~18)")
    p.add_argument("--subset", type=int, default=100, help="candidates timed for the old way")
    p.add_argument("--no-build", dest="build", action="store_false", help="skip IMG and MSK")
    a = p.parse_args()

    from flair_pipeline.synthetic.departement import generate_departement

    raw = a.raw or Path(tempfile.mkdtemp(prefix="dept-")) / "raw"
    if not (raw / "domains" / DOMAIN / "domain.yaml").exists():
        t0 = time.perf_counter()
        s = generate_departement(raw, a.scale, progress=lambda m: print("  synth:", m))
        print(
            f"world: {s.area_km2:.0f} km², {s.labels:,} label polygons, "
            f"generated in {time.perf_counter() - t0:.0f} s -> {raw}"
        )
    out = Path(tempfile.mkdtemp(prefix="dept-ds-"))
    q: Any = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(
        target=_run,
        args=(str(raw), str(out)),
        kwargs={"zone": a.zone, "areas": a.areas, "build": a.build, "q": q},
    )
    t0 = time.perf_counter()
    proc.start()
    res = q.get()
    proc.join()
    wall = time.perf_counter() - t0
    per, lattice = _old_sampling(raw, a.zone, a.subset)
    old = per * lattice
    new = res["sources_s"] + res["grid_s"]
    km2 = lattice * (512 * 0.2) ** 2 / 1e6
    print(
        f"domain {DOMAIN}: {km2:,.0f} km² of patch lattice, {lattice:,} candidate cells, "
        f"{res['label_polygons']:,} label polygons over the mosaic"
    )
    print(
        f"areas: {res['areas']['chosen']} chosen of {res['areas']['valid']} valid "
        f"({res['areas']['candidates']} candidates); {res['patches']} patches kept of "
        f"{res['candidates']} laid, {res['candidates_read']} read at full resolution"
    )
    print(
        f"area selection: sources (labels checked) {res['sources_s']:.1f} s + grid "
        f"{res['grid_s']:.1f} s = {new:.1f} s"
    )
    print(
        f"old whole-candidate sampling: {per * 1000:.1f} ms/candidate on {a.subset} "
        f"-> {old:,.0f} s for all {lattice:,} (extrapolated); old/new = {old / new:,.1f}x"
    )
    # labels are checked and scored over the whole mosaic (scale with its area); the
    # full-resolution checks run on the chosen areas' cells (scale with the patches kept)
    scaled = res["sources_s"] * 6084 / max(km2, 1e-9) + res["grid_s"] * 1539 / max(
        res["candidates"], 1
    )
    ok = "PASS" if scaled <= 120 else "MISS"
    print(
        f"target: areas + patches for 6,000 km² <= 2 min on one core: {new:.1f} s here; "
        f"projected {scaled:.0f} s for 6,084 km² and 1,539 patches (sources x area, grid x "
        f"laid cells; an estimate) -> {ok}"
    )
    if a.build and res["patches"]:
        rate = res["patches"] / res["build_s"]
        print(
            f"build: {res['patches']} IMG + MSK in {res['build_s']:.1f} s = {rate:.2f} patches/s "
            f"(one process); Sentinel-2 super-areas not measured"
        )
    peak = res["vmhwm"]
    print(
        f"peak RSS (VmHWM of the fresh process): {peak:.0f} MB (after sources "
        f"{res['vmhwm_sources']:.0f}, after grid {res['vmhwm_grid']:.0f}) -> "
        f"{'PASS' if peak <= 3072 else 'MISS'} (<= 3 GB)"
    )
    print(f"wall of the fresh process: {wall:.1f} s (2 shared cores: figures under contention)")


if __name__ == "__main__":
    main()
