"""The areas of one domain written in parallel (dataset/area_groups.py): 2 local processes
and a real Dask cluster of 2 worker processes write the serial build's bytes, areas and ids."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from flair_pipeline.config import config_from_dict
from flair_pipeline.dataset.area_groups import area_groups
from flair_pipeline.dataset.build import build_domain_patches
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.patch_writers import build_label_masks
from flair_pipeline.dataset.sampling import read_patch_grid
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.synthetic.world import WorldSummary

DOMAIN = "D033_2021"
#: 3 x 3 areas of 3 x 3 cells of 64 px on the tiny domain (8 x 8 cells); 4 areas chosen
#: the patches of the 4 areas chosen with seed 0 (read from the serial build's grid)
PATCHES = 30
SAMPLING = {"patch_size": 64, "zone_size_m": 40, "area_strategy": "random", "areas_per_domain": 4}


def _ctx(world: WorldSummary, root: Path, workers: int) -> DomainContext:
    cfg = config_from_dict({"sampling": SAMPLING, "dataset": {"area_workers": workers}})
    return DomainContext.open(DOMAIN, RawLayout(world.out), DatasetLayout(root), cfg)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for kind in ("aerial", "labels")
        for p in sorted((root / kind / DOMAIN).rglob("*.tif"))
    }


def _areas(root: Path) -> dict[str, list[str]]:
    """Patch ids by zone (area), read back from the grid file."""
    grid = read_patch_grid(DatasetLayout(root).patch_grid(DOMAIN))
    return {z: sorted(g["patch_id"].astype(str)) for z, g in grid.groupby("zone")}


@pytest.fixture(scope="module")
def serial(tiny_world: WorldSummary, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serial")
    report = build_domain_patches(_ctx(tiny_world, root, 1))
    assert report.images.written == report.grid.patches
    return root


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A LocalCluster of 2 single-threaded worker processes; yields the scheduler address."""
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as lc:
        yield lc.scheduler_address


def _check_same(serial: Path, root: Path) -> None:
    areas = _areas(serial)
    # several areas chosen, fewer than the 9 valid ones (edge areas: 3 x 2 or 2 x 2 cells)
    assert len(areas) == 4 and sum(len(ids) for ids in areas.values()) == PATCHES
    assert _areas(root) == areas  # the same areas, the same patch ids in each
    want, got = _files(serial), _files(root)
    assert len(want) == 2 * PATCHES  # IMG and MSK of every patch, nothing else
    assert got.keys() == want.keys()
    assert got == want  # every IMG and MSK byte


def test_two_processes_write_the_serial_builds_bytes(
    tiny_world: WorldSummary, serial: Path, tmp_path: Path
) -> None:
    report = build_domain_patches(_ctx(tiny_world, tmp_path, 2))
    assert report.images.written == report.masks.written == PATCHES
    assert not report.images.skipped and not report.masks.skipped
    _check_same(serial, tmp_path)


def test_dask_tasks_on_two_workers_write_the_serial_builds_bytes(
    tiny_world: WorldSummary, serial: Path, tmp_path: Path, cluster: str
) -> None:
    from dask.distributed import Client, get_task_stream

    with Client(cluster) as client, get_task_stream(client) as stream:
        report = build_domain_patches(_ctx(tiny_world, tmp_path, 2))
        workers = set(client.scheduler_info()["workers"])
    assert report.images.written == report.masks.written == PATCHES
    tasks = [t for t in stream.data if str(t["key"]).startswith(DOMAIN)]
    # one Dask task per area group, IMG and MSK, on the cluster's workers
    assert len(tasks) == 4 and {t["worker"] for t in tasks} <= workers
    _check_same(serial, tmp_path)


def test_groups_hold_whole_areas_each_once() -> None:
    zones = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] * 1
    grid = gpd.GeoDataFrame(
        {"zone": zones, "patch_id": [str(i) for i in range(12)]},
        geometry=[shapely.box(i, 0, i + 1, 1) for i in range(12)],
    )
    groups = area_groups(grid, 2)
    # a by hand: a (5) to group 0, b (3) to 1, c (3) to 1 (3 < 5), d (1) to 0 (5 < 6)
    assert [sorted(set(g["zone"])) for g in groups] == [["a", "d"], ["b", "c"]]
    assert sorted(i for g in groups for i in g["patch_id"]) == sorted(grid["patch_id"])
    assert [len(g) for g in area_groups(grid, 1)] == [12]


def test_a_bad_patch_in_one_worker_is_skipped_not_the_domain(
    tiny_world: WorldSummary, serial: Path, tmp_path: Path
) -> None:
    """A hole in the labels under one patch: 2 processes write every other MSK and name it."""
    ctx = _ctx(tiny_world, serial, 1)
    grid = read_patch_grid(DatasetLayout(serial).patch_grid(DOMAIN))
    bad = grid.iloc[len(grid) // 2]
    labels = ctx.labels.copy()
    labels["geometry"] = labels.geometry.difference(bad.geometry)  # nothing under that patch
    report = build_label_masks(
        grid,
        ctx.inputs.labels,
        DatasetLayout(tmp_path),
        64,
        0.2,
        max_unlabelled=0.05,
        labels=labels,
        workers=2,
    )
    assert report.written == len(grid) - 1
    assert [p for p, _ in report.skipped] == [str(bad.patch_id)]
    assert "100.00 % of patch" in report.skipped[0][1]
    written = {p.name for p in (tmp_path / "labels" / DOMAIN).rglob("MSK_*.tif")}
    assert written == {f"MSK_{p}.tif" for p in grid["patch_id"] if p != bad.patch_id}
    for p in written:  # the others are the serial build's bytes
        (want,) = (serial / "labels" / DOMAIN).rglob(p)
        (got,) = (tmp_path / "labels" / DOMAIN).rglob(p)
        assert got.read_bytes() == want.read_bytes()


def _gdal_cachemax(_: gpd.GeoDataFrame) -> str | None:
    """What a worker's GDAL reads for its block cache (its environment)."""
    import os

    return os.environ.get("GDAL_CACHEMAX")


@pytest.mark.parametrize(("given", "seen"), [(None, "256"), ("64", "64")])
def test_local_workers_bound_gdals_block_cache_unless_set(
    given: str | None, seen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GDAL's default cache is 5 % of RAM per process: each local area worker is bounded to
    256 MB, a user's GDAL_CACHEMAX wins. Planted: no initializer (the worker sees None)."""
    from flair_pipeline.dataset.area_groups import run_area_groups

    if given is None:
        monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    else:
        monkeypatch.setenv("GDAL_CACHEMAX", given)
    groups = [gpd.GeoDataFrame({"zone": [z]}, geometry=[shapely.box(0, 0, 1, 1)]) for z in "ab"]
    assert run_area_groups(_gdal_cachemax, groups, 2) == [seen, seen]
