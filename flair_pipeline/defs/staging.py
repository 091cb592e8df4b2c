"""Assets over URL data roots (s3://…): run on a local staging copy, publish on success.

``@staged(...)`` goes under ``@dg.asset``. When ``paths.raw`` and ``paths.dataset`` are
local it calls the asset as is. When either is an fsspec URL, the asset receives a
``flair`` resource whose roots point at a private local staging folder holding the
domain's raw inputs and the dataset files named in the decorator; what the asset writes
is uploaded only if it returns normally (see :mod:`flair_pipeline.storage` for why, and
for the pull, snapshot and publish it is made of). A step declared ``raw_in_place``
(the sources, grid, IMG and MSK steps) pulls nothing of a URL raw root: it reads the
tiles, DSM/DTM and labels where they live (docs/inputs.md). The staging folder (under
FLAIR_STAGING_DIR or the system temp folder) is deleted afterwards, whatever happens.
A project error (bad input, full disk) raised by the asset becomes a non-retried
``dg.Failure`` carrying its one-line message. Each step stages on its own, so it works
unchanged under the multiprocess, Dask or k8s executors, where steps run on different
machines.

``defs/declared.py`` applies it to every asset whose stage declaration
(:mod:`flair_pipeline.stages`) names the dataset files it stages (``Stage.staged``).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg

from flair_pipeline.defs.adapter import as_failure
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.layout import RAW_DOMAIN, PathTemplate, RawLayout
from flair_pipeline.storage import is_url, list_domains, publish, pull, snapshot

F = TypeVar("F", bound=Callable[..., Any])


def staged(
    *dataset_files: PathTemplate,
    raw_folders: bool = False,
    raw_in_place: bool = False,
    raw_domain: bool = True,
) -> Callable[[F], F]:
    """Stage URL roots for one asset step.

    Args:
        *dataset_files: The dataset entries of :mod:`flair_pipeline.layout` the step reads
            (``{domain}`` is the partition key), e.g. ``PATCH_GRID`` or ``AERIAL``; the
            domain's raw folder is staged for a partitioned step (see `raw_domain` and
            `raw_in_place`). Raw-root entries outside it (``RAW_RPG``) are staged too when
            they exist (not required).
        raw_folders: For a step over all domains, stage the raw root's domain folders as
            empty folders (names only, one listing): ``split_assignment`` tells by them
            which built domains are stale.
        raw_in_place: The step reads a URL raw root where it lives (``Stage.raw_in_place``):
            nothing of it is pulled, the step's ``flair`` resource gives the URL
            (``PipelineConfigResource.raw_in_place``) and its readers fetch only the bytes
            they read. A URL dataset root is still staged and published.
        raw_domain: Pull the domain's raw folder from a URL raw root (a partitioned step
            not reading it in place); False for a step that reads none of its files.

    Returns:
        A decorator for an asset function ``fn(context, flair, **resources)``.

    Raises:
        ValueError: An entry is not under the dataset root.
    """
    bad = [t.template for t in dataset_files if t.root not in ("dataset", "raw")]
    if bad:
        raise ValueError(f"staged: {', '.join(bad)} not under the dataset or raw root")
    raw_files = [t for t in dataset_files if t.root == "raw"]
    dataset_files = tuple(t for t in dataset_files if t.root == "dataset")

    def decorate(fn: F) -> F:
        @functools.wraps(fn)  # keeps the signature Dagster reads for context and resources
        def wrapper(
            context: dg.AssetExecutionContext, flair: PipelineConfigResource, **kwargs: Any
        ) -> Any:
            raw, dataset = flair.root_urls()
            if not (is_url(raw) or is_url(dataset)):
                return _run(fn, context, flair, kwargs)
            domain = context.partition_key if context.has_partition_key else None
            folder = Path(
                tempfile.mkdtemp(prefix="flair-stage-", dir=os.environ.get("FLAIR_STAGING_DIR"))
            )
            try:
                local_raw, local_dataset = raw, dataset
                in_place = raw_in_place and is_url(raw)
                if is_url(raw) and not in_place:
                    local_raw = str(folder / "raw")
                    if domain is not None and raw_domain:
                        pull(
                            raw, Path(local_raw), [RAW_DOMAIN.prefix(domain=domain)], required=True
                        )
                    if raw_files:
                        pull(
                            raw, Path(local_raw), [t.prefix(domain=str(domain)) for t in raw_files]
                        )
                    elif raw_folders:
                        for name in list_domains(raw):
                            RawLayout(Path(local_raw)).domain(name).mkdir(parents=True)
                baseline: dict[str, tuple[int, int]] = {}
                if is_url(dataset):
                    local_dataset = str(folder / "dataset")
                    prefixes = [t.prefix(domain=str(domain)) for t in dataset_files]
                    pull(dataset, Path(local_dataset), prefixes)
                    baseline = snapshot(Path(local_dataset))
                roots = flair.with_roots(local_raw, local_dataset, raw_in_place=in_place)
                result = _run(fn, context, roots, kwargs)
                published = (
                    publish(Path(local_dataset), dataset, baseline) if is_url(dataset) else []
                )
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            context.log.info(f"published {len(published)} file(s) to {dataset}")
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


def _run(
    fn: Callable[..., Any], context: Any, flair: PipelineConfigResource, kwargs: dict[str, Any]
) -> Any:
    try:
        return fn(context, flair, **kwargs)
    except FlairPipelineError as exc:
        # bad input, full disk: running the step again cannot help (issue 15)
        raise as_failure(exc) from exc
