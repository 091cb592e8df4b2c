"""The areas of one domain written in parallel: groups of areas on processes or Dask tasks.

A domain's patches lie in its areas (``zone``: one area, :mod:`~flair_pipeline.dataset.areas`).
Their IMG and MSK are independent, so the writers split the patch grid into
``dataset.area_workers`` groups of whole areas (balanced by patch count, in grid order) and
run one task per group, each writing into the same staging folder of the domain's new
generation (:mod:`~flair_pipeline.dataset.generation`; the parent holds it and swaps it in
once every group is done). Where the groups run:

- on the Dask cluster when there is one: inside a Dask worker (the Dagster step runs there
  on the Dask executor, :mod:`flair_pipeline.orchestration.dask_executor`) the step secedes
  from the worker's thread pool and submits one Dask task per group through
  ``distributed.worker_client``; in a process that holds a Dask ``Client`` (the default
  client), through it;
- else on local processes (``spawn``: no GDAL handle or thread is inherited). Each
  process bounds GDAL's block cache to :data:`WORKER_GDAL_CACHEMAX_MB` unless the
  environment sets ``GDAL_CACHEMAX``: GDAL's default is 5 % of the machine's RAM *per
  process*, so two workers and the build process held 4.1 GB on a 24 GB machine
  (docs/performance.md, département run (a)); bounded, the tree of a département's build
  stays under 2 GB at 1,521 and 6,084 km².

With one worker (the default) or one group, the groups run here, one after another: the
serial build. Each file depends on its patch only, so every byte is the same whichever
way (tests/dataset/test_area_groups.py).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

import geopandas as gpd

R = TypeVar("R")

#: GDAL's block cache of a local area worker, MB, when ``GDAL_CACHEMAX`` is not set: about
#: 85 decoded 1024 px RGB JPEG 2000 tiles, three dalles' worth (docs/performance.md).
WORKER_GDAL_CACHEMAX_MB = 256


def _bound_gdal_cache() -> None:
    """A local area worker's initializer: ``GDAL_CACHEMAX`` defaults to the bound (module doc)."""
    os.environ.setdefault("GDAL_CACHEMAX", str(WORKER_GDAL_CACHEMAX_MB))


def area_groups(grid: gpd.GeoDataFrame, workers: int) -> list[gpd.GeoDataFrame]:
    """Split `grid` into at most `workers` groups of whole areas, balanced by patch count.

    Areas (the ``zone`` column) are taken in order of first appearance in the grid and
    dealt greedily to the group with the fewest patches so far; each group keeps the
    grid's row order.

    Args:
        grid: A domain's patch grid (``zone`` column).
        workers: The number of groups wanted (at least 1).

    Returns:
        The non-empty groups (one, the whole grid, for ``workers <= 1`` or one area).
    """
    zones = list(dict.fromkeys(grid["zone"].tolist())) if len(grid) else []
    if workers <= 1 or len(zones) <= 1:
        return [grid]
    sizes = grid["zone"].value_counts()
    loads = [0] * min(workers, len(zones))
    owner: dict[str, int] = {}
    for z in sorted(zones, key=lambda z: -int(sizes[z])):  # largest first, stable
        g = loads.index(min(loads))
        owner[z] = g
        loads[g] += int(sizes[z])
    which = grid["zone"].map(owner)
    return [grid[which == g] for g in range(len(loads)) if (which == g).any()]


def _dask_client() -> tuple[Any, bool] | None:
    """The Dask client to submit to, and whether it is a worker's (to secede); None: no Dask.

    Returns:
        ``(client, True)`` inside a Dask worker task, ``(client, False)`` with a default
        client in this process, or None.
    """
    try:
        import distributed
    except ImportError:  # Dask is optional for a local build
        return None
    try:
        distributed.get_worker()
        return distributed.worker_client, True
    except ValueError:
        pass
    try:
        return distributed.default_client(), False
    except ValueError:
        return None


def run_area_groups(
    work: Callable[[gpd.GeoDataFrame], R],
    groups: Sequence[gpd.GeoDataFrame],
    workers: int,
    label: str = "areas",
) -> list[R]:
    """Run `work` on each group: here, on local processes or as Dask tasks (module doc).

    Args:
        work: A picklable (module-level) function of one group.
        groups: From :func:`area_groups`.
        workers: ``dataset.area_workers``: 1 runs the groups here, in order.
        label: The Dask task names' prefix (e.g. ``D006_2020-IMG``).

    Returns:
        `work`'s results, in the order of `groups`.
    """
    if workers <= 1 or len(groups) <= 1:
        return [work(g) for g in groups]
    dask = _dask_client()
    if dask is not None:
        client, in_worker = dask
        run = secrets.token_hex(4)  # unique keys: a rebuild never reuses a finished task
        keys = [f"{label}-{run}-group{i}" for i in range(len(groups))]
        pairs = list(zip(groups, keys, strict=True))
        if in_worker:  # this thread leaves the worker's pool while the groups run
            with client() as c:
                return list(c.gather([c.submit(work, g, key=k, pure=False) for g, k in pairs]))
        return list(client.gather([client.submit(work, g, key=k, pure=False) for g, k in pairs]))
    with ProcessPoolExecutor(
        max_workers=min(workers, len(groups)),
        mp_context=mp.get_context("spawn"),
        initializer=_bound_gdal_cache,
    ) as pool:
        return list(pool.map(work, groups))
