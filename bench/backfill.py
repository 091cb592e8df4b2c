"""Benchmark: a backfill of several domains, one run per domain vs one run for all.

Generates a synthetic world (`tiny` by default), opens a real Dagster instance in a
temporary DAGSTER_HOME (the project's generated dagster.yaml: SQLite, run queue, a process
per run, as under `make ui`), and backfills the per-domain dataset assets (``domain_sources`` →
``dataset_metadata``) over `--domains` domains through Dagster's own backfill machinery:
``PartitionBackfill`` added to the instance, then the backfill daemon's iteration
(``execute_backfill_iteration``) and the run queue's (``QueuedRunCoordinatorDaemon``) called
until every run it launched has ended. Twice, each
time on a fresh dataset folder and instance:

* ``multi_run(1)``: the project's code location as it is (``DOMAIN_BACKFILL``, one run
  per domain);
* ``single_run``: the same five assets with ``BackfillPolicy.single_run()``, each calling
  the same core stage functions in a loop over ``context.partition_keys`` (the project's
  assets read one ``context.partition_key`` and cannot run over a range), a domain that
  fails is logged and the others go on, the step fails at the end if any did.

For each: runs created, wall seconds from the backfill's request to the end of its last
run, the domains whose ``dataset_metadata`` is materialized; then the ratio of wall times.

    PYTHONPATH=$PWD .venv/bin/python bench/backfill.py --scenario tiny --domains 3
"""

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml

from flair_pipeline.dataset import build
from flair_pipeline.dataset.sources_record import record_domain_sources
from flair_pipeline.defs.partitions import DOMAINS, domains_partitions
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.orchestration.instance import prepare_home

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
#: The per-domain dataset assets, in order (the ``build_domain`` job's selection).
ASSETS = ["domain_sources", "patch_grid", "aerial_patches", "label_masks", "dataset_metadata"]


def _ctx(domain: str, flair: PipelineConfigResource) -> build.DomainContext:
    """The build context of one domain, opened once per step as the assets do."""
    project = flair.project()
    return build.DomainContext.open(
        domain=domain, raw=project.raw, dataset=project.dataset, cfg=project.config
    )


# -- the single-run variant: same stage functions, looped over the run's partition keys --

Stage = Callable[[str, PipelineConfigResource], object]

_STAGES: dict[str, tuple[list[str], Stage]] = {
    "domain_sources": (
        [],
        lambda d, f: record_domain_sources(_ctx(d, f)),
    ),
    "patch_grid": (
        ["domain_sources"],
        lambda d, f: build.sample_domain_grid(_ctx(d, f)),
    ),
    "aerial_patches": (
        ["patch_grid"],
        lambda d, f: build.build_domain_images(_ctx(d, f)),
    ),
    "label_masks": (
        ["patch_grid"],
        lambda d, f: build.build_domain_masks(_ctx(d, f)),
    ),
    "dataset_metadata": (
        ["aerial_patches", "label_masks", "domain_sources"],
        lambda d, f: build.write_domain_metadata(_ctx(d, f)),
    ),
}


def _looping_asset(name: str, deps: list[str], stage: Stage) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        deps=deps,
        partitions_def=domains_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="dataset",
    )
    def _asset(context: dg.AssetExecutionContext, flair: PipelineConfigResource) -> None:
        failed = []
        for domain in context.partition_keys:
            try:
                stage(domain, flair)
            except FlairPipelineError as exc:  # isolated: the other domains go on
                context.log.error(f"{domain}: {exc}")
                failed.append(domain)
        if failed:
            raise dg.Failure(f"{name}: failed for {', '.join(failed)}", allow_retries=False)

    return _asset


#: The code location of the single-run variant (loaded by the backfill's code server).
single_run_defs = dg.Definitions(
    assets=[_looping_asset(n, deps, stage) for n, (deps, stage) in _STAGES.items()],
    resources={"flair": PipelineConfigResource()},
)


# -- the backfill, through the daemon's own iteration --


@dataclass
class Outcome:
    """What one backfill did."""

    backfill_id: str
    runs: int
    wall_s: float
    statuses: list[str]
    materialized: list[str]


def backfill(
    *,
    instance: dg.DagsterInstance,
    target: object,
    domains: Sequence[str],
    timeout_s: float = 900.0,
) -> Outcome:
    """Backfill :data:`ASSETS` over `domains` as the daemon would, and wait for its runs.

    Args:
        instance: A real instance with a run queue (the project's: its run launcher starts
            a process per run).
        target: The workspace load target of the code location to use.
        domains: Partition keys, added to the ``domains`` partitions first.
        timeout_s: Give up after this long.

    Returns:
        Runs created, wall seconds (request to the end of the last run), each run's status,
        the domains whose ``dataset_metadata`` is materialized.

    Raises:
        TimeoutError: The runs did not end within `timeout_s`.
    """
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._daemon.backfill import execute_backfill_iteration
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )

    instance.add_dynamic_partitions(DOMAINS, list(domains))
    log = logging.getLogger("bench.backfill")
    queue = QueuedRunCoordinatorDaemon(interval_seconds=1)  # what `dg dev`'s daemon runs
    with create_test_daemon_workspace_context(target, instance) as ctx:  # type: ignore[arg-type]
        graph = ctx.create_request_context().asset_graph
        backfill_id = f"bench{int(time.time() * 1000) % 10**8}"
        t0 = time.perf_counter()
        instance.add_backfill(
            PartitionBackfill.from_asset_partitions(
                backfill_id=backfill_id,
                asset_graph=graph,
                partition_names=list(domains),
                asset_selection=[dg.AssetKey(a) for a in ASSETS],
                backfill_timestamp=time.time(),
                tags={},
                dynamic_partitions_store=instance,
                all_partitions=False,
                title=None,
                description=None,
                run_config=None,
            )
        )
        runs_filter = dg.RunsFilter(tags={"dagster/backfill": backfill_id})
        while True:
            for error in execute_backfill_iteration(ctx, log):
                if error is not None:
                    raise RuntimeError(error.to_string())
            for _ in queue.run_iteration(ctx):  # dequeue and launch the runs
                pass
            status = instance.get_backfill(backfill_id).status  # type: ignore[union-attr]
            runs = instance.get_runs(runs_filter)
            if status != BulkActionStatus.REQUESTED and all(r.is_finished for r in runs):
                break
            if time.perf_counter() - t0 > timeout_s:
                raise TimeoutError(f"backfill {backfill_id} still running after {timeout_s} s")
            time.sleep(0.5)
        wall = time.perf_counter() - t0
    done = instance.get_materialized_partitions(dg.AssetKey("dataset_metadata"))
    return Outcome(
        backfill_id=backfill_id,
        runs=len(runs),
        wall_s=wall,
        statuses=sorted(r.status.value for r in runs),
        materialized=sorted(done),
    )


def _params(root: Path, raw: Path) -> Path:
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"paths": {"raw": str(raw), "dataset": str(root / "ds")}}))
    return params


def run_variant(*, raw: Path, domains: Sequence[str], policy: str, root: Path) -> Outcome:
    """One backfill of `domains` under `policy` (``multi`` or ``single``), fresh instance.

    Args:
        raw: The raw root holding the domains.
        domains: Partition keys to backfill.
        policy: ``multi`` (the project's code location) or ``single`` (the looping variant).
        root: An empty folder: DAGSTER_HOME, params.yaml and the dataset go there.

    Returns:
        The backfill's :class:`Outcome`.
    """
    from dagster._core.workspace.load_target import ModuleTarget

    home = prepare_home(root / "home")  # the project's generated dagster.yaml
    # the code server and run workers inherit these: same params, same code first on the path
    os.environ["FLAIR_PARAMS"] = str(_params(root, raw))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), str(BENCH)])
    if policy == "multi":
        target = ModuleTarget(
            module_name="flair_pipeline.definitions",
            attribute="defs",
            working_directory=str(REPO),
            location_name="flair",
        )
    else:
        target = ModuleTarget(
            module_name="backfill",
            attribute="single_run_defs",
            working_directory=str(BENCH),
            location_name="flair_single",
        )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return backfill(instance=instance, target=target, domains=domains)


def main() -> None:
    from flair_pipeline.synthetic.world import SCENARIOS, generate_world

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="tiny", choices=sorted(SCENARIOS))
    ap.add_argument("--domains", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        root = Path(tmp)
        world = generate_world(root / "raw", args.scenario, 0)
        domains = sorted(d.domain for d in world.domains)[: args.domains]
        print(f"{args.scenario} world: backfill of {len(domains)} domains ({', '.join(domains)})")
        out = {}
        for policy, label in (("multi", "multi_run(1)"), ("single", "single_run")):
            o = run_variant(raw=root / "raw", domains=domains, policy=policy, root=root / policy)
            out[policy] = o
            print(
                f"{label:<13} runs {o.runs}  wall {o.wall_s:6.1f} s  "
                f"runs {','.join(o.statuses)}  materialized {len(o.materialized)}/{len(domains)}"
            )
            sys.stdout.flush()
        m, s = out["multi"], out["single"]
        print(
            f"multi_run(1) / single_run wall: {m.wall_s / s.wall_s:.2f}x; "
            f"{(m.wall_s - s.wall_s) / max(1, len(domains) - 1):+.1f} s per extra run"
        )


if __name__ == "__main__":
    main()
