"""A run whose worker and code server are SIGKILLed is failed by run monitoring and
relaunched by run retries, and the domain ends built (issue 15: "the killed Dagster run
stays STARTED forever").

The daemons' iteration functions are called directly, as Dagster's own daemon tests do
(run monitoring, the run-retry consumer, the run queue), on the instance configured by
the project's generated dagster.yaml; the code servers and run workers are real
processes (``dagster api grpc`` started by the workspace, and its run worker children).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import psutil
import rasterio
import yaml
from dagster import DagsterEventType
from dagster._core.events import EngineEventData
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, RETRY_NUMBER_TAG
from dagster._core.test_utils import create_run_for_test
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import (
    consume_new_runs_for_automatic_reexecution,
)
from dagster._daemon.monitoring.run_monitoring import (
    execute_run_monitoring_iteration,
    monitor_started_run,
)
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from flair_pipeline.defs.partitions import DOMAINS
from flair_pipeline.orchestration.instance import prepare_home
from flair_pipeline.orchestration.launcher import (
    WORKER_HOST_TAG,
    WORKER_PID_TAG,
    FlairRunLauncher,
    in_process_worker_tags,
    process_alive,
    worker_pid,
)
from flair_pipeline.synthetic.world import WorldSummary
from tests.conftest import REPO

DOMAIN = "D033_2021"
LOG = logging.getLogger("test_run_monitoring")


def _workspace(instance: dg.DagsterInstance) -> WorkspaceProcessContext:
    target = ModuleTarget(
        module_name="tests.faults._killed_worker_defs",
        attribute="defs",
        working_directory=str(REPO),
        location_name="killed_worker",
    )
    return WorkspaceProcessContext(instance, target)


def _wait(what: str, cond, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _dequeue(ctx: WorkspaceProcessContext) -> None:
    """One iteration of the run queue daemon (launches QUEUED runs through the launcher)."""
    list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(ctx))


def _submit(instance: dg.DagsterInstance, ctx: WorkspaceProcessContext) -> dg.DagsterRun:
    request = ctx.create_request_context()
    location = request.get_code_location("killed_worker")
    repo = next(iter(location.get_repositories().values()))
    job = repo.get_full_job("build_domain")
    plan = location.get_execution_plan(
        job, {}, step_keys_to_execute=None, known_state=None, instance=instance
    )
    run = instance.create_run(
        job_name=job.name,
        run_id=str(uuid.uuid4()),
        run_config={},
        resolved_op_selection=None,
        step_keys_to_execute=None,
        status=dg.DagsterRunStatus.NOT_STARTED,
        op_selection=None,
        root_run_id=None,
        parent_run_id=None,
        tags={"dagster/partition": DOMAIN},
        job_snapshot=job.job_snapshot,
        execution_plan_snapshot=plan.execution_plan_snapshot,
        parent_job_snapshot=job.parent_job_snapshot,
        remote_job_origin=job.get_remote_origin(),
        job_code_origin=job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repo.asset_graph,
    )
    return instance.submit_run(run.run_id, request)


def test_killed_worker_is_failed_by_monitoring_and_retried(
    tiny_world: WorldSummary, tmp_path: Path, monkeypatch
) -> None:
    raw, ds = tmp_path / "raw", tmp_path / "ds"
    shutil.copytree(tiny_world.out / "domains" / DOMAIN, raw / "domains" / DOMAIN)
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": str(raw), "dataset": str(ds)},
                "sampling": {"patch_size": 64, "max_patches_per_domain": 6},
            }
        )
    )
    mark = tmp_path / "kill-the-first-worker"
    mark.touch()
    monkeypatch.setenv(
        "FLAIR_PARAMS", str(params)
    )  # read by the code servers' PipelineConfigResource
    monkeypatch.setenv("FLAIR_TEST_KILL_MARK", str(mark))
    home = prepare_home(tmp_path / "home")  # the project's generated dagster.yaml
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_launcher, FlairRunLauncher)
        instance.add_dynamic_partitions(DOMAINS, [DOMAIN])
        with _workspace(instance) as ctx:
            first = _submit(instance, ctx)
            assert first.status == dg.DagsterRunStatus.QUEUED
            _dequeue(ctx)
            pid, _ = _wait("the run worker's pid", lambda: worker_pid(instance, first))
            _wait("the run worker's death", lambda: not process_alive(pid, time.time()))
            assert not mark.exists()  # it died at the planted kill, not some other way
        time.sleep(2.0)  # 4 cleanup ticks of a code server, had one survived
        assert instance.get_run_by_id(first.run_id).status == dg.DagsterRunStatus.STARTED
        assert list(ds.glob(f".aerial-{DOMAIN}.*.flairstage"))  # killed mid-aerial_patches

        with _workspace(instance) as ctx:  # the daemon restarted: a fresh code server
            list(execute_run_monitoring_iteration(ctx, LOG))
            failed = instance.get_run_by_id(first.run_id)
            assert failed.status == dg.DagsterRunStatus.FAILURE
            failure = instance.all_logs(first.run_id, of_type=DagsterEventType.RUN_FAILURE)
            assert f"run worker pid {pid} on " in failure[-1].dagster_event.message

            records = instance.get_run_records(dg.RunsFilter(run_ids=[first.run_id]))
            list(consume_new_runs_for_automatic_reexecution(ctx, records, LOG))
            retries = instance.get_runs(dg.RunsFilter(tags={PARENT_RUN_ID_TAG: first.run_id}))
            assert [r.status for r in retries] == [dg.DagsterRunStatus.QUEUED]
            assert retries[0].tags[RETRY_NUMBER_TAG] == "1"
            _dequeue(ctx)
            retry = _wait(
                "the retry to end",
                lambda: (r := instance.get_run_by_id(retries[0].run_id)) and r.is_finished and r,
            )
        assert retry.status == dg.DagsterRunStatus.SUCCESS

        # the partition ends built: every asset materialized for the domain, the three the
        # kill interrupted (or never reached) by the retry, from its failed step on
        for name in (
            "domain_sources",
            "patch_grid",
            "aerial_patches",
            "label_masks",
            "dataset_metadata",
        ):
            event = instance.get_latest_materialization_event(dg.AssetKey(name))
            assert event is not None and event.dagster_event.partition == DOMAIN, name
            expected = first if name in ("domain_sources", "patch_grid") else retry
            assert event.run_id == expected.run_id, name

    imgs = sorted(p.name.removeprefix("IMG_") for p in ds.rglob("IMG_*.tif"))
    msks = sorted(p.name.removeprefix("MSK_") for p in ds.rglob("MSK_*.tif"))
    assert len(imgs) == 6 and imgs == msks, (imgs, msks)  # max_patches_per_domain
    for p in ds.rglob("*.tif"):
        with rasterio.open(p) as src:
            assert src.width == src.height == 64
    hidden = [p.relative_to(ds).as_posix() for p in ds.rglob(".*")]
    assert hidden == [".locks"]  # the killed worker's staging folder is gone (locks are kept)


def test_health_check_tells_a_dead_or_reused_pid_from_a_live_worker() -> None:
    me = psutil.Process()
    assert process_alive(me.pid, time.time())
    assert not process_alive(me.pid, me.create_time() - 60)  # started after: a reused pid
    child = subprocess.Popen(["true"])
    child.wait()
    assert not process_alive(child.pid, time.time())


def test_a_killed_cli_run_is_failed_and_a_live_one_left_running(tmp_path: Path) -> None:
    """In-process (CLI) runs carry their process's pid: a dead one frees its queue slot;
    a dead worker whose step process still runs is left alone until that ends."""
    home = prepare_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        child = subprocess.Popen(["sleep", "60"])  # the CLI process, soon killed
        try:
            tags = {"dagster/partition": DOMAIN, WORKER_HOST_TAG: socket.gethostname()}
            dead = create_run_for_test(
                instance,
                status=dg.DagsterRunStatus.STARTED,
                tags={**tags, WORKER_PID_TAG: str(child.pid)},
            )
        finally:
            child.kill()
            child.wait()
        live = create_run_for_test(
            instance, status=dg.DagsterRunStatus.STARTED, tags={**tags, **in_process_worker_tags()}
        )
        # a dead worker whose step process (multiprocess executor) still runs: not failed
        # yet, else the retry would write beside the orphaned step
        orphan = create_run_for_test(
            instance,
            status=dg.DagsterRunStatus.STARTED,
            tags={**tags, WORKER_PID_TAG: str(child.pid)},
        )
        instance.report_engine_event(
            "Launching subprocess for step", orphan, EngineEventData.multiprocess(os.getpid())
        )
        for run in (dead, live, orphan):
            monitor_started_run(instance, None, instance.get_run_record_by_id(run.run_id), LOG)
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED
        assert instance.get_run_by_id(orphan.run_id).status == dg.DagsterRunStatus.STARTED
        failure = instance.all_logs(dead.run_id, of_type=DagsterEventType.RUN_FAILURE)
        assert f"run worker pid {child.pid} on " in failure[-1].dagster_event.message


def test_runs_fail_stale_fails_a_killed_cli_run_without_a_daemon(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """Issue 30: with only the CLI (no daemon) a killed `materialize` left its run STARTED
    for ever; `flair-pipeline runs --fail-stale` marks it FAILURE and leaves a live one."""
    raw, home, go = tmp_path / "raw", prepare_home(tmp_path / "home"), tmp_path / "go"
    shutil.copytree(tiny_world.out / "domains" / DOMAIN, raw / "domains" / DOMAIN)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    cli = str(Path(sys.executable).parent / "flair-pipeline")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        live = create_run_for_test(
            instance,
            status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/partition": "D004_2021", **in_process_worker_tags()},  # this process
        )
        killed = subprocess.Popen(  # a real CLI build, paused at its first write, then killed
            [
                sys.executable,
                "-m",
                "tests.faults._paused_cli",
                str(go),
                "materialize",
                "--select",
                "key:domain_sources",
                "--partition",
                DOMAIN,
                "--set",
                f"paths.raw={raw}",
                "--set",
                f"paths.dataset={tmp_path / 'ds'}",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            run = _wait(
                "the CLI's run to start",
                lambda: next(
                    iter(
                        instance.get_runs(
                            dg.RunsFilter(
                                statuses=[dg.DagsterRunStatus.STARTED],
                                tags={"dagster/partition": DOMAIN},
                            )
                        )
                    ),
                    None,
                ),
            )
        finally:
            killed.kill()
            killed.wait()
        assert run.tags[WORKER_PID_TAG] == str(killed.pid)

        listed = subprocess.run(
            [cli, "runs"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert listed.returncode == 0, listed.stderr
        assert f"stale: run {run.run_id} (" in listed.stdout
        assert "rerun with --fail-stale" in listed.stdout
        assert (
            instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
        )  # listed only

        r = subprocess.run(
            [cli, "runs", "--fail-stale"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()  # oldest run first: the live one was made first
        assert lines[0].startswith(f"left STARTED: run {live.run_id} (")
        assert lines[1].startswith(
            f"marked FAILURE: run {run.run_id} ({run.job_name} [{DOMAIN}]): run worker pid "
            f"{killed.pid} on {socket.gethostname()} is gone"
        ), r.stdout
        assert lines[-1] == "2 started run(s), 1 whose process is gone"
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED
        failure = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
        assert "runs --fail-stale" in failure[-1].dagster_event.message
