"""dagster-dask's executor, with its step arguments shielded from Dask's argument walker.

Why this module exists: ``dagster_dask.dask_executor`` 0.29 passes Dagster's run and
execution-state records straight to ``Client.submit``. Dask ≥ 2025 walks every tuple in
task arguments looking for futures, and Dagster 1.13 records are tuples that forbid
iteration, so every run fails at submission with "Iteration is not allowed on `@record`
KeyRangesPartitionsSubset" (partitioned runs carry such a subset). This executor submits
the same worker function (``dagster_dask.executor.query_on_dask_worker``) with the same
ordering (each step waits on the futures of the steps it depends on), but hands the
Dagster objects over inside one opaque, picklable box. Config is dagster-dask's
(``cluster: {existing: {address: …}}`` or ``cluster: {local: {…}}``); other cluster
types are refused with a message rather than half-supported. Drop this module once
dagster-dask stops passing raw records.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster_dask.executor import (
    DaskExecutor,
    dask_executor,
    get_dask_resource_requirements,
    query_on_dask_worker,
)

from flair_pipeline.errors import ConfigError


class _Box:
    """Carries Dagster records through Client.submit without Dask iterating them."""

    def __init__(self, *items: Any) -> None:
        self.items = items

    def __sizeof__(self) -> int:  # Dask's sizeof would iterate the records (and warn)
        return 1024


def _run_step(dependencies: list[Any], box: _Box) -> _Box:
    """Worker side: the upstream worker function, on the unboxed arguments; events boxed.

    Args:
        dependencies: The futures of the upstream steps (resolved, unused).
        box: (job, run, run config, step keys, instance ref, known state).

    Returns:
        The step's Dagster events, boxed.
    """
    del dependencies  # only there so that Dask runs this step after the ones it depends on
    events: Sequence[dg.DagsterEvent] = query_on_dask_worker(None, *box.items)
    return _Box(*events)


def _default_sigterm() -> None:
    """Run on each worker's main thread: give SIGTERM its default action back.

    Worker processes can inherit SIGTERM as ignored (seen under pytest and nohup'ed
    shells), and their children inherit that in turn. Dagster then cannot stop the
    `tail -F` that mirrors a step's compute logs: terminate() is ignored and every step
    waits 2 × 30 s in cleanup. With the default restored, steps end as soon as they finish.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class ShieldedDaskExecutor(DaskExecutor):
    """DaskExecutor whose ``client.submit`` calls box their Dagster arguments."""

    def execute(
        self, plan_context: Any, execution_plan: ExecutionPlan
    ) -> Iterator[dg.DagsterEvent]:
        """Run each step of `execution_plan` as one Dask task and yield its Dagster events.

        Args:
            plan_context: Dagster's plan orchestration context.
            execution_plan: The run's plan.

        Yields:
            Every step's events, step by step as tasks complete.

        Raises:
            ConfigError: The instance is not persistent, or the cluster type is neither
                ``existing`` nor ``local``.
        """
        import dask.distributed
        from dagster._core.errors import raise_execution_interrupts
        from dagster._utils import iterate_with_context

        if not plan_context.instance.is_persistent:
            raise ConfigError(
                "the Dask executor needs a persistent Dagster instance (set DAGSTER_HOME): "
                "its workers write their events to it"
            )
        if self.cluster_type == "existing":
            cluster: Any = self.cluster_configuration["address"]
        elif self.cluster_type == "local":
            # build_dict: inherited from dagster-dask, which leaves it unannotated
            kwargs = self.build_dict(plan_context.job_name)  # type: ignore[no-untyped-call]
            cluster = dask.distributed.LocalCluster(**kwargs)
        else:
            raise ConfigError(
                f"Dask cluster type {self.cluster_type!r} is not supported here: start the "
                "cluster yourself and pass cluster: {existing: {address: …}}"
            )
        instance_ref = plan_context.instance.get_ref()
        with dask.distributed.Client(cluster) as client:
            client.run(_default_sigterm)
            futures: dict[str, Any] = {}
            for level in execution_plan.get_steps_to_execute_by_level():
                for step in level:
                    deps = [futures[k] for i in step.step_inputs for k in i.dependency_keys]
                    box = _Box(
                        plan_context.reconstructable_job,
                        plan_context.dagster_run,
                        plan_context.run_config,
                        [step.key],
                        instance_ref,
                        execution_plan.known_state,
                    )
                    futures[step.key] = client.submit(
                        _run_step,
                        deps,
                        box,
                        key=f"{plan_context.job_name}.{step.key}.{plan_context.run_id[:8]}",
                        resources=get_dask_resource_requirements(step.tags),
                        pure=False,
                    )
            done = dask.distributed.as_completed(list(futures.values()), with_results=True)
            for _future, events in iterate_with_context(raise_execution_interrupts, done):
                yield from events.items


# dagster's overloads of @executor do not accept the IDefinitionConfigSchema that
# dagster-dask's own executor exposes as config_schema (the same object, at run time); with
# no overload matched, mypy also calls the decorator untyped (the function stays annotated)
@dg.executor(  # type: ignore[call-overload, untyped-decorator]
    name="dask",
    config_schema=dask_executor.config_schema,
    requirements=dg.multiple_process_executor_requirements(),
)
def shielded_dask_executor(init_context: dg.InitExecutorContext) -> ShieldedDaskExecutor:
    """Dask executor (dagster-dask config): one Dask task per step.

    Args:
        init_context: Dagster's executor init context (config ``cluster: {type: config}``).

    Returns:
        The executor for that cluster.
    """
    cluster: Any = init_context.executor_config["cluster"]  # {cluster type: its config}
    ((cluster_type, cluster_configuration),) = cluster.items()
    # DaskExecutor.__init__ (dagster-dask) is unannotated; ours inherits it
    return ShieldedDaskExecutor(cluster_type, cluster_configuration)  # type: ignore[no-untyped-call]
