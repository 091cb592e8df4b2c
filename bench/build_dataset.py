"""Benchmark: per-patch throughput of the dataset stage (IMG and MSK), and its memory.

For the same patches (the grid that `sample_patches` chooses, strategy `grid`) it measures:

1. the whole per-patch work as the pipeline does it: `build_aerial_patches` (mosaic window,
   elevation = DSM − DTM resampled, IMG written) and `build_label_masks` (label mask
   rasterised, MSK written), per-domain setup included; patches/s in one process = per core;
2. a baseline in the same run: only read the same mosaic windows (`Mosaic.read`) and write
   the same bytes (the IMG and MSK just produced, loaded into memory beforehand, written
   back with `write_geotiff` and the same profile); the ratio says what elevation,
   rasterising and the pipeline's bookkeeping cost on top of unavoidable I/O;
3. peak memory: ru_maxrss of this process after the whole run, and the peak RSS (VmHWM) of
   building the largest measured domain (sampling, IMG, MSK) in a fresh spawned process.

It also prints where the time goes, from an instrumented loop over the same core functions
(Mosaic.read, Elevation.patch, LabelIndex.mask, write_geotiff). Targets (ratio ≤ 2x,
≥ 100 patches/s per core at 512 px, < 2 GB per domain) are printed as PASS / MISS; the
script never fails on them.

    .venv/bin/python bench/build_dataset.py --raw /tmp/benchraw --domains 2   # a minute
    .venv/bin/python bench/build_dataset.py                 # generates the bench world first
    .venv/bin/python bench/build_dataset.py --flavour ign   # the same world as IGN delivers it
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import os
import resource
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from flair_pipeline.config import PipelineConfig, SamplingConfig
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.patch_writers import (
    COMPRESSIONS,
    CRS,
    DEFAULT_COMPRESSION,
    IMG_BANDS,
    IMG_ZLEVEL,
    Elevation,
    build_aerial_patches,
    build_label_masks,
)
from flair_pipeline.dataset.rasterize import LabelIndex, read_labels
from flair_pipeline.dataset.sampling import sample_patches
from flair_pipeline.io import write_geotiff
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.nomenclature import colormap
from flair_pipeline.project import Project
from flair_pipeline.sources.domain_spec import DomainInputs, resolve
from flair_pipeline.synthetic.ign import convert_world
from flair_pipeline.synthetic.world import SCENARIOS, generate_world

TARGET_RATIO = 2.0
TARGET_RATE = 100.0  # patches/s per core, at 512 px
TARGET_PEAK_MB = 2048.0


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def peak_rss_mb() -> float:
    """Peak RSS of this process's own address space (VmHWM), in MB.

    ru_maxrss would do, except that Linux carries the parent's high-water mark over a
    fork + exec, so a spawned child would report at least its parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bounds(row) -> tuple[float, float, float, float]:
    return tuple(row.geometry.bounds)  # type: ignore[return-value]


def _files_mb(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 1e6


@dataclass
class Timings:
    """Seconds and counts summed over the measured domains."""

    patches: int = 0
    base_patches: int = 0  # patches the builders skipped are left out of the baseline
    whole_img: float = 0.0
    whole_msk: float = 0.0
    base_img: float = 0.0
    base_msk: float = 0.0
    img_mb: float = 0.0
    msk_mb: float = 0.0
    steps: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    setup: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    skipped: int = 0


def project_of(
    *, raw_root: Path, out: Path, patch_size: int, strategy: str | None = None
) -> Project:
    """The project of one measure: raw world, dataset root and sampling, the rest defaults."""
    sampling: dict[str, object] = {"patch_size": patch_size}
    if strategy is not None:
        sampling["strategy"] = strategy
    settings = {"paths": {"raw": str(raw_root), "dataset": str(out)}, "sampling": sampling}
    return Project.of(PipelineConfig.model_validate(settings), Path.cwd())


@functools.cache
def _in(raw: RawLayout, domain: str) -> DomainInputs:
    """The domain's inputs, raw layout or domain.yaml (the ign flavour), as the assets read them;
    resolved once per folder (globs and domain.json read once, not on every call)."""
    return _resolved(raw.domain(domain))


@functools.cache
def _resolved(folder: Path) -> DomainInputs:
    return resolve(folder)


def sample(raw: RawLayout, domain: str, cfg: SamplingConfig):
    labels = read_labels(_in(raw, domain).labels, mapping=_in(raw, domain).mapping)
    with Mosaic(_in(raw, domain).ortho) as mosaic:
        grid, report = sample_patches(domain=domain, mosaic=mosaic, labels=labels, cfg=cfg)
    return grid, report


def whole_work(
    *,
    raw: RawLayout,
    domain: str,
    grid,
    layout: DatasetLayout,
    cfg: SamplingConfig,
    compression: str = DEFAULT_COMPRESSION,
):
    """The pipeline's own builders; (IMG seconds, MSK seconds, skipped patches)."""
    t0 = time.perf_counter()
    img = build_aerial_patches(
        grid,
        ortho_dir=_in(raw, domain).ortho,
        dsm=_in(raw, domain).dsm,
        dtm=_in(raw, domain).dtm,
        layout=layout,
        patch_size=cfg.patch_size,
        elevation_scale=cfg.elevation_scale,
        compression=compression,
    )
    t1 = time.perf_counter()
    msk = build_label_masks(
        grid,
        labels_path=_in(raw, domain).labels,
        layout=layout,
        patch_size=cfg.patch_size,
        res=cfg.resolution,
        mapping=_in(raw, domain).mapping,
        compression=compression,
    )
    t2 = time.perf_counter()
    skipped = {p for p, _ in img.skipped} | {p for p, _ in msk.skipped}
    return t1 - t0, t2 - t1, skipped


def _load(path: Path) -> dict:
    """Pixels and write_geotiff arguments of a produced file, to write it back identically."""
    with rasterio.open(path) as src:
        try:
            cmap = src.colormap(1)
        except ValueError:
            cmap = None
        return {
            "array": src.read(),
            "transform": src.transform,
            "crs": src.crs,
            "descriptions": tuple(d or "" for d in src.descriptions),
            "colormap": cmap,
        }


def baseline(*, raw: RawLayout, domain: str, rows: list, src: DatasetLayout, out: DatasetLayout):
    """Read the same windows and write the same bytes; (IMG seconds, MSK seconds)."""
    imgs = [{**_load(src.img(r.domain, r.zone, r.patch_id)), "zlevel": IMG_ZLEVEL} for r in rows]
    msks = [_load(src.msk(r.domain, r.zone, r.patch_id)) for r in rows]
    t0 = time.perf_counter()
    with Mosaic(_in(raw, domain).ortho) as mosaic:
        for r, kw in zip(rows, imgs, strict=True):
            mosaic.read(_bounds(r))
            write_geotiff(out.img(r.domain, r.zone, r.patch_id), **kw)
    t1 = time.perf_counter()
    for r, kw in zip(rows, msks, strict=True):
        write_geotiff(out.msk(r.domain, r.zone, r.patch_id), **kw)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def breakdown(
    *, raw: RawLayout, domain: str, rows: list, out: DatasetLayout, cfg: SamplingConfig, t: Timings
) -> None:
    """The builders' per-patch work, step by step, with the same core functions."""
    clock = time.perf_counter
    steps, setup = t.steps, t.setup
    a = clock()
    mosaic = Mosaic(_in(raw, domain).ortho)
    b = clock()
    elevation = Elevation(_in(raw, domain).dsm, _in(raw, domain).dtm, cfg.elevation_scale)
    c = clock()
    index = LabelIndex.from_file(_in(raw, domain).labels, mapping=_in(raw, domain).mapping)
    d = clock()
    setup["open mosaic tiles"] += b - a
    setup["open DSM + DTM"] += c - b
    setup["read labels + STRtree"] += d - c
    cmap = colormap()
    res = mosaic.res
    size = cfg.patch_size
    try:
        for r in rows:
            bounds = _bounds(r)
            transform = from_origin(west=bounds[0], north=bounds[3], xsize=res, ysize=res)
            msk_transform = from_origin(
                west=bounds[0], north=bounds[3], xsize=cfg.resolution, ysize=cfg.resolution
            )
            t0 = clock()
            mosaic.broken_touching(bounds)
            t1 = clock()
            rgbn, _ = mosaic.read(bounds)
            t2 = clock()
            elev = elevation.patch(bounds, rgbn.shape[1:])
            t3 = clock()
            img = np.concatenate([rgbn, elev[None]], axis=0)
            t4 = clock()
            write_geotiff(
                out.img(r.domain, r.zone, r.patch_id),
                array=img,
                transform=transform,
                crs=CRS,
                descriptions=IMG_BANDS,
                zlevel=IMG_ZLEVEL,
            )
            t5 = clock()
            msk = index.mask(msk_transform, (size, size), CRS)  # as build_label_masks
            t6 = clock()
            write_geotiff(
                out.msk(r.domain, r.zone, r.patch_id),
                array=msk,
                transform=msk_transform,
                crs=CRS,
                colormap=cmap,
                descriptions=("label",),
            )
            t7 = clock()
            steps["IMG: broken-tile check"] += t1 - t0
            steps["IMG: Mosaic.read (window)"] += t2 - t1
            steps["IMG: Elevation.patch (DSM−DTM)"] += t3 - t2
            steps["IMG: stack 5 bands"] += t4 - t3
            steps["IMG: write_geotiff"] += t5 - t4
            steps["MSK: LabelIndex.mask"] += t6 - t5
            steps["MSK: write_geotiff"] += t7 - t6
    finally:
        mosaic.close()
        elevation.close()


def domain_peak(*, raw_root: str, domain: str, patch_size: int, out: str) -> dict[str, float]:
    """Build one domain (sampling, IMG, MSK) in this fresh process; VmHWM after each phase."""
    project = project_of(raw_root=Path(raw_root), out=Path(out), patch_size=patch_size)
    raw, layout, cfg = project.raw, project.dataset, project.config.sampling
    phases = {"after imports": peak_rss_mb()}
    grid, _ = sample(raw, domain, cfg)
    phases["after sampling"] = peak_rss_mb()
    build_aerial_patches(
        grid,
        ortho_dir=_in(raw, domain).ortho,
        dsm=_in(raw, domain).dsm,
        dtm=_in(raw, domain).dtm,
        layout=layout,
        patch_size=cfg.patch_size,
        elevation_scale=cfg.elevation_scale,
    )
    phases["after IMG"] = peak_rss_mb()
    build_label_masks(
        grid,
        labels_path=_in(raw, domain).labels,
        layout=layout,
        patch_size=cfg.patch_size,
        res=cfg.resolution,
        mapping=_in(raw, domain).mapping,
    )
    phases["after MSK"] = peak_rss_mb()
    phases["patches"] = float(len(grid))
    return phases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--raw", type=Path, default=None, help="existing raw world (default: generate one)"
    )
    ap.add_argument("--scenario", default="bench", choices=tuple(SCENARIOS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patch-size", type=int, default=512)
    ap.add_argument("--domains", type=int, default=None, help="measure only the first N domains")
    ap.add_argument(
        "--flavour",
        choices=("plain", "ign"),
        default="plain",
        help="ign: rewrite the generated world as IGN delivers it (domain.yaml)",
    )
    ap.add_argument(
        "--compression",
        default=DEFAULT_COMPRESSION,
        choices=COMPRESSIONS,
        help="dataset.compression of the IMG and MSK written (measured: all four)",
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-dataset-") as tmp:
        tmp = Path(tmp)
        if args.raw is None:
            start = time.perf_counter()
            generate_world(tmp / "raw", args.scenario, args.seed)
            if args.flavour == "ign":
                convert_world(tmp / "raw")
            print(
                f"generated scenario {args.scenario} (seed {args.seed}) "
                f"in {time.perf_counter() - start:.0f} s"
            )
            raw_root = tmp / "raw"
        else:
            raw_root = args.raw
        # the whole build is the project's dataset; baseline and breakdown are scratch copies
        project = project_of(
            raw_root=raw_root, out=tmp / "whole", patch_size=args.patch_size, strategy="grid"
        )
        raw, whole, cfg = project.raw, project.dataset, project.config.sampling
        domains = sorted(p.name for p in (raw_root / "domains").iterdir() if p.is_dir())
        domains = domains[: args.domains] if args.domains else domains
        load = os.getloadavg()
        print(
            f"raw world {raw_root}: measuring {len(domains)} domain(s), patch {cfg.patch_size} px "
            f"at {cfg.resolution} m, strategy grid, {args.compression}; one process (= one core); "
            f"load average {load[0]:.1f} on {os.cpu_count()} CPUs"
        )

        t = Timings()
        sizes: dict[str, int] = {}
        for domain in domains:
            start = time.perf_counter()
            grid, report = sample(raw, domain, cfg)
            t_sample = time.perf_counter() - start
            sizes[domain] = len(grid)
            if not len(grid):
                print(f"{domain}: no patches ({report.candidates} candidates), skipped")
                continue
            t_img, t_msk, skipped = whole_work(
                raw=raw,
                domain=domain,
                grid=grid,
                layout=whole,
                cfg=cfg,
                compression=args.compression,
            )
            rows = [r for r in grid.itertuples() if r.patch_id not in skipped]
            b_img, b_msk = baseline(
                raw=raw, domain=domain, rows=rows, src=whole, out=DatasetLayout(tmp / "baseline")
            )
            breakdown(
                raw=raw,
                domain=domain,
                rows=rows,
                out=DatasetLayout(tmp / "breakdown"),
                cfg=cfg,
                t=t,
            )
            n = len(grid)
            img_mb = _files_mb([whole.img(r.domain, r.zone, r.patch_id) for r in rows])
            msk_mb = _files_mb([whole.msk(r.domain, r.zone, r.patch_id) for r in rows])
            t.patches += n
            t.base_patches += len(rows)
            t.skipped += len(skipped)
            t.whole_img += t_img
            t.whole_msk += t_msk
            t.base_img += b_img
            t.base_msk += b_msk
            t.img_mb += img_mb
            t.msk_mb += msk_mb
            print(
                f"{domain}: {n} patches of {report.candidates} candidates "
                f"(sampling {t_sample:.1f} s, {len(skipped)} skipped) | whole "
                f"IMG {rate(n, t_img):5.1f}/s MSK {rate(n, t_msk):5.1f}/s | baseline "
                f"IMG {rate(len(rows), b_img):5.1f}/s MSK {rate(len(rows), b_msk):5.1f}/s"
            )
            for sub in ("whole", "baseline", "breakdown"):  # keep the temp disk small
                shutil.rmtree(tmp / sub, ignore_errors=True)

        if not t.patches:
            print("no patches measured")
            return
        n, nb = t.patches, t.base_patches
        # per-patch seconds: whole work over every patch, baseline over the patches written
        w_img, w_msk, b_img, b_msk = (
            t.whole_img / n,
            t.whole_msk / n,
            t.base_img / nb,
            t.base_msk / nb,
        )
        print()
        print(
            f"per-patch work, {n} patches of {cfg.patch_size} px in {len(domains)} domain(s), "
            f"IMG {t.img_mb / nb:.2f} MB + MSK {t.msk_mb / nb:.3f} MB per patch on disk:"
        )
        print(f"  {'':34s} {'IMG':>9s} {'MSK':>9s} {'IMG+MSK':>9s}")
        print(
            f"  {'whole work   patches/s per core':34s} {1 / w_img:9.1f} {1 / w_msk:9.1f} "
            f"{1 / (w_img + w_msk):9.1f}"
        )
        print(
            f"  {'baseline     patches/s per core':34s} {1 / b_img:9.1f} {1 / b_msk:9.1f} "
            f"{1 / (b_img + b_msk):9.1f}"
        )
        print(
            f"  {'whole work   ms per patch':34s} {1000 * w_img:9.1f} {1000 * w_msk:9.1f} "
            f"{1000 * (w_img + w_msk):9.1f}"
        )
        print(
            f"  {'baseline     ms per patch':34s} {1000 * b_img:9.1f} {1000 * b_msk:9.1f} "
            f"{1000 * (b_img + b_msk):9.1f}"
        )
        print(
            f"  {'ratio whole / baseline':34s} {w_img / b_img:8.2f}x {w_msk / b_msk:8.2f}x "
            f"{(w_img + w_msk) / (b_img + b_msk):8.2f}x"
        )
        if t.skipped:
            print(f"  ({t.skipped} patches skipped by the builders; excluded from the baseline)")

        total = sum(t.steps.values()) + sum(t.setup.values())
        print()
        print(f"where the time goes (instrumented loop, same core functions, {total:.1f} s):")
        print(f"  {'step':34s} {'total s':>8s} {'ms/patch':>9s} {'share':>6s}")
        for name, s in [*t.steps.items(), *(("setup: " + k, v) for k, v in t.setup.items())]:
            print(f"  {name:34s} {s:8.2f} {1000 * s / n:9.2f} {100 * s / total:5.1f}%")

        largest = max(sizes, key=lambda d: sizes[d])
        ctx = mp.get_context("spawn")
        with ctx.Pool(1) as pool:
            phases = pool.apply(
                domain_peak,
                kwds={
                    "raw_root": str(raw_root),
                    "domain": largest,
                    "patch_size": cfg.patch_size,
                    "out": str(tmp / "mem"),
                },
            )
        shutil.rmtree(tmp / "mem", ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dom_peak = phases["after MSK"]

    print()
    print(
        f"peak memory of building {largest} ({phases['patches']:.0f} patches) in a fresh process "
        f"(VmHWM): " + ", ".join(f"{k} {v:.0f} MB" for k, v in phases.items() if k != "patches")
    )
    print(
        f"peak memory of this whole run (ru_maxrss{', includes world generation' if args.raw is None else ''}): "
        f"{peak_mb:.0f} MB"
    )
    print()
    ratio = (w_img + w_msk) / (b_img + b_msk)
    per_core = 1 / (w_img + w_msk)
    print(
        f"target whole / baseline <= {TARGET_RATIO:.0f}x:       {ratio:6.2f}x   {verdict(ratio <= TARGET_RATIO)}"
    )
    print(
        f"target >= {TARGET_RATE:.0f} patches/s per core:  {per_core:6.1f}/s   "
        f"{verdict(per_core >= TARGET_RATE)}"
        + (
            ""
            if cfg.patch_size == 512
            else f" (target is for 512 px; measured at {cfg.patch_size})"
        )
    )
    print(
        f"target peak per domain < {TARGET_PEAK_MB / 1024:.0f} GB:    {dom_peak:6.0f} MB   "
        f"{verdict(dom_peak < TARGET_PEAK_MB)}"
    )


if __name__ == "__main__":
    main()
