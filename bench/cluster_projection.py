"""Benchmark: France on a Dask cluster, projected from measured costs and checked (issue 27).

1. Measures, on one synthetic domain built step by step in this process, the cost of each
   step (CPU and wall seconds, bytes read and written from ``/proc/self/io``): the sources
   record and metadata (per domain), the patch grid (per area) and IMG + MSK (per patch).
2. Measures the orchestration cost of one domain run on Dask (the same domain as a Dagster
   run on a 1-worker ``LocalCluster``, minus the plain build's wall time).
3. Projects, for N Dask workers, the wall time of D domains of A areas at FLAIR's density
   (77,762 patches / 916 areas = 85 patches of 512 px an area), bytes read and written and
   the cost per area::

       wall(N) = max((D * (overhead + fixed) + A * area) / N,  overhead + fixed + area)

   the second term: one domain's runs cannot be shorter than one area (with
   ``dataset.area_workers``, a domain's areas spread over the workers).
4. Checks it: a real Dask run of ``--check-domains`` domains on 2 local workers, its wall time
   against the projection of that setup (the domains' own patch and area counts).

Sentinel-2 super-areas are not measured here (a separate job; bench/sentinel2.py).
Figures are printed, never asserted; the machine may be shared (say so with the figures).

    .venv/bin/python bench/cluster_projection.py                      # demo world, 512 px
    .venv/bin/python bench/cluster_projection.py --scenario tiny --patch-size 64 --check-domains 0
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from dask_scaling import _params, on_dask
from timing import timed

from flair_pipeline.dataset.build import (
    build_domain_images,
    build_domain_masks,
    record_domain_sources,
    sample_domain_grid,
    write_domain_metadata,
)
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.project import Project
from flair_pipeline.synthetic.world import generate_world

#: FLAIR-2: 50 domains, 916 areas, 77,762 patches; France: 96 départements at its density
FLAIR_PATCHES_PER_AREA = 77_762 / 916
SETUPS = {"FLAIR-2 (50 domains)": (50, 916), "France (96 départements)": (96, 96 * 18)}
WORKERS = (2, 8, 32, 128)


def _io() -> tuple[int, int]:
    """Bytes this process has read and written so far (``rchar``, ``wchar``)."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["rchar"]), int(fields["wchar"])


@dataclass
class Step:
    """One step's measured cost."""

    cpu_s: float
    wall_s: float
    read: int
    written: int


def _measure(fn: Callable[[], Any]) -> tuple[Step, Any]:
    r0, w0 = _io()
    with timed() as t:
        out = fn()
    r1, w1 = _io()
    return Step(cpu_s=t.cpu_s, wall_s=t.wall_s, read=r1 - r0, written=w1 - w0), out


def _values(s: Step) -> tuple[float, float, int, int]:
    return (s.cpu_s, s.wall_s, s.read, s.written)


def _per(s: Step, n: int) -> Step:
    """`s` shared by `n` items."""
    return Step(cpu_s=s.cpu_s / n, wall_s=s.wall_s / n, read=s.read // n, written=s.written // n)


@dataclass
class Costs:
    """Per-domain, per-area and per-patch costs (wall seconds, bytes)."""

    overhead_s: float  # a domain's run on Dask beyond its steps' own work
    fixed: Step  # sources record + metadata, per domain
    per_area: Step  # the patch grid, per area
    per_patch: Step  # IMG + MSK, per patch

    def area(self, patches: float) -> Step:
        """One area of `patches` patches: its grid share and its patches.

        Returns:
            The area's cost.
        """
        a, p = self.per_area, self.per_patch
        return Step(
            cpu_s=a.cpu_s + patches * p.cpu_s,
            wall_s=a.wall_s + patches * p.wall_s,
            read=int(a.read + patches * p.read),
            written=int(a.written + patches * p.written),
        )

    def wall(self, *, domains: int, areas: int, patches: float, workers: int) -> float:
        """Projected wall seconds of `domains` domains, `areas` areas of `patches` patches.

        Returns:
            The module doc's ``wall(N)``.
        """
        one = self.area(patches).wall_s
        per_domain = self.overhead_s + self.fixed.wall_s
        return max((domains * per_domain + areas * one) / workers, per_domain + one)


def measure_domain(raw: Path, params: Path, domain: str) -> tuple[Costs, int, int]:
    """Build `domain` step by step here; its per-area and per-patch costs.

    Returns:
        The costs (``overhead_s`` still 0), the domain's areas and patches.
    """
    project = Project.load(params)
    ctx = DomainContext.open(
        domain=domain, raw=project.raw, dataset=project.dataset, cfg=project.config
    )
    src, _ = _measure(lambda: record_domain_sources(ctx))
    grid_step, grid = _measure(lambda: sample_domain_grid(ctx))
    img, _ = _measure(lambda: build_domain_images(ctx))
    msk, _ = _measure(lambda: build_domain_masks(ctx))
    meta, _ = _measure(lambda: write_domain_metadata(ctx))
    areas, patches = grid.zones, grid.patches
    steps = (src.cpu_s + meta.cpu_s, src.wall_s + meta.wall_s, src.read + meta.read,
             src.written + meta.written)  # fmt: skip
    costs = Costs(
        overhead_s=0.0,
        fixed=Step(*steps),
        per_area=_per(grid_step, areas),
        per_patch=_per(
            Step(*(x + y for x, y in zip(_values(img), _values(msk), strict=True))), patches
        ),
    )
    del raw
    return costs, areas, patches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", type=Path, default=None, help="existing raw root (default: generate)")
    ap.add_argument("--scenario", default="demo", help="synthetic world when --raw is not given")
    ap.add_argument("--patch-size", type=int, default=512)
    ap.add_argument("--check-domains", type=int, default=4, help="0: no Dask check")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cluster-projection-"))
    raw = args.raw
    if raw is None:
        raw = tmp / "raw"
        t = time.perf_counter()
        generate_world(raw, args.scenario, 0)
        print(f"generated {args.scenario!r} world in {time.perf_counter() - t:.1f} s")
    domains = sorted(p.name for p in (raw / "domains").iterdir() if p.is_dir())
    first = domains[0]
    costs, areas, patches = measure_domain(raw, _params(tmp / "plain", raw, args.patch_size), first)
    plain_wall = (
        costs.fixed.wall_s + areas * costs.per_area.wall_s + patches * costs.per_patch.wall_s
    )
    print(f"measured on {first}: {areas} area(s), {patches} patches of {args.patch_size} px")
    for name, s in (("domain (sources, metadata)", costs.fixed), ("area (grid)", costs.per_area),
                    ("patch (IMG + MSK)", costs.per_patch)):  # fmt: skip
        print(f"  per {name:<27}{s.wall_s:>9.4f} s wall{s.cpu_s:>9.4f} s CPU"
              f"{s.read / 1e6:>10.2f} MB read{s.written / 1e6:>8.2f} MB written")  # fmt: skip
    (tmp / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp / "home")) as instance:
        instance.add_dynamic_partitions("domains", domains)
        if args.check_domains:  # else no Dask run: the orchestration cost is left at 0
            one = on_dask(
                instance=instance,
                params=_params(tmp / "dask_1", raw, args.patch_size),
                domains=[first],
                workers=1,
            )
            costs.overhead_s = max(one - plain_wall, 0.0)
            print(
                f"one domain on 1 Dask worker: {one:.1f} s; orchestration {costs.overhead_s:.1f} s"
            )
        per_area = costs.area(FLAIR_PATCHES_PER_AREA)
        print(
            f"FLAIR area ({FLAIR_PATCHES_PER_AREA:.0f} patches): {per_area.wall_s:.1f} s wall, "
            f"{per_area.cpu_s:.1f} s CPU, {per_area.read / 1e6:.0f} MB read, "
            f"{per_area.written / 1e6:.0f} MB written"
        )
        print(f"{'projection':<26}{'workers':>8}{'wall h':>9}{'read GB':>9}{'written GB':>11}"
              f"{'s/area':>8}")  # fmt: skip
        for setup, (d, a) in SETUPS.items():
            read = (d * costs.fixed.read + a * per_area.read) / 1e9
            written = (d * costs.fixed.written + a * per_area.written) / 1e9
            for n in WORKERS:
                w = costs.wall(domains=d, areas=a, patches=FLAIR_PATCHES_PER_AREA, workers=n)
                print(f"{setup:<26}{n:>8}{w / 3600:>9.3f}{read:>9.1f}{written:>11.1f}"
                      f"{n * w / a:>8.1f}")  # fmt: skip
        if args.check_domains:
            check = domains[: args.check_domains]
            want = costs.wall(
                domains=len(check), areas=len(check) * areas, patches=patches / areas, workers=2
            )
            got = on_dask(
                instance=instance,
                params=_params(tmp / "dask_2", raw, args.patch_size),
                domains=check,
                workers=2,
            )
            print(
                f"check: {len(check)} domains on 2 Dask workers: measured {got:.1f} s, "
                f"projected {want:.1f} s, measured/projected {got / want:.2f}"
            )
    print(f"(files under {tmp})")


if __name__ == "__main__":
    main()
