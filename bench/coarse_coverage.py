"""Benchmark: candidates' coverage read at 1/16 vs full resolution (issue 27 item 2).

On a ``departement`` world (:mod:`flair_pipeline.synthetic.departement`: IGN-named JPEG
2000 dalles through one VRT per product), each in a fresh spawned process (no decoded
block shared through GDAL's cache):

1. per cell: ``--cells`` random lattice cells read by ``Mosaic.read_products`` (full
   resolution, the ``full`` mode's read) and other ``--cells`` by ``Mosaic.read_coverage``
   at 1/``--decimation`` (the ``overview`` mode's), ms a cell and the ratio;
2. ``sample_domain_grid`` (areas first, ``--areas`` areas of ``--zone`` m; the label
   scoring inside it is the same in both modes) with
   ``sampling.coverage_read`` full, then overview: seconds, cells read at full
   resolution, the ratio, and whether both grids keep the same patch ids;
3. the IMG step's exact check (``coarse_coverage.exact_check``) on ``--cells`` kept
   patches: its seconds against the patch read it follows (``Mosaic.read``).

Figures on this 2-core machine are under contention; every ratio is between figures of the
same run.

    .venv/bin/flair-pipeline synth --scenario departement --scale 0.002 --out /tmp/dept
    .venv/bin/python bench/coarse_coverage.py --raw /tmp/dept --areas 4 --cells 20
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


def _config(*, mode: str, zone: float, areas: int, decimation: int) -> Any:
    from flair_pipeline.config import config_from_dict

    return config_from_dict(
        {
            "sampling": {
                "zone_size_m": zone,
                "areas_per_domain": areas,
                "coverage_read": mode,
                "coverage_decimation": decimation,
            }
        }
    )


def _per_cell(raw: str, *, cells: int, decimation: int, q: Any) -> None:
    """Full and coarse reads of disjoint random cells, ms each; the dalle's levels."""
    import rasterio

    from flair_pipeline.dataset.areas import PatchLattice
    from flair_pipeline.dataset.mosaic import Mosaic, mosaic_options
    from flair_pipeline.sources.domain_spec import resolve

    cfg = _config(mode="full", zone=700.0, areas=1, decimation=decimation)
    inputs = resolve(Path(raw) / "domains" / DOMAIN)
    res: dict[str, Any] = {}
    with Mosaic(inputs.ortho, **mosaic_options(cfg.sampling)) as mosaic:
        tile = mosaic.vrt.product_tiles[next(iter(mosaic.vrt.product_tiles))][0]
        with rasterio.open(tile.path) as src:
            res["levels"] = src.overviews(1)
            res["dalle"] = f"{tile.path.name} ({src.driver}, {src.width} px)"
        lattice = PatchLattice.of(mosaic, cfg.sampling)
        pick = np.random.default_rng(0).permutation(len(lattice.boxes))[: 2 * cells]
        boxes = [tuple(lattice.boxes[i].bounds) for i in pick.tolist()]
        t0 = time.perf_counter()
        for b in boxes[:cells]:
            mosaic.read_products(b)
        res["full_ms"] = (time.perf_counter() - t0) / max(cells, 1) * 1000
        t0 = time.perf_counter()
        for b in boxes[cells:]:
            mosaic.read_coverage(b, decimation)
        res["coarse_ms"] = (time.perf_counter() - t0) / max(len(boxes) - cells, 1) * 1000
    q.put(res)


def _grid(raw: str, out: str, *, mode: str, opts: dict[str, Any], q: Any) -> None:
    """``sample_domain_grid`` in `mode`; seconds, counts, patch ids, exact-check cost."""
    from flair_pipeline.dataset.coarse_coverage import exact_check
    from flair_pipeline.dataset.domain_context import DomainContext
    from flair_pipeline.dataset.domain_steps import sample_domain_grid
    from flair_pipeline.dataset.mosaic import Mosaic, mosaic_options
    from flair_pipeline.layout import DatasetLayout, RawLayout

    cfg = _config(mode=mode, zone=opts["zone"], areas=opts["areas"], decimation=opts["decimation"])
    ctx = DomainContext.open(
        DOMAIN, raw=RawLayout(Path(raw)), dataset=DatasetLayout(Path(out)), cfg=cfg
    )
    t0 = time.perf_counter()
    report = sample_domain_grid(ctx)
    res: dict[str, Any] = {"grid_s": time.perf_counter() - t0}
    res.update(
        patches=report.patches,
        candidates=report.candidates,
        read=report.candidates_read,
        coarse=report.candidates_coarse,
        mode=report.coverage_read,
        ids=sorted(ctx.grid["patch_id"].tolist()),
    )
    if mode == "overview":  # the IMG step's exact check against the read it follows
        read_s = check_s = 0.0
        with Mosaic(ctx.inputs.ortho, **mosaic_options(cfg.sampling)) as mosaic:
            for row in ctx.grid.head(opts["cells"]).itertuples():
                t0 = time.perf_counter()
                _, valid = mosaic.read(tuple(row.geometry.bounds))
                t1 = time.perf_counter()
                exact_check(
                    valid,
                    tolerance=0.05,
                    estimate=row.valid_fraction,
                    decimation=int(row.coverage_decimation),
                )
                read_s, check_s = read_s + t1 - t0, check_s + time.perf_counter() - t1
        res["read_s"], res["check_s"] = read_s, check_s
    q.put(res)


def _spawn(target: Any, *args: Any, **kw: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q: Any = ctx.Queue()
    proc = ctx.Process(target=target, args=args, kwargs={**kw, "q": q})
    proc.start()
    res: dict[str, Any] = q.get()
    proc.join()
    return res


def main() -> None:
    """Run the three measurements on `--raw`'s world and print them with their ratios."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--raw", type=Path, required=True, help="a departement world's raw root")
    p.add_argument("--cells", type=int, default=20, help="cells timed per kind of read")
    p.add_argument("--decimation", type=int, default=16)
    p.add_argument("--zone", type=float, default=972.8, help="area side, m (9 x 9 patches)")
    p.add_argument("--areas", type=int, default=19, help="areas a domain")
    a = p.parse_args()

    cell = _spawn(_per_cell, str(a.raw), cells=a.cells, decimation=a.decimation)
    print(f"dalle {cell['dalle']}: resolution levels (GDAL overviews) {cell['levels']}")
    print(
        f"per cell: full read {cell['full_ms']:.1f} ms, 1/{a.decimation} read "
        f"{cell['coarse_ms']:.1f} ms ({a.cells} cells each) -> full/coarse = "
        f"{cell['full_ms'] / cell['coarse_ms']:.1f}x"
    )
    opts = {"zone": a.zone, "areas": a.areas, "decimation": a.decimation, "cells": a.cells}
    runs = {}
    for mode in ("full", "overview"):
        out = tempfile.mkdtemp(prefix=f"coarse-{mode}-")
        runs[mode] = r = _spawn(_grid, str(a.raw), out, mode=mode, opts=opts)
        print(
            f"sample_domain_grid {mode}: {r['grid_s']:.1f} s, {r['patches']} patches of "
            f"{r['candidates']} laid, {r['read']} read at full resolution, {r['coarse']} "
            "decided coarse"
        )
    full, over = runs["full"], runs["overview"]
    print(
        f"grid full/overview = {full['grid_s'] / over['grid_s']:.1f}x; same patch ids: "
        f"{'yes' if full['ids'] == over['ids'] else 'NO'}"
    )
    print(
        f"IMG exact check: {over['check_s'] * 1000:.2f} ms over {a.cells} patches vs "
        f"{over['read_s'] * 1000:.0f} ms of their reads = "
        f"{100 * over['check_s'] / max(over['read_s'], 1e-9):.3f} % extra"
    )
    print("2 shared cores: figures under contention, ratios within one run")


if __name__ == "__main__":
    main()
