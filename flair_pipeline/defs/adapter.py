"""Assets as thin adapters: a stage report to Dagster metadata, checks and failures.

Every asset body reads its resources, calls one core stage function and hands the report to
:func:`result`; a project error becomes a non-retried ``dg.Failure`` through
:func:`as_failure` (one line: running the step again cannot help), the same way in every
asset (:func:`project_failures`, and ``defs/staging.py`` for staged assets).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
import rasterio.errors

from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.progress import Progress
from flair_pipeline.reports import StageReport


def as_failure(exc: FlairPipelineError) -> dg.Failure:
    """The non-retried Dagster failure of a project error, its message as description.

    Args:
        exc: Bad input, bad config, a full disk: anything a retry cannot fix.

    Returns:
        A ``dg.Failure`` with ``allow_retries=False`` (raise it ``from exc``).
    """
    return dg.Failure(description=str(exc), allow_retries=False)


@contextlib.contextmanager
def project_failures() -> Iterator[None]:
    """Turn a :class:`FlairPipelineError` raised inside into :func:`as_failure`'s failure.

    Raises:
        dagster.Failure: For a project error; other exceptions pass unchanged.
    """
    try:
        yield
    except FlairPipelineError as exc:
        raise as_failure(exc) from exc


def transient(exc: BaseException) -> bool:
    """Whether a retry of the step may succeed.

    Args:
        exc: what the step raised.

    Returns:
        True for OS-level I/O errors (connection reset, timeout, EIO), not for a missing
        file, a permission or a raster GDAL cannot read.
    """
    permanent = (
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
        rasterio.errors.RasterioError,
    )
    return isinstance(exc, OSError) and not isinstance(exc, permanent)


@contextlib.contextmanager
def retried_failures(step: str) -> Iterator[None]:
    """The error policy of an asset with a retry policy (network providers, issue 15).

    A project error (bad input, or a provider that already retried with back-off) fails
    now, not retried (:func:`as_failure`); a :func:`transient` error passes unchanged so
    the asset's retry policy may get past it; anything else (a bug, a library error on a
    bad file) would fail the same way on a retry: one non-retried line now rather than the
    same trace three times.

    Args:
        step: names the step in the failure line (``"<partition>: <asset>"``).

    Raises:
        dagster.Failure: a project error, or a non-transient other error.
    """
    try:
        yield
    except FlairPipelineError as exc:
        raise as_failure(exc) from exc
    except Exception as exc:
        if transient(exc):
            raise
        raise dg.Failure(
            description=f"{step} failed, not retried ({type(exc).__name__}: {exc})",
            allow_retries=False,
        ) from exc


def metadata(report: StageReport) -> dict[str, Any]:
    """A report's :meth:`~StageReport.as_metadata` with paths and Markdown typed for the UI.

    Args:
        report: A stage report.

    Returns:
        Dagster metadata: ``MetadataValue.path``/``md`` where the report's
        ``metadata_kinds`` say so, every other JSON value as is.
    """
    kinds: Mapping[str, str] = report.metadata_kinds
    out: dict[str, Any] = {}
    for key, value in report.as_metadata().items():
        kind = kinds.get(key)
        if kind == "path":
            out[key] = dg.MetadataValue.path(str(value))
        elif kind == "md":
            out[key] = dg.MetadataValue.md(str(value))
        else:
            out[key] = value
    return out


def progress(context: dg.AssetExecutionContext) -> Progress:
    """The progress of a long stage as lines of the run's log (one per 5 %, and at the end).

    Args:
        context: The asset's context; each line goes to ``context.log.info``, after the
            asset's name (``aerial_patches D033_2021 IMG: 120/2400 (5 %), …``).

    Returns:
        The :class:`~flair_pipeline.progress.Progress` to hand to the stage function.
    """
    return Progress(context.log.info, prefix=context.asset_key.to_user_string())


def log_warnings(context: dg.AssetExecutionContext, report: StageReport) -> None:
    """Each of the report's warning lines as one warning of the run's log."""
    for line in report.warnings:
        context.log.warning(line)


def result(
    context: dg.AssetExecutionContext,
    report: StageReport,
    check: str | None = None,
    data_version: str | None = None,
) -> dg.MaterializeResult:
    """The materialization of an asset from its stage report.

    Args:
        context: The asset's context (the report's warnings are logged on it).
        report: What the stage function returned.
        check: The asset's check name, if it has one: passed iff ``report.passed``,
            with ``report.check_metadata()``.
        data_version: The asset's data version, when the report carries one.

    Returns:
        A ``dg.MaterializeResult`` with the metadata of :func:`metadata`.
    """
    log_warnings(context, report)
    checks = []
    if check is not None:
        checks.append(
            dg.AssetCheckResult(
                check_name=check, passed=report.passed, metadata=report.check_metadata()
            )
        )
    return dg.MaterializeResult(
        metadata=metadata(report),
        check_results=checks or None,
        data_version=dg.DataVersion(data_version) if data_version else None,
    )
