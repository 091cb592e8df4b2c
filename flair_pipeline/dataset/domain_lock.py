"""Per-(stage, domain) build locks next to the data: ``<dataset>/.locks/<stage>/<domain>.lock``.

Why here and not in ``DAGSTER_HOME``: two builds of one domain may come from two Dagster
homes (two users, the UI and a CLI on another home), from ``build-domain`` (no Dagster at
all), from a Dask worker; the one thing they share is the dataset folder. Every step
function of a domain's build (:mod:`~flair_pipeline.dataset.sources_record`,
:mod:`~flair_pipeline.dataset.domain_steps`, :mod:`~flair_pipeline.dataset.metadata_step`)
is wrapped by :func:`holds` and holds its stage's lock (:func:`flair_pipeline.locks.hold`:
``flock``, freed by the kernel when the holder dies) while it runs, so every front door
holds it. A second build of the same stage and domain **waits** for the first, after one
line naming the holder (pid, host, since when), then rebuilds: the folder on disk is one
generation, the second's, and both report success truthfully.

Whole-domain builds hold every stage's lock for the whole build (taken in sorted order,
so two builds never deadlock): :func:`~flair_pipeline.dataset.build.build_domain_patches`
(``build-domain``) and the CLI's ``materialize`` (``orchestration/run.py``). Dagster runs
launched from the UI or the sensor hold one step's lock at a time; the steps of two such
runs of one domain from two homes may interleave (one home's run queue serialises its own
runs), and the metadata step, which holds the IMG and MSK locks while it reads them, checks
that every IMG and MSK lies on the current patch grid (``img_msk_pairs``).

Object storage (``s3://`` roots): a step works on a private local staging copy
(``defs/staging.py``), so its lock lives in that copy and excludes nothing; concurrent builds
of one domain on object storage are serialised only by one Dagster instance's run queue
(docs/operations.md).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

from flair_pipeline.layout import DatasetLayout
from flair_pipeline.locks import hold

#: The stages of a domain's build, as the Dagster assets name them.
STAGES = (
    "domain_sources",
    "patch_grid",
    "aerial_patches",
    "label_masks",
    "crop_labels",
    "dataset_metadata",
)

P = ParamSpec("P")
R = TypeVar("R")


def stage_lock_path(root: Path, stage: str, domain: str) -> Path:
    """The lock file of one stage of one domain.

    Args:
        root: The dataset root.
        stage: One of :data:`STAGES`.
        domain: A domain id such as ``D033_2021``.

    Returns:
        ``<root>/.locks/<stage>/<domain>.lock``.

    Raises:
        ValueError: `stage` is not one of :data:`STAGES`.
    """
    if stage not in STAGES:
        raise ValueError(f"{stage!r} is not a dataset stage (expected one of {STAGES})")
    return DatasetLayout(Path(root)).stage_lock(stage, domain)


@contextmanager
def stage_locks(
    dataset: DatasetLayout | Path,
    stages: Iterable[str],
    domain: str,
    log: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the lock of each of `stages` for `domain` (sorted order) for the block.

    Args:
        dataset: The dataset (or its root) the stages write.
        stages: Some of :data:`STAGES`.
        domain: A domain id.
        log: Where a "waiting for another build" line goes; None: stderr.

    Yields:
        Nothing; the locks are held inside the block (re-entrant for this thread).

    Raises:
        ValueError: A stage is not one of :data:`STAGES`.
        StorageError: A lock file cannot be created, or its file system has no locks.
    """
    root = dataset.root if isinstance(dataset, DatasetLayout) else Path(dataset)
    with ExitStack() as stack:
        for stage in sorted(set(stages)):
            path = stage_lock_path(root, stage, domain)
            stack.enter_context(hold(path, f"domain {domain}", stage, log))
        yield


def holds(*stages: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a step ``fn(ctx, ...)`` or ``fn(domain, raw, dataset, ...)`` to run under its locks.

    ``ctx`` is a :class:`~flair_pipeline.dataset.domain_context.DomainContext` (its
    ``domain`` and ``dataset``).

    Args:
        *stages: The stages whose lock the step holds (its own; the metadata step also
            those of the IMG and MSK it reads).

    Returns:
        The decorator.

    Raises:
        ValueError: A stage is not one of :data:`STAGES`.
    """
    for stage in stages:
        stage_lock_path(Path(), stage, "D000_0000")  # names checked at import

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args: P.args, **kwargs: P.kwargs) -> R:
            given = signature.bind(*args, **kwargs).arguments
            ctx = given.get("ctx")  # a DomainContext, or the step's own domain and dataset
            dataset = ctx.dataset if ctx is not None else given["dataset"]
            domain = ctx.domain if ctx is not None else given["domain"]
            with stage_locks(dataset, stages, str(domain)):
                return fn(*args, **kwargs)

        return locked

    return decorate
