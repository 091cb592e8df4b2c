"""Assets over URL data roots (s3://…): run on a local staging copy, publish on success.

``@staged(...)`` goes under ``@dg.asset``. When ``paths.raw`` and ``paths.dataset`` are
local it calls the asset as is. When either is an fsspec URL, the asset receives a
``flair`` resource whose roots point at a private local staging folder holding the
domain's raw inputs and the dataset files named in the decorator; what the asset writes
is uploaded only if it returns normally (see :mod:`flair_pipeline.storage` for why).
A project error (bad input, full disk) raised by the asset becomes a non-retried
``dg.Failure`` carrying its one-line message. Each step stages on its own, so it works unchanged under the multiprocess, Dask or k8s
executors, where steps run on different machines.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg

from flair_pipeline.defs.adapter import as_failure
from flair_pipeline.defs.resources import FlairConfig
from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.storage import staged as staged_roots

F = TypeVar("F", bound=Callable[..., Any])


def staged(*dataset_files: str) -> Callable[[F], F]:
    """Stage URL roots for one asset step; `dataset_files` are the dataset prefixes it reads.

    Prefixes may contain ``{domain}`` (the partition key), e.g.
    ``"metadata/patch_grid/{domain}.gpkg"`` or ``"aerial/{domain}"``.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)  # keeps the signature Dagster reads for context and resources
        def wrapper(context: dg.AssetExecutionContext, flair: FlairConfig, **kwargs: Any) -> Any:
            raw, dataset = flair.root_urls()
            domain = context.partition_key if context.has_partition_key else None
            with staged_roots(raw, dataset, domain, dataset_files) as stage:
                local = (
                    flair if stage.folder is None else flair.with_roots(stage.raw, stage.dataset)
                )
                try:
                    result = fn(context, local, **kwargs)
                except FlairPipelineError as exc:
                    # bad input, full disk: running the step again cannot help (issue 15)
                    raise as_failure(exc) from exc
            if stage.folder is not None:
                context.log.info(f"published {len(stage.published)} file(s) to {dataset}")
            return result

        return wrapper  # type: ignore[return-value]

    return decorate
