"""Assets as thin adapters: a stage report to Dagster metadata, checks and failures.

Every asset body reads its resources, calls one core stage function and hands the report to
:func:`result`, which shows its values in the UI and draws its figures (:func:`metadata`;
reports hold values only); a project error becomes a non-retried ``dg.Failure`` through
:func:`as_failure` (one line: running the step again cannot help), the same way in every
asset (:func:`project_failures`, and ``defs/staging.py`` for staged assets).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from flair_pipeline.dataset.metadata_step import MetadataReport
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


def domain_metadata_figures(report: MetadataReport) -> dict[str, Any]:
    """The figures of a domain's metadata step: class-share table and chart, a preview.

    Args:
        report: What :func:`~flair_pipeline.dataset.metadata_step.write_domain_metadata`
            returned (plain values).

    Returns:
        Its :meth:`~flair_pipeline.dataset.metadata_step.MetadataReport.as_metadata`, the
        ``class_shares`` as a Markdown table, then ``class_chart`` (a bar chart) and, when
        the report holds previews, ``preview`` (3 IMG/MSK pairs), both Markdown images;
        every Markdown value as ``MetadataValue.md``.
    """
    import pandas as pd

    from flair_pipeline.plots import class_share_chart, markdown_image, patch_preview

    shares = report.class_shares
    table = pd.DataFrame({"class": list(shares), "share_%": [round(v, 2) for v in shares.values()]})
    out: dict[str, Any] = report.as_metadata()
    out["class_shares"] = dg.MetadataValue.md(table.to_markdown(index=False))
    chart = class_share_chart(shares, report.domain)
    out["class_chart"] = dg.MetadataValue.md(markdown_image(chart, "classes"))
    if report.previews:
        png = patch_preview(*zip(*report.previews, strict=True))
        out["preview"] = dg.MetadataValue.md(markdown_image(png, "preview"))
    return out


def metadata(report: StageReport) -> dict[str, Any]:
    """A report's :meth:`~StageReport.as_metadata` with paths, Markdown and figures for the UI.

    The figures are drawn here, not in the core: a report holds values only
    (:func:`domain_metadata_figures` for a domain's metadata step).

    Args:
        report: A stage report.

    Returns:
        Dagster metadata: ``MetadataValue.path``/``md`` where the report's
        ``metadata_kinds`` say so, the figures of the reports that have some, every other
        JSON value as is.
    """
    if isinstance(report, MetadataReport):
        return domain_metadata_figures(report)
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
) -> dg.MaterializeResult[Any]:
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
