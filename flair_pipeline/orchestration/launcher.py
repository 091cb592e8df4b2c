"""The run launcher of the generated instance: Dagster's default one plus a health check.

The run-worker health check lets run monitoring fail a run whose worker was killed (issue 15).

Why: ``DefaultRunLauncher`` (Dagster 1.13) hands each run to the code server, which runs it
in a child process, and it does not implement ``check_run_worker_health``
(``supports_check_run_worker_health`` is False: only the Docker, Kubernetes and ECS
launchers probe their workers). While the code server lives it notices a dead child
itself; when both die together (``kill -9`` of ``dagster dev``'s process tree, the OOM
killer, a reboot) nothing is left to notice, and the run stays STARTED for ever: never
failed, so never retried, and it holds its ``dagster/partition`` slot of the run queue.

This launcher launches exactly like the default one and records the launching host in the
``flair/worker_host`` tag when the code server is on this machine. The run worker logs its
pid in its first engine event (``Started process for run (pid: N).``); the monitoring
daemon's health check (``run_monitoring`` in dagster.yaml, every ``poll_interval_seconds``)
reports the worker FAILED when that process no longer exists on this host (or is a
zombie, or the pid now belongs to a process started later) and no step process it
started (the multiprocess executor logs their pids too) still runs: an orphaned step
left writing would otherwise overlap the retry. The daemon then marks the run
FAILURE and ``run_retries`` launches a re-execution from the failed steps. A worker on
another host, or a run without the pid event (not launched by a launcher, e.g. the CLI's
in-process runs), is reported RUNNING: only ``dagster/max_runtime_seconds`` ends it.

In-process runs of ``flair-pipeline materialize`` (``orchestration/run.py``) are tagged with their
own pid and host (``flair/worker_pid``, ``flair/worker_host``), so a killed CLI's run is
failed too, which frees its domain's slot in the run queue; it is not retried (Dagster
cannot re-execute a run that has no code location: "unable to retry the run").

Without a daemon (only the CLI or ``dvc repro`` is used) nothing runs the health check, so
a killed run stays STARTED; ``flair-pipeline runs --fail-stale`` applies the same check
once (:func:`fail_stale_runs`) and marks FAILURE the runs whose processes are gone.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import dagster_shared.seven.json as seven_json
import psutil
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import GRPC_INFO_TAG

#: Tag holding the host name of the machine the run worker was started on.
WORKER_HOST_TAG = "flair/worker_host"
#: Tag holding the pid of a process that runs the run itself (the CLI's in-process runs).
WORKER_PID_TAG = "flair/worker_pid"
#: Start of the engine event in which a run worker records its pid (dagster/_grpc/impl.py).
STARTED_PROCESS = "Started process for run (pid: "
#: Host names by which a code server on the launcher's machine is reached.
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
#: Seconds a worker's process start time may lie after its own pid event (clock rounding).
_START_SLACK_S = 2.0


def _engine_pids(instance: DagsterInstance, run: DagsterRun) -> list[tuple[int, float, str]]:
    """``(pid, event time, message)`` of every engine event of the run that names a pid.

    Args:
        instance: The Dagster instance holding the run's event log.
        run: The run whose engine events are read.

    Returns:
        One tuple per such event, in event-log order (time in Unix seconds).
    """
    out = []
    for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        data = event.event_specific_data if event else None
        pid = (getattr(data, "metadata", None) or {}).get("pid")
        if event is not None and pid is not None:
            out.append(
                (int(str(getattr(pid, "value", pid))), record.timestamp, event.message or "")
            )
    return out


def worker_pid(instance: DagsterInstance, run: DagsterRun) -> tuple[int, float] | None:
    """The pid of the run's latest run worker and when it logged it.

    Args:
        instance: The instance holding the run's event log.
        run: A run launched through a run launcher.

    Returns:
        ``(pid, unix timestamp of the event)``, or None when no worker recorded its pid.
    """
    found = [(p, t) for p, t, m in _engine_pids(instance, run) if m.startswith(STARTED_PROCESS)]
    return found[-1] if found else None


def step_pids(instance: DagsterInstance, run: DagsterRun) -> list[tuple[int, float]]:
    """``(pid, event time)`` of the run's step processes (multiprocess executor).

    Args:
        instance: The instance holding the run's event log.
        run: Any run.

    Returns:
        Every pid an engine event of the run names, other than its run workers'.
    """
    workers = {p for p, _, m in _engine_pids(instance, run) if m.startswith(STARTED_PROCESS)}
    return [(p, t) for p, t, _ in _engine_pids(instance, run) if p not in workers]


def process_alive(pid: int, started_by: float) -> bool:
    """Whether `pid` is a live process started no later than `started_by` (not a reused pid).

    Args:
        pid: Process id on this host.
        started_by: Unix time by which the process we mean was running.

    Returns:
        False if no such process exists, it is a zombie, or it started after `started_by`.
    """
    try:
        proc = psutil.Process(pid)
        alive: bool = proc.status() != psutil.STATUS_ZOMBIE
        return alive and proc.create_time() <= started_by + _START_SLACK_S
    except psutil.NoSuchProcess:
        return False


class FlairRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` whose run workers the run monitoring daemon can health-check.

    Configured in dagster.yaml as ``run_launcher: {module: flair_pipeline.orchestration.launcher,
    class: FlairRunLauncher}`` (the generated file does it). No config fields.
    """

    def launch_run(self, context: LaunchRunContext) -> None:
        """Launch like the default launcher; tag the worker's host when it is this one."""
        super().launch_run(context)
        run_id = context.dagster_run.run_id
        run = self._instance.get_run_by_id(run_id)
        info = seven_json.loads((run.tags if run else {}).get(GRPC_INFO_TAG) or "{}")
        host = str(info.get("host") or "")
        if info.get("socket") or host in _LOCAL_HOSTS or host == socket.gethostname():
            self._instance.add_run_tags(run_id, {WORKER_HOST_TAG: socket.gethostname()})

    @property
    def supports_check_run_worker_health(self) -> bool:
        """True: see :meth:`check_run_worker_health`."""
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """FAILED when the run's worker and step processes are gone from this host.

        Args:
            run: A STARTED run (the monitoring daemon calls this for each one).

        Returns:
            ``WorkerStatus.FAILED`` with the pid and host when the worker is dead and no
            step process it started (multiprocess executor) still runs;
            ``WorkerStatus.RUNNING`` when one of them is alive or the worker cannot be
            probed from here (the message says why).
        """
        return worker_health(self._instance, run)


def worker_health(instance: DagsterInstance, run: DagsterRun) -> CheckRunHealthResult:
    """Whether a STARTED run's processes still live (the health check, usable without a launcher).

    Args:
        instance: The instance holding the run's event log.
        run: A STARTED run.

    Returns:
        ``WorkerStatus.FAILED`` with the pid and host when the run's worker (its
        ``Started process`` event, or the CLI's ``flair/worker_pid`` tag) is dead on this
        host and no step process it started still runs; ``WorkerStatus.RUNNING`` when one
        of them is alive or the worker cannot be probed from here (the message says why).
    """
    here = socket.gethostname()
    host = run.tags.get(WORKER_HOST_TAG)
    if host != here:
        return CheckRunHealthResult(
            WorkerStatus.RUNNING, f"worker host {host or 'unknown'} is not {here}: not probed"
        )
    found = worker_pid(instance, run)
    if found is None and run.tags.get(WORKER_PID_TAG, "").isdigit():
        record = instance.get_run_record_by_id(run.run_id)
        if record is not None:  # the process made the run, so it existed by then
            found = (int(run.tags[WORKER_PID_TAG]), record.create_timestamp.timestamp())
    if found is None:
        return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker pid recorded yet")
    pid, logged_at = found
    if process_alive(pid, logged_at):
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is alive")
    orphans = [p for p, t in step_pids(instance, run) if process_alive(p, t)]
    if orphans:  # failing now would let a retry write beside a step still writing
        return CheckRunHealthResult(
            WorkerStatus.RUNNING,
            f"run worker pid {pid} is gone but step process(es) {orphans} still run",
        )
    return CheckRunHealthResult(
        WorkerStatus.FAILED,
        f"run worker pid {pid} on {here} is gone (killed or crashed without ending the run)",
    )


def in_process_worker_tags() -> dict[str, str]:
    """Tags of a run executed by this very process (``dg.materialize``), for the health check.

    Returns:
        ``{flair/worker_pid: <this pid>, flair/worker_host: <this host>}``.
    """
    return {WORKER_PID_TAG: str(os.getpid()), WORKER_HOST_TAG: socket.gethostname()}


@dataclass(frozen=True)
class StaleRunCheck:
    """One STARTED run as :func:`fail_stale_runs` found it."""

    run_id: str
    job: str
    partition: str | None
    stale: bool  # its processes are gone (marked FAILURE unless a dry run)
    reason: str  # the health check's message


def fail_stale_runs(instance: DagsterInstance, *, dry_run: bool = False) -> list[StaleRunCheck]:
    """Mark FAILURE every STARTED run whose processes are gone (what monitoring would do).

    For users of the CLI or ``dvc repro`` only, where no daemon runs run monitoring: a run
    whose process was killed stays STARTED (and holds its partition's slot of the run
    queue) until this is called. Uses :func:`worker_health`, so a live run, a run with a
    live step process and a run of another host are left alone.

    Args:
        instance: The instance to clean.
        dry_run: Only report; change nothing.

    Returns:
        One :class:`StaleRunCheck` per STARTED run, oldest first.
    """
    checks = []
    records = instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
    for record in sorted(records, key=lambda r: r.create_timestamp):
        run = record.dagster_run
        health = worker_health(instance, run)
        stale = health.status == WorkerStatus.FAILED
        if stale and not dry_run:
            instance.report_run_failed(
                run, f"{health.msg}; marked FAILURE by `flair-pipeline runs --fail-stale`"
            )
        checks.append(
            StaleRunCheck(
                run.run_id, run.job_name, run.tags.get("dagster/partition"), stale, health.msg or ""
            )
        )
    return checks
