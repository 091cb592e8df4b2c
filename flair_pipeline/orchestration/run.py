"""Materialize assets in process, against the persistent Dagster instance.

The CLI (`flair-pipeline materialize`) and `dvc repro` run the very assets the UI runs, on
the instance in DAGSTER_HOME (default ``.dagster_home`` in the repo), so their runs show in
the UI. Partitioned assets run once per domain; unpartitioned ones after all domains.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from filelock import FileLock

from flair_pipeline import errors
from flair_pipeline.dataset.domain_lock import STAGES, stage_locks
from flair_pipeline.defs.partitions import DOMAINS
from flair_pipeline.defs.resources import PipelineConfigResource, sentinelhub_credentials
from flair_pipeline.domains import domain_id_problem, is_domain_id
from flair_pipeline.errors import FlairPipelineError, InputError
from flair_pipeline.layout import RawLayout
from flair_pipeline.locks import asset_locks
from flair_pipeline.orchestration.instance import prepare_home
from flair_pipeline.orchestration.launcher import in_process_worker_tags
from flair_pipeline.progress import STDERR_TAG
from flair_pipeline.storage import domain_folders, is_url, list_domains

_PROJECT_ERRORS = {
    name for name, v in vars(errors).items() if isinstance(v, type) and issubclass(v, Exception)
}


def dagster_instance(home: str | Path | None = None) -> dg.DagsterInstance:
    """The persistent instance (DAGSTER_HOME, default ./.dagster_home).

    Opening it is serialised between processes (a file lock, ``<home>/instance.lock``): two
    CLI processes started together on a new home would otherwise both create its SQLite
    schemas and one fails ("alembic_version has more than one head").

    Args:
        home: The folder, or None for ``$DAGSTER_HOME``, else ``./.dagster_home``.

    Returns:
        The instance of that home (also exported as ``DAGSTER_HOME``), its ``gpu`` pool
        limited (:func:`limit_gpu_pool`).

    Raises:
        ConfigError: The home's dagster.yaml is not valid YAML or its PostgreSQL settings
            are incomplete (from :func:`~flair_pipeline.orchestration.instance.prepare_home`).
        InstanceStorageError: The PostgreSQL server it names does not accept a connection.
    """
    path = prepare_home(home)  # PostgreSQL storage (deploy/): one clear line if it is down
    os.environ["DAGSTER_HOME"] = str(path)
    with FileLock(path / "instance.lock"):
        instance = dg.DagsterInstance.get()
        limit_gpu_pool(instance)
    return instance


GPU_POOL = "gpu"


def limit_gpu_pool(instance: dg.DagsterInstance, slots: int = 1) -> None:
    """Give the `gpu` pool (training assets) `slots` slots unless already set.

    Give the `gpu` pool (training assets) `slots` slots unless someone set it already:
    two trainings on one GPU would both slow down and may run out of memory.
    """
    storage = instance.event_log_storage
    if (
        storage.supports_global_concurrency_limits
        and GPU_POOL not in storage.get_concurrency_keys()
    ):
        storage.set_concurrency_slots(GPU_POOL, slots)


def misnamed_folders(raw: RawLayout) -> list[str]:
    """``"<folder>: <why it is not a domain id>"`` for every visible non-domain folder.

    Args:
        raw: The raw inputs' layout; its ``domains`` folder is listed.

    Returns:
        One line per visible folder whose name is not a domain id: its path, why, and that
        it is ignored until renamed; empty when every folder is a domain.
    """
    root = raw.domains_dir
    out = []
    for name in domain_folders(str(raw.root))[1]:
        problem = domain_id_problem(name)
        if problem:
            out.append(f"{root / name}: {problem}; folder ignored, rename it to build it")
    return out


def lock_dir(instance: dg.DagsterInstance) -> Path:
    """Folder of the per-(asset, partition) build locks: ``<DAGSTER_HOME>/locks``.

    Args:
        instance: The instance the builds record their runs in.

    Returns:
        ``<instance root>/locks`` (not created here; see :func:`flair_pipeline.locks.asset_locks`).
    """
    return Path(instance.root_directory) / "locks"


@contextmanager
def build_locks(
    instance: dg.DagsterInstance,
    flair: PipelineConfigResource,
    assets: Sequence[str],
    partition: str | None,
    log: Callable[[str], None],
) -> Iterator[None]:
    """Hold the locks of one in-process batch: the home's, then the dataset's.

    The home's per-(asset, partition) locks (:func:`lock_dir`) serialise this home's
    in-process builds; the dataset's per-(stage, domain) locks
    (:mod:`flair_pipeline.dataset.domain_lock`) exclude every other build of the domain's
    stages in the batch (another home, ``build-domain``, the UI's runs) for the whole batch,
    so no other build's step lands between two of this one's. The steps take the
    dataset's locks again themselves (re-entrant). A URL dataset root has no shared lock
    (docs/operations.md).

    Args:
        instance: The instance the batch records its run in.
        flair: The configuration (its dataset root).
        assets: The batch's asset keys as user strings.
        partition: The domain, or None for unpartitioned assets.
        log: Where a "waiting for another build" line goes.

    Yields:
        Nothing; the locks are held inside the block.

    Raises:
        StorageError: A lock file cannot be created.
    """
    dataset_root = flair.root_urls()[1]
    stages = [a for a in assets if a in STAGES]
    with ExitStack() as stack:
        stack.enter_context(asset_locks(lock_dir(instance), assets, partition, log))
        if partition and stages and not is_url(dataset_root):
            stack.enter_context(stage_locks(Path(dataset_root), stages, partition, log))
        yield


def _stderr(message: str) -> None:
    """Default `log` of :func:`materialize`: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class MaterializeSummary:
    """Which runs were made, which steps failed (one line each), which folders were ignored."""

    runs: list[tuple[str, str | None, bool]] = field(default_factory=list)  # (keys, partition, ok)
    failures: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def failure_text(self) -> str:
        """One line: how many steps failed, on which domains, and each failure's message.

        Returns:
            A head line ("<n> step(s) failed", with the failed domains when partitioned),
            then one indented line per failure.
        """
        failed = sorted({p for _, p, ok in self.runs if not ok and p})
        head = f"{len(self.failures)} step(s) failed" + (
            f" (domains {', '.join(failed)}; every other domain was built)" if failed else ""
        )
        return head + ":\n" + "\n".join(f"  {line}" for line in self.failures)


class MaterializeError(FlairPipelineError):
    """Some steps failed; the message has one line per failed step."""

    def __init__(self, message: str, summary: MaterializeSummary) -> None:
        super().__init__(message)
        self.summary = summary


def _failure_line(ev: dg.DagsterEvent) -> str:
    """The one line of a step failure: the project's message, else the innermost error's.

    Returns:
        The first line of the step's ``Failure`` description when it has one; else of the
        first project error (or ``Failure``) in the cause chain, or of the innermost error,
        without its ``<Class>: `` prefix; "failed (no error recorded)" without any.
    """
    data = ev.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description.splitlines()[0]
    err, last = data.error, None
    while err is not None:
        last = err
        if err.cls_name == "Failure" or err.cls_name in _PROJECT_ERRORS:
            break
        err = err.cause or err.context
    if last is None:
        return "failed (no error recorded)"
    first = (last.message.strip().splitlines() or [last.cls_name or "error"])[0]
    prefix, sep, rest = first.partition(": ")
    return rest if sep and prefix.rsplit(".", 1)[-1] == last.cls_name else first


def _check_detail(check: dg.AssetCheckEvaluation) -> str:
    """`` (problems: a; b; …)`` from a failed check's metadata, or nothing.

    Returns:
        " (p1; p2; p3 and <n> more)" from the check's ``problems`` metadata (at most three
        shown), or "" when it has none.
    """
    value: Any = check.metadata.get("problems")  # a MetadataValue or a raw list
    items = list(getattr(value, "value", value) or [])
    if not items:
        return ""
    more = f" and {len(items) - 3} more" if len(items) > 3 else ""
    return " (" + "; ".join(str(i) for i in items[:3]) + more + ")"


def _warnings(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The assets' own warning lines of a run (not Dagster's).

    Returns:
        The user messages of the run's WARNING-level, non-Dagster-event log entries, in
        log order.
    """
    return [
        e.user_message
        for e in instance.all_logs(run_id)
        if e.level == logging.WARNING and not e.is_dagster_event and e.user_message
    ]


def _user_error(exc: BaseException) -> BaseException:
    """The project's own error behind Dagster's wrappers, if any.

    Returns:
        The first :class:`FlairPipelineError` found following ``user_exception`` and
        ``__cause__`` from `exc`; `exc` itself when there is none.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, FlairPipelineError):
            return seen
        seen = getattr(seen, "user_exception", None) or seen.__cause__
    return exc


def materialize(
    selection: str,
    partitions: Sequence[str] = (),
    flair: PipelineConfigResource | None = None,
    instance: dg.DagsterInstance | None = None,
    log: Callable[[str], None] | None = None,
    log_level: str | None = None,
    verbose: bool = False,
    progress: bool = False,
) -> MaterializeSummary:
    """Materialize `selection` (Dagster selection syntax, e.g. ``group:dataset``).

    Without `partitions`, partitioned assets run for every domain found on disk (folders
    whose name is not a domain id are listed through `log`, with the reason). New domains
    are added to the ``domains`` dynamic partitions first. A failing domain does not stop
    the others: every batch runs, then :class:`MaterializeError` lists one line per failed
    step. Dagster's console log (with each failure's trace) shows only with `verbose`; else the
    assets' warnings reach `log` as one line each. With `progress`, the long assets show their
    progress on stderr as they run (run tag ``flair/progress: stderr``), besides the run's log.

    Args:
        selection: A Dagster asset selection; ``*`` or ``all`` for every asset.
        partitions: The domains to build; empty: every domain folder under ``paths.raw``.
        flair: The configuration resource (default: the project's params.yaml).
        instance: The Dagster instance (default: :func:`dagster_instance`).
        log: Where progress, ignored folders and warnings go, one line each; None: quiet
            (lock waits still go to stderr).
        log_level: Dagster's console log level (default INFO with `verbose`, else CRITICAL).
        verbose: Show Dagster's console log instead of the assets' warning lines.
        progress: Show the long assets' progress on stderr.

    Returns:
        The :class:`MaterializeSummary` of a fully successful call: each batch run
        (asset keys, partition, ok) and the ignored folders.

    Raises:
        FlairPipelineError: `selection` is invalid or matches no asset.
        InputError: A given partition is not a domain id, or partitioned assets are
            selected and no domain folder exists.
        MaterializeError: Any step or check failed, or a run could not start; its
            ``summary`` holds every run and one line per failure.
    """
    log_level = log_level or ("INFO" if verbose else "CRITICAL")
    from flair_pipeline.definitions import ALL_ASSETS, defs

    flair = flair or PipelineConfigResource()
    instance = instance or dagster_instance()
    graph = defs.resolve_asset_graph()
    try:
        sel = (
            dg.AssetSelection.all()
            if selection.strip() in ("*", "all")
            else dg.AssetSelection.from_string(selection)
        )
        keys = sel.resolve(graph)
    except Exception as exc:
        raise FlairPipelineError(f"invalid selection {selection!r}: {exc}") from None
    if not keys:
        raise FlairPipelineError(f"selection {selection!r} matches no asset")
    partitioned = sorted((k for k in keys if graph.get(k).is_partitioned), key=str)
    plain = sorted((k for k in keys if not graph.get(k).is_partitioned), key=str)

    raw_root = flair.root_urls()[0]
    domains = list(partitions) or list_domains(raw_root)
    for d in domains:
        if not is_domain_id(d):
            raise InputError(f"{d!r} is not a domain id (expected D0<dd>_<yyyy>, e.g. D006_2020)")
    if partitioned and not domains:
        raise InputError(f"{raw_root}/domains: no domain folders to build")
    known = set(instance.get_dynamic_partitions(DOMAINS))
    new = [d for d in domains if d not in known]
    if new:
        instance.add_dynamic_partitions(DOMAINS, new)

    summary = MaterializeSummary()
    if not partitions and not is_url(raw_root):
        summary.ignored = misnamed_folders(flair.raw())
        for line in summary.ignored:
            if log:
                log(f"ignored {line}")
    batches: list[tuple[list[dg.AssetKey], str | None]] = []
    if partitioned:
        batches += [(partitioned, d) for d in domains]
    if plain:
        batches.append((plain, None))
    for batch_keys, partition in batches:
        if log:
            log(
                f"materializing {', '.join(k.to_user_string() for k in batch_keys)}"
                + (f" [{partition}]" if partition else "")
            )
        where = f" [{partition}]" if partition else ""
        try:
            # this process bypasses the run queue: one build per (asset, domain) at a time
            with build_locks(
                instance,
                flair,
                [k.to_user_string() for k in batch_keys],
                partition,
                log or _stderr,
            ):
                result = dg.materialize(
                    ALL_ASSETS,
                    selection=dg.AssetSelection.assets(*batch_keys),
                    partition_key=partition,
                    instance=instance,
                    resources={"flair": flair, "sentinelhub": sentinelhub_credentials()},
                    tags={
                        "flair/front_door": "cli",
                        **({STDERR_TAG: "stderr"} if progress else {}),
                        **in_process_worker_tags(),
                    },
                    run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
                    raise_on_error=False,
                )
        except Exception as exc:  # the run could not start (definitions, config)
            err = _user_error(exc)
            summary.failures.append(f"run{where}: {err}")
            summary.runs.append(
                (",".join(k.to_user_string() for k in batch_keys), partition, False)
            )
            continue
        if log and not verbose:
            for line in _warnings(instance, result.run_id):
                log(f"warning{where}: {line}")
        failed_checks = {
            c.asset_key.to_user_string(): f"{c.check_name}{_check_detail(c)}"
            for c in result.get_asset_check_evaluations()
            if not c.passed
        }
        for ev in result.get_step_failure_events():
            detail = failed_checks.pop(ev.step_key or "", None)
            line = _failure_line(ev) + (f": {detail}" if detail else "")
            summary.failures.append(f"{ev.step_key}{where}: {line}")
        for asset, detail in failed_checks.items():  # a non-blocking check
            summary.failures.append(f"{asset}{where}: check failed: {detail}")
        summary.runs.append(
            (",".join(k.to_user_string() for k in batch_keys), partition, result.success)
        )
    if summary.failures:
        raise MaterializeError(summary.failure_text(), summary)
    return summary
