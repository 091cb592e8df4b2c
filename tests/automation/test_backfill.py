"""Backfills of the per-domain assets: the policy, and what a backfill launches.

The backfill goes through Dagster's own machinery (``bench/backfill.py``'s ``backfill``: a
``PartitionBackfill`` added to a real instance, the backfill daemon's iteration, the default
run launcher starting a process per run) on domains of the tiny synthetic world.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from flair_pipeline.definitions import ALL_ASSETS
from flair_pipeline.orchestration.instance import prepare_home
from flair_pipeline.synthetic.world import WorldSummary
from tests.conftest import REPO

BENCH = REPO / "bench"


def _bench_backfill():
    spec = importlib.util.spec_from_file_location("bench_backfill", BENCH / "backfill.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_per_domain_asset_backfills_one_domain_per_run() -> None:
    partitioned = {
        a.key.to_user_string(): a.backfill_policy for a in ALL_ASSETS if a.partitions_def
    }
    assert set(partitioned) >= {
        "domain_sources",
        "patch_grid",
        "aerial_patches",
        "label_masks",
        "dataset_metadata",
        "sentinel2_series",
        "sentinel1_series",
    }
    one = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
    assert partitioned == dict.fromkeys(partitioned, one)
    for a in ALL_ASSETS:  # the all-domain assets have no partitions to split
        if a.partitions_def is None:
            assert a.backfill_policy is None, a.key


@pytest.mark.slow
def test_backfill_builds_each_domain_in_its_own_run(
    tiny_world: WorldSummary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._core.workspace.load_target import ModuleTarget

    raw = tmp_path / "raw"
    for d in ("D033_2021", "D036_2020", "D004_2021"):
        shutil.copytree(tiny_world.out / "domains" / d, raw / "domains" / d)
    (raw / "domains" / "D004_2021" / "labels.gpkg").unlink()  # a bad domain among good ones
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"paths": {"raw": str(raw), "dataset": str(tmp_path / "ds")}}))
    home = prepare_home(tmp_path / "home")  # the generated dagster.yaml: a run queue
    monkeypatch.setenv("FLAIR_PARAMS", str(params))  # the code server and run workers read it
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    target = ModuleTarget("flair_pipeline.definitions", "defs", str(REPO), "flair")
    bench = _bench_backfill()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        out = bench.backfill(
            instance=instance, target=target, domains=["D033_2021", "D036_2020", "D004_2021"]
        )
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": out.backfill_id}))
        # a run under a BackfillPolicy names its partitions as a range, here of one domain
        # (no dagster/partition tag: see docs/operations.md#backfills-issue-26)
        ranges = [
            (
                r.tags["dagster/asset_partition_range_start"],
                r.tags["dagster/asset_partition_range_end"],
            )
            for r in runs
        ]
        assert all(start == end for start, end in ranges), ranges
        by_domain = {start: r.status for (start, _), r in zip(ranges, runs, strict=True)}
        for asset in bench.ASSETS:
            done = instance.get_materialized_partitions(dg.AssetKey(asset))
            assert done == {"D033_2021", "D036_2020"}, asset
    # one run per domain, each with the whole chain domain_sources -> dataset_metadata
    assert out.runs == 3
    assert by_domain == {
        "D033_2021": dg.DagsterRunStatus.SUCCESS,
        "D036_2020": dg.DagsterRunStatus.SUCCESS,
        "D004_2021": dg.DagsterRunStatus.FAILURE,  # the bad domain fails alone
    }
    assert out.materialized == ["D033_2021", "D036_2020"]
    for d in ("D033_2021", "D036_2020"):  # their files exist, independently of Dagster's record
        assert list((tmp_path / "ds").rglob(f"*{d}*")), d
