"""The dataset job on other executors: the same assets, run on a Dask cluster.

Out-of-process executors rebuild the job in every worker, so the job must be
*reconstructable*: a module-level function that workers import by name
(:func:`dask_build_domain`), plus a persistent Dagster instance (SQLite in DAGSTER_HOME,
or PostgreSQL) that workers write their events to. Each step of a domain partition
becomes one Dask task; the scheduler orders them by the assets' dependencies, and
independent steps (``aerial_patches`` and ``label_masks``) and the runs of other domains
spread over the workers (see :mod:`flair_pipeline.orchestration.dask_executor` for why the
executor is a patched dagster-dask one). The assets are unchanged: they write their files themselves, so
workers need the same data roots: a shared filesystem, or URL roots (s3://…) staged by
:mod:`flair_pipeline.defs.staging`.

Run config for a cluster that is already up (``dask scheduler`` + ``dask worker``)::

    execution: {config: {cluster: {existing: {address: "tcp://scheduler:8786"}}}}
"""

from __future__ import annotations

from typing import Any

import dagster as dg

DASK_JOB = "build_domain_dask"


def dask_build_domain() -> dg.JobDefinition:
    """``build_domain`` (sources + per-domain dataset assets) with the Dask executor.

    Returns:
        The job, partitioned by domain, with the shielded Dask executor and the project's
        resources.
    """
    from flair_pipeline.definitions import DATASET_ASSETS
    from flair_pipeline.defs.resources import PipelineConfigResource, sentinelhub_credentials
    from flair_pipeline.orchestration.dask_executor import shielded_dask_executor

    job = dg.define_asset_job(
        DASK_JOB,
        selection=dg.AssetSelection.assets(*DATASET_ASSETS),
        executor_def=shielded_dask_executor,
        description="build_domain on a Dask cluster: one Dask task per asset step.",
    )
    defs = dg.Definitions(
        assets=DATASET_ASSETS,
        jobs=[job],
        resources={"flair": PipelineConfigResource(), "sentinelhub": sentinelhub_credentials()},
    )
    return defs.resolve_job_def(DASK_JOB)


def dask_run_config(address: str, config_path: str, log_level: str = "WARNING") -> dict[str, Any]:
    """Run config: the scheduler's address and the params file every worker loads.

    Args:
        address: The Dask scheduler, e.g. ``tcp://host:8786``.
        config_path: The params file, as the workers see it.
        log_level: Dagster's console log level.

    Returns:
        The run config dict.
    """
    return {
        "execution": {"config": {"cluster": {"existing": {"address": address}}}},
        "resources": {"flair": {"config": {"config_path": config_path}}},
        "loggers": {"console": {"config": {"log_level": log_level}}},
    }


def run_domain_on_dask(
    instance: dg.DagsterInstance, domain: str, address: str, config_path: str
) -> dg.JobExecutionResult:
    """Build one domain partition on the Dask cluster at `address` (registers the partition).

    Args:
        instance: A persistent Dagster instance (the workers write events to it).
        domain: Domain id.
        address: The Dask scheduler.
        config_path: The params file, as the workers see it.

    Returns:
        The run's result (``success`` and its events).
    """
    if not instance.has_dynamic_partition("domains", domain):
        instance.add_dynamic_partitions("domains", [domain])
    return dg.execute_job(
        dg.reconstructable(dask_build_domain),
        instance=instance,
        run_config=dask_run_config(address, config_path),
        tags={"dagster/partition": domain, "flair/front_door": "dask"},
    )
