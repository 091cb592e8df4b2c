"""The dataset assets, unchanged, on a real Dask cluster (2 worker processes on loopback)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.orchestration.executors import run_domain_on_dask
from flair_pipeline.synthetic.world import WorldSummary

from .helpers import build_in_process, rasters, write_params


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A LocalCluster of 2 single-threaded worker processes; yields the scheduler address."""
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as lc:
        yield lc.scheduler_address


def test_domains_on_dask_equal_in_process_build(
    cluster: str, tiny_world: WorldSummary, tmp_path: Path
) -> None:
    from dask.distributed import Client, get_task_stream

    domains = sorted(d.domain for d in tiny_world.domains)[:2]  # two runs share the cluster
    # 9 areas (3 x 3 patches, fewer at the edges) a domain; on Dask, the IMG and MSK steps
    # write them in 2 groups, one Dask task each, submitted from the step's worker
    # (dataset/area_groups.py)
    areas = {"sampling": {"zone_size_m": 40}}
    on_dask = write_params(
        tmp_path / "dask", str(tiny_world.out), "dataset", {**areas, "dataset": {"area_workers": 2}}
    )
    reference = write_params(tmp_path / "local", str(tiny_world.out), "dataset", areas)
    (tmp_path / "home").mkdir()
    with (
        dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance,
        Client(cluster) as watcher,
        get_task_stream(watcher) as stream,
    ):
        assert instance.is_persistent  # Dask workers write their events to it
        dask_runs: list[str] = []
        for d in domains:
            result = run_domain_on_dask(instance, d, cluster, str(on_dask))
            assert result.success, d
            dask_runs.append(result.run_id)
            run = instance.get_run_by_id(result.run_id)
            assert run.tags["dagster/partition"] == d
        build_in_process(
            PipelineConfigResource(config_path=str(reference)), instance, domains, split=False
        )
        # every step ran in one of the Dask worker processes, none in this one
        with Client(cluster) as client:
            workers = set(client.run(os.getpid).values())
        pids = {
            e.dagster_event.pid
            for r in dask_runs
            for e in instance.all_logs(r, of_type=dg.DagsterEventType.STEP_SUCCESS)
        }
        assert len(pids) >= 1 and pids <= workers and os.getpid() not in pids
        mat = instance.get_latest_materialization_event(dg.AssetKey("aerial_patches"))
        assert mat.asset_materialization.partition in domains
    groups = sorted(
        str(t["key"]).rsplit("-", 2)[0]
        for t in stream.data
        if str(t["key"]).startswith(tuple(domains))
    )
    assert groups == sorted(f"{d}-{k}" for d in domains for k in ("IMG", "MSK") for _ in "ab")

    got, want = rasters(tmp_path / "dask" / "dataset"), rasters(tmp_path / "local" / "dataset")
    assert len(want) == 2 * 3 * (512 // 64) ** 2  # IMG, MSK and CROP (RPG crop labels)
    assert got.keys() == want.keys()
    assert got == want  # byte-identical IMG, MSK and CROP GeoTIFFs
