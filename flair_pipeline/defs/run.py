"""Materialize assets in process, against the persistent Dagster instance.

The CLI (`flair-pipeline materialize`) and `dvc repro` run the very assets the UI runs, on
the instance in DAGSTER_HOME (default ``.dagster_home`` in the repo), so their runs show in
the UI. Partitioned assets run once per domain; unpartitioned ones after all domains.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from flair_pipeline.dataset.layout import RawLayout
from flair_pipeline.defs.instance import prepare_home
from flair_pipeline.defs.partitions import DOMAINS
from flair_pipeline.defs.resources import FlairConfig, sentinelhub_credentials
from flair_pipeline.domains import is_domain_id
from flair_pipeline.errors import FlairPipelineError, InputError
from flair_pipeline.storage import is_url, list_domains


def dagster_instance(home: str | Path | None = None) -> dg.DagsterInstance:
    """The persistent instance (DAGSTER_HOME, default ./.dagster_home)."""
    path = prepare_home(home)  # PostgreSQL storage (deploy/): one clear line if it is down
    os.environ["DAGSTER_HOME"] = str(path)
    instance = dg.DagsterInstance.get()
    limit_gpu_pool(instance)
    return instance


GPU_POOL = "gpu"


def limit_gpu_pool(instance: dg.DagsterInstance, slots: int = 1) -> None:
    """Give the `gpu` pool (training assets) `slots` slots unless someone set it already:
    two trainings on one GPU would both slow down and may run out of memory."""
    storage = instance.event_log_storage
    if (
        storage.supports_global_concurrency_limits
        and GPU_POOL not in storage.get_concurrency_keys()
    ):
        storage.set_concurrency_slots(GPU_POOL, slots)


def domains_on_disk(raw: RawLayout) -> list[str]:
    """Domain ids with a folder under the raw root (folders with other names are ignored)."""
    root = raw.root / "domains"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and is_domain_id(p.name))


@dataclass
class MaterializeSummary:
    """Which runs were made."""

    runs: list[tuple[str, str | None, bool]] = field(default_factory=list)  # (keys, partition, ok)


def _user_error(exc: BaseException) -> BaseException:
    """The project's own error behind Dagster's wrappers, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, FlairPipelineError):
            return seen
        seen = getattr(seen, "user_exception", None) or seen.__cause__
    return exc


def materialize(
    selection: str,
    partitions: Sequence[str] = (),
    flair: FlairConfig | None = None,
    instance: dg.DagsterInstance | None = None,
    log: Callable[[str], None] | None = None,
    log_level: str = "WARNING",
) -> MaterializeSummary:
    """Materialize `selection` (Dagster selection syntax, e.g. ``group:dataset``).

    Without `partitions`, partitioned assets run for every domain found on disk. New domains
    are added to the ``domains`` dynamic partitions first.
    """
    from flair_pipeline.defs.definitions import ALL_ASSETS, defs

    flair = flair or FlairConfig()
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
    domains = list(partitions) or (
        list_domains(raw_root) if is_url(raw_root) else domains_on_disk(flair.raw())
    )
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
        try:
            result = dg.materialize(
                ALL_ASSETS,
                selection=dg.AssetSelection.assets(*batch_keys),
                partition_key=partition,
                instance=instance,
                resources={"flair": flair, "sentinelhub": sentinelhub_credentials()},
                tags={"flair/front_door": "cli"},
                run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            )
        except Exception as exc:
            err = _user_error(exc)
            where = f" for {partition}" if partition else ""
            raise FlairPipelineError(f"materialization failed{where}: {err}") from exc
        summary.runs.append(
            (",".join(k.to_user_string() for k in batch_keys), partition, result.success)
        )
    return summary
