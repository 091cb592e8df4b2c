"""Benchmark: one département-size domain built to FLAIR's density (issue 27 items 6 and 3).

On the ``departement`` scenario (:mod:`flair_pipeline.synthetic.departement`: IGN-named
JPEG 2000 dalles through one VRT per product, OCS GE-density labels, DSM/DTM VRTs, a local
Sentinel-2 STAC catalogue), in a fresh spawned process (so its memory is the build's alone)
it runs a domain's build as ``build-domain --sentinel2`` does, with the public step
functions only:

1. ``domain_sources`` (inputs resolved; a département's label codes checked from their
   attributes alone, ``dataset/label_attributes.py``; a small mosaic's block by block);
2. ``patch_grid`` with areas first: FLAIR's density, ``--areas`` areas of ``--zone`` m
   (19 × 81 patches ≈ 1,540, FLAIR's ~1,550 a domain), strategy ``balanced``: the
   **area selection time** (a bounded pool of areas scored from the labels read by their
   extent, ``dataset/area_pool.py``, + the chosen cells' coverage, at 1/16 on a
   département, ``dataset/coarse_coverage.py``);
3. IMG then MSK of the kept patches on ``--workers`` local area processes
   (``dataset.area_workers``, :mod:`flair_pipeline.dataset.area_groups`);
4. the Sentinel-2 super-areas of the kept zones from the world's STAC catalogue
   (``build_domain_series`` with the provider of ``sentinel2.source``, as the
   ``sentinel2_series`` stage; ``sentinel2.max_size`` raised to fit ``--zone``).

Each step prints its wall and CPU seconds (this process and its area workers) and the peak
RSS of the process tree during it (sampled every 0.2 s: the process plus its workers); the
end prints the process's VmHWM, the largest worker's VmHWM (from /proc) and GDAL's
block cache size (``--gdal-cachemax`` or GDAL's default, per process). The use of the dalles
(patches per used dalle, from ``ortho/dalles.gpkg``) is set against the break-even of a
transcode cache (docs/performance.md, "JPEG 2000 dalles").

Baseline measured in the same run: the OLD whole-candidate sampling (every lattice cell read
at full resolution), timed on ``--subset`` random candidates and extrapolated to all the
lattice's candidates; the ratio old / new is printed. Targets, printed PASS / MISS, never
failing: choosing areas and patches for 6,000 km² ≤ 2 min on one core (measured when the
world is that size, else projected and said so); building about 1,550 patches with their
Sentinel-2 super-areas ≤ 15 min on 2 cores; peak RSS ≤ 3 GB (at ``--scale 1`` and 0.25).

    .venv/bin/python bench/departement.py --scale 0.01 --no-build          # a minute or two
    .venv/bin/python bench/departement.py --scale 0.25 --raw /tmp/dept025  # world reused
    .venv/bin/python bench/departement.py --scale 1.0 --raw /tmp/dept100
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing as mp
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DOMAIN = "D049_2022"
PATCH_M = 512 * 0.2
#: FLAIR's patches a domain (77,762 / 50), the build target's size
FLAIR_PATCHES = 1550
#: windows of a dalle after which transcoding it pays (docs/performance.md, "JPEG 2000 dalles")
TRANSCODE_BREAK_EVEN = 60


def _vmhwm_mb(pid: int | str = "self") -> float:
    """Peak RSS of a process (VmHWM, since its exec), MB.

    Returns:
        The peak, or nan when /proc is not there (or the process has ended).
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _cpu_s() -> float:
    """CPU seconds of this process and of its children that have ended (the area workers).

    Returns:
        user + system, self and waited-for children.
    """
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class TreePeak(threading.Thread):
    """Samples the RSS of this process plus its descendants (the area workers) every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.step_peak = 0
        self.child_hwm = 0.0  # the largest VmHWM of a child (an area worker), MB
        self._stop = threading.Event()

    def run(self) -> None:
        """Sample until :meth:`stop`."""
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.2):
            rss = me.memory_info().rss
            for c in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # ended since the listing
                    rss += c.memory_info().rss
                    self.child_hwm = max(self.child_hwm, _vmhwm_mb(c.pid))
            self.peak = max(self.peak, rss)
            self.step_peak = max(self.step_peak, rss)

    def stop(self) -> None:
        """End the sampling."""
        self._stop.set()


def _step(res: dict[str, Any], name: str, fn: Callable[[], Any], *, tree: TreePeak) -> Any:
    """Run `fn` as step `name`: its wall, CPU (with the workers') and tree peak in `res`.

    Returns:
        What `fn` returned.
    """
    tree.step_peak = 0
    w0, c0 = time.perf_counter(), _cpu_s()
    out = fn()
    time.sleep(0.25)  # one more sample of the tree
    res.setdefault("steps", {})[name] = {
        "wall": time.perf_counter() - w0 - 0.25,
        "cpu": _cpu_s() - c0,
        "tree_mb": tree.step_peak / 2**20,
    }
    return out


def _config(zone: float, areas: int | None, *, workers: int = 1, threads: int | None = None) -> Any:
    from flair_pipeline.config import config_from_dict

    window = 40  # sentinel2.window's default (px of 10 m)
    # a zone's super-area: its patch centroids +- half the window; FLAIR's ~1 km areas need
    # more than the default max_size (110 px fits 700 m zones)
    max_size = max(110, math.ceil((zone - PATCH_M) / 10) + window + 4)
    return config_from_dict(
        {
            "sampling": {
                "zone_size_m": zone,
                "areas_per_domain": areas,
                "area_strategy": "balanced",
                "strategy": "grid",
                "jp2_decode_threads": threads,
            },
            "dataset": {"area_workers": workers},
            "sentinel2": {"window": window, "max_size": max_size},
        }
    )


def _run(raw: str, out: str, *, opts: dict[str, Any], q: Any) -> None:
    """In a fresh process: sources, grid (areas first), IMG, MSK, S2; times and memory."""
    if opts["cachemax"]:  # before GDAL starts; the spawned area workers inherit it
        os.environ["GDAL_CACHEMAX"] = str(opts["cachemax"])
    if opts["threads"]:  # the VRT's JPEG 2000 sources too (GDAL reads the environment)
        os.environ["GDAL_NUM_THREADS"] = os.environ["OPJ_NUM_THREADS"] = str(opts["threads"])
    from flair_pipeline.dataset.domain_context import DomainContext
    from flair_pipeline.dataset.domain_steps import (
        build_domain_images,
        build_domain_masks,
        sample_domain_grid,
    )
    from flair_pipeline.dataset.sources_record import record_domain_sources
    from flair_pipeline.layout import DatasetLayout, RawLayout
    from flair_pipeline.sentinel2.build import build_domain_series
    from flair_pipeline.sentinel2.factory import build_provider

    tree = TreePeak()
    tree.start()
    cfg = _config(opts["zone"], opts["areas"], workers=opts["workers"], threads=opts["threads"])
    raw_l, out_l = RawLayout(Path(raw)), DatasetLayout(Path(out))
    res: dict[str, Any] = {"max_size": cfg.sentinel2.max_size}
    ctx = DomainContext.open(DOMAIN, raw=raw_l, dataset=out_l, cfg=cfg)
    src = _step(res, "sources", lambda: record_domain_sources(ctx), tree=tree)
    res["label_polygons"] = src.label_polygons
    res["vmhwm_sources"] = _vmhwm_mb()
    grid = _step(res, "grid", lambda: sample_domain_grid(ctx), tree=tree)
    res["patches"] = grid.patches
    res["candidates"] = grid.candidates
    res["candidates_read"] = getattr(grid, "candidates_read", -1)
    res["areas"] = dict(grid.areas)
    res["vmhwm_grid"] = _vmhwm_mb()
    if opts["build"]:
        img = _step(res, "IMG", lambda: build_domain_images(ctx), tree=tree)
        msk = _step(res, "MSK", lambda: build_domain_masks(ctx), tree=tree)
        res["img_written"], res["msk_written"] = img.written, msk.written
        provider = build_provider(cfg.sentinel2.source, raw_l.sentinel2_catalog())
        series = _step(
            res,
            "S2",
            lambda: build_domain_series(
                domain=DOMAIN, raw=raw_l, dataset=out_l, cfg=cfg, provider=provider
            ),
            tree=tree,
        )
        res["s2_zones"] = len(series.dates_per_zone)
        res["s2_dates"] = sorted(set(series.dates_per_zone.values()))
        res["s2_failed"] = list(series.failed_zones)
    tree.stop()
    res["vmhwm"] = _vmhwm_mb()
    res["tree_mb"] = tree.peak / 2**20
    # the workers' VmHWM read from /proc while they ran: RUSAGE_CHILDREN's ru_maxrss is no
    # use here, a spawned child's count starts from this process's RSS at its fork
    res["workers_hwm_mb"] = tree.child_hwm
    q.put(res)


def _old_sampling(raw: Path, zone: float, subset: int, *, seed: int = 0) -> tuple[float, int]:
    """Seconds per candidate of the old whole-candidate sampling, on `subset` random ones.

    The old loop read every cell of the patch lattice (patch-size squares from the
    mosaic's upper-left corner) at full resolution (``Mosaic.read``); here the same read on
    a random subset of the lattice, timed, per candidate. The lattice is counted here from
    the mosaic's bounds, not taken from the build's code.

    Returns:
        (seconds per candidate, candidates of the whole lattice).
    """
    from flair_pipeline.dataset.mosaic import Mosaic, mosaic_options
    from flair_pipeline.sources.domain_spec import resolve

    cfg = _config(zone, None)
    inputs = resolve(raw / "domains" / DOMAIN)
    with Mosaic(inputs.ortho, **mosaic_options(cfg.sampling)) as mosaic:
        left, bottom, right, top = mosaic.bounds
        nx, ny = int((right - left) // PATCH_M), int((top - bottom) // PATCH_M)
        rng = np.random.default_rng(seed)
        pick = rng.choice(nx * ny, min(subset, nx * ny), replace=False)
        t0 = time.perf_counter()
        for i in pick.tolist():
            r, c = divmod(i, nx)
            x0, y1 = left + c * PATCH_M, top - r * PATCH_M
            mosaic.read((x0, y1 - PATCH_M, x0 + PATCH_M, y1))
        per = (time.perf_counter() - t0) / max(len(pick), 1)
    return per, nx * ny


def _dalle_use(raw: Path, out: Path) -> tuple[int, list[int]] | None:
    """Patches of the grid over each used RVB dalle (``ortho/dalles.gpkg``, IGN's index).

    Returns:
        (dalles in the index, kept patches of each dalle at least one touches), or None
        without the index or the grid.
    """
    import geopandas as gpd

    from flair_pipeline.layout import DatasetLayout

    index = raw / "domains" / DOMAIN / "ortho" / "dalles.gpkg"
    grid_path = DatasetLayout(out).patch_grid(DOMAIN)
    if not index.exists() or not grid_path.exists():
        return None
    dalles = gpd.read_file(index)
    dalles = dalles[~dalles.iloc[:, 0].astype(str).str.contains("IRC")]
    grid = gpd.read_file(grid_path, layer="patches")
    hits = gpd.sjoin(grid[["geometry"]], dalles[["geometry"]], predicate="intersects")
    return len(dalles), sorted(hits.groupby("index_right").size().tolist())


def _cachemax_line(cachemax: int | None) -> str:
    """GDAL's block cache size per process, as set or GDAL's default.

    Returns:
        One line.
    """
    if cachemax:
        return f"GDAL_CACHEMAX {cachemax} MB per process (set by --gdal-cachemax)"
    env = os.environ.get("GDAL_CACHEMAX")
    if env:
        return f"GDAL_CACHEMAX {env} per process (from the environment)"
    import psutil

    mb = 0.05 * psutil.virtual_memory().total / 2**20
    from flair_pipeline.dataset.area_groups import WORKER_GDAL_CACHEMAX_MB

    return (
        f"GDAL_CACHEMAX unset: the build process GDAL's default 5 % of RAM = {mb:,.0f} MB, "
        f"each area worker {WORKER_GDAL_CACHEMAX_MB} MB (dataset/area_groups.py)"
    )


def _fmt_step(name: str, st: dict[str, float], extra: str = "") -> str:
    return (
        f"step {name:<7} wall {st['wall']:7.1f} s  CPU {st['cpu']:7.1f} s  "
        f"tree peak {st['tree_mb']:6.0f} MB{extra}"
    )


def main() -> None:
    """Generate (or reuse) the world, run the build in a fresh process, print the figures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", type=float, default=0.25, help="share of 78 km x 78 km")
    p.add_argument("--raw", type=Path, help="the world's raw root (generated when absent)")
    p.add_argument("--zone", type=float, default=972.8, help="area side, m (9 x 9 patches)")
    p.add_argument("--areas", type=int, default=19, help="areas a domain (FLAIR: ~18)")
    p.add_argument("--subset", type=int, default=100, help="candidates timed for the old way")
    p.add_argument("--workers", type=int, default=2, help="dataset.area_workers (processes)")
    p.add_argument(
        "--decode-threads",
        type=int,
        default=0,
        help="JPEG 2000 decoding threads per process (GDAL_NUM_THREADS); 0: GDAL's default",
    )
    p.add_argument("--gdal-cachemax", type=int, help="GDAL_CACHEMAX, MB per process")
    p.add_argument("--no-build", dest="build", action="store_false", help="grid only")
    p.add_argument("--keep", action="store_true", help="keep the dataset written (path printed)")
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
    opts = {
        "zone": a.zone,
        "areas": a.areas,
        "build": a.build,
        "workers": a.workers,
        "threads": a.decode_threads or None,
        "cachemax": a.gdal_cachemax,
    }
    q: Any = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(
        target=_run, args=(str(raw), str(out)), kwargs={"opts": opts, "q": q}
    )
    t0 = time.perf_counter()
    proc.start()
    res = q.get()
    proc.join()
    wall = time.perf_counter() - t0
    per, lattice = _old_sampling(raw, a.zone, a.subset)
    old = per * lattice
    st = res["steps"]
    new = st["sources"]["wall"] + st["grid"]["wall"]
    km2 = lattice * PATCH_M**2 / 1e6
    ar = res["areas"]
    print(
        f"domain {DOMAIN}: {km2:,.0f} km² of patch lattice, {lattice:,} candidate cells, "
        f"{res['label_polygons']:,} label polygons over the mosaic"
    )
    print(
        f"areas: {ar.get('chosen')} chosen of {ar.get('valid')} valid "
        f"({ar.get('candidates')} candidates); {res['patches']} patches kept of "
        f"{res['candidates']} laid, {res['candidates_read']} read at full resolution"
    )
    print(
        f"area selection: sources (labels checked) {st['sources']['wall']:.1f} s + grid "
        f"{st['grid']['wall']:.1f} s = {new:.1f} s wall (CPU "
        f"{st['sources']['cpu'] + st['grid']['cpu']:.1f} s)"
    )
    print(
        f"old whole-candidate sampling: {per * 1000:.1f} ms/candidate on {a.subset} "
        f"-> {old:,.0f} s for all {lattice:,} (extrapolated); old/new = {old / new:,.1f}x"
    )
    if km2 >= 0.95 * 6084:
        sel, how = new, f"measured on {km2:,.0f} km²"
    else:  # labels checked and scored over the mosaic (x area); checks over the laid cells
        sel = st["sources"]["wall"] * 6084 / max(km2, 1e-9) + st["grid"]["wall"] * 1539 / max(
            res["candidates"], 1
        )
        how = f"projected from {km2:,.0f} km² (sources x area, grid x laid cells; an estimate)"
    print(
        f"target: areas + patches for 6,000 km² <= 2 min on one core: {new:.1f} s here; "
        f"{sel:.0f} s {how} -> {'PASS' if sel <= 120 else 'MISS'}"
    )
    for name in ("sources", "grid"):
        print(_fmt_step(name, st[name]))
    if a.build:
        n = res["patches"]
        for name, done in (("IMG", res["img_written"]), ("MSK", res["msk_written"])):
            print(_fmt_step(name, st[name], f"  {done} written, {done / st[name]['wall']:.2f}/s"))
        print(
            _fmt_step(
                "S2",
                st["S2"],
                f"  {res['s2_zones']} super-areas, dates {res['s2_dates']}, "
                f"{len(res['s2_failed'])} failed (sentinel2.max_size {res['max_size']})",
            )
        )
        build = sum(v["wall"] for v in st.values())
        cpu = sum(v["cpu"] for v in st.values())
        writes = st["IMG"]["wall"] + st["MSK"]["wall"]
        print(
            f"build: {n} patches IMG + MSK in {writes:.1f} s = {n / writes:.2f} patches/s "
            f"({a.workers} area workers, decode threads {a.decode_threads or 'GDAL default'})"
        )
        scaled = build + (FLAIR_PATCHES - n) * (writes + st["S2"]["wall"]) / max(n, 1)
        note = (
            ""
            if abs(n - FLAIR_PATCHES) <= 0.05 * FLAIR_PATCHES
            else (f" ({build:.0f} s for {n}; IMG, MSK and S2 scaled by patches)")
        )
        print(
            f"total for ~{FLAIR_PATCHES:,} patches + S2 super-areas: {scaled:.0f} s wall{note}, "
            f"CPU {cpu:.0f} s for {n} -> {'PASS' if scaled <= 900 else 'MISS'} "
            "(<= 15 min on 2 cores)"
        )
        use = _dalle_use(raw, out)
        if use is not None:
            total, per_dalle = use
            reach = sum(k >= TRANSCODE_BREAK_EVEN for k in per_dalle)
            print(
                f"dalles: {len(per_dalle)} of {total} RVB dalles used, patches a used dalle "
                f"median {np.median(per_dalle or [0]):.0f}, max {max(per_dalle or [0])}; a "
                f"transcode pays after ~{TRANSCODE_BREAK_EVEN} windows: {reach} dalles reach it"
            )
    peak = max(res["tree_mb"], res["vmhwm"])
    print(
        f"peak RSS of the process tree (sampled, build + {a.workers if a.build else 0} area workers): "
        f"{res['tree_mb']:.0f} MB; VmHWM of the build process {res['vmhwm']:.0f} MB (after "
        f"sources {res['vmhwm_sources']:.0f}, after grid {res['vmhwm_grid']:.0f}), largest "
        f"worker VmHWM {res['workers_hwm_mb']:.0f} MB -> {'PASS' if peak <= 3072 else 'MISS'} "
        "(<= 3 GB)"
    )
    print(_cachemax_line(a.gdal_cachemax))
    print(f"wall of the fresh process: {wall:.1f} s (2 shared cores: figures under contention)")
    if a.keep:
        print(f"dataset: {out}")
    else:
        import shutil

        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
