"""Assets from stage declarations: ``@stage_asset(STAGES_BY_NAME["x"])`` over a body.

The declaration (:mod:`flair_pipeline.stages`) gives everything Dagster needs but the code:
the key, group, description, kinds, partitions and backfill policy (per domain), the
dependencies (an all-domain stage reads every partition of a per-domain input), the
blocking check, the pool, the retry policy and, for a stage with ``staged``, the staging
of URL roots (:func:`flair_pipeline.defs.staging.staged`). The body, named after the stage
in ``defs/assets/``, reads its resources and calls the stage's core function; it returns
the :class:`~flair_pipeline.reports.StageReport` (turned here into the materialization,
the check passed iff the report passed) or a ready ``dg.MaterializeResult``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

from flair_pipeline.defs.adapter import result
from flair_pipeline.defs.partitions import DOMAIN_BACKFILL, domains_partitions
from flair_pipeline.defs.staging import staged
from flair_pipeline.reports import StageReport
from flair_pipeline.stages import STAGES_BY_NAME, Retry, Stage, input_is_all_domains

#: An asset body: ``fn(context, flair, **resources)`` returning a report or a result.
Body = Callable[..., "StageReport | dg.MaterializeResult[Any]"]


def _retry_policy(retry: Retry | None) -> dg.RetryPolicy | None:
    if retry is None:
        return None
    return dg.RetryPolicy(
        max_retries=retry.max_retries,
        delay=retry.delay,
        backoff=dg.Backoff.EXPONENTIAL if retry.exponential else None,
    )


def asset_deps(stage: Stage, stages: Mapping[str, Stage]) -> list[dg.AssetDep]:
    """The Dagster dependencies of a stage, from its declared inputs.

    Args:
        stage: A declaration.
        stages: Every declaration by name (its inputs among them).

    Returns:
        One ``dg.AssetDep`` per input, with an all-partitions mapping where the stage
        reads every domain of a per-domain input.
    """
    return [
        dg.AssetDep(i, partition_mapping=dg.AllPartitionMapping())
        if input_is_all_domains(stage, i, stages)
        else dg.AssetDep(i)
        for i in stage.inputs
    ]


def stage_asset(
    stage: Stage, stages: Mapping[str, Stage] = STAGES_BY_NAME
) -> Callable[[Body], dg.AssetsDefinition]:
    """Decorate an asset body into the asset its declaration describes.

    Args:
        stage: The stage's declaration.
        stages: Every declaration by name (default: the project's), for its inputs.

    Returns:
        A decorator turning ``body(context, flair, **resources)`` into the asset.

    Raises:
        ValueError: The body's name is not the stage's name.
    """

    def decorate(body: Body) -> dg.AssetsDefinition:
        if body.__name__ != stage.name:
            raise ValueError(f"stage_asset: body {body.__name__} for stage {stage.name}")

        @functools.wraps(body)  # keeps the signature Dagster reads for context and resources
        def materialize(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Any:
            out = body(context, *args, **kwargs)
            if isinstance(out, StageReport):
                return result(context, out, check=stage.check)
            return out

        # Dagster reads the signature (context, resources) and the return annotation (one
        # output): the body's parameters, returning a materialization
        materialize.__signature__ = inspect.signature(body).replace(  # type: ignore[attr-defined]
            return_annotation=dg.MaterializeResult
        )
        fn: Callable[..., Any] = materialize
        if stage.staged is not None:
            fn = staged(
                *stage.staged,
                raw_folders=stage.raw_folders,
                raw_in_place=stage.raw_in_place,
                raw_domain=stage.raw_domain,
            )(fn)
        checks = (
            [dg.AssetCheckSpec(stage.check, asset=stage.name, blocking=True)]
            if stage.check
            else None
        )
        return dg.asset(
            name=stage.name,
            group_name=stage.group,
            description=stage.description,
            kinds=set(stage.kinds),
            deps=asset_deps(stage, stages),
            partitions_def=domains_partitions if stage.per_domain else None,
            backfill_policy=DOMAIN_BACKFILL if stage.per_domain else None,
            check_specs=checks,
            pool=stage.pool,
            retry_policy=_retry_policy(stage.retry),
        )(fn)

    return decorate
