"""Assets as thin adapters: a stage report to Dagster metadata, checks and failures.

Every asset body reads its resources, calls one core stage function and hands the report to
:func:`result`, which shows its values in the UI and draws its figures (:func:`metadata`;
reports hold values only); a project error becomes a non-retried ``dg.Failure`` through
:func:`as_failure` (one line: running the step again cannot help), the same way in every
asset (:func:`project_failures`, and ``defs/staging.py`` for staged assets).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg
import rasterio.errors

from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.progress import STDERR_TAG, Progress
from flair_pipeline.reports import StageReport

if TYPE_CHECKING:  # annotations only: the stages' code is not imported by every asset (DVC deps)
    from flair_pipeline.dataset.assemble import SplitsReport
    from flair_pipeline.dataset.metadata_step import MetadataReport
    from flair_pipeline.evaluation.checkpoint_eval import EvalReport
    from flair_pipeline.evaluation.compare import ComparisonReport
    from flair_pipeline.sentinel2.build import SeriesReport
    from flair_pipeline.training.train import TrainReport


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
    """  # noqa: DOC501 (as_failure() builds the dagster.Failure named above)
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
        ``class_shares`` as a Markdown table, then ``class_chart`` (a bar chart) and, when
        the report holds previews, ``preview`` (3 IMG/MSK pairs), Markdown images; each a
        ``MetadataValue.md``.
    """
    import pandas as pd

    from flair_pipeline.plots import class_share_chart, markdown_image, patch_preview

    shares = report.class_shares
    table = pd.DataFrame({"class": list(shares), "share_%": [round(v, 2) for v in shares.values()]})
    chart = class_share_chart(shares, report.domain)
    out: dict[str, Any] = {
        "class_shares": dg.MetadataValue.md(table.to_markdown(index=False)),
        "class_chart": dg.MetadataValue.md(markdown_image(chart, "classes")),
    }
    if report.previews:
        png = patch_preview(*zip(*report.previews, strict=True))
        out["preview"] = dg.MetadataValue.md(markdown_image(png, "preview"))
    return out


def split_table(report: SplitsReport) -> dict[str, Any]:
    """The split of every domain as a Markdown table (``splits``).

    Args:
        report: What :func:`~flair_pipeline.dataset.assemble.assemble_splits` returned.

    Returns:
        ``{"splits": MetadataValue.md(table)}``: domain, split, rule, patches.
    """
    import pandas as pd

    table = pd.DataFrame(list(report.rows), columns=["domain", "split", "rule", "patches"])
    return {"splits": dg.MetadataValue.md(table.to_markdown(index=False))}


def series_figures(report: SeriesReport) -> dict[str, Any]:
    """The NDVI profiles by class of a domain's Sentinel-2 series (``ndvi_by_class``).

    Args:
        report: What :func:`~flair_pipeline.sentinel2.build.build_domain_series` returned.

    Returns:
        ``{"ndvi_by_class": MetadataValue.md(image)}``, or ``{}`` without profiles.
    """
    if not report.profiles:
        return {}
    from flair_pipeline.plots import markdown_image, ndvi_profiles

    png = ndvi_profiles(report.profiles, report.domain)
    return {"ndvi_by_class": dg.MetadataValue.md(markdown_image(png, "NDVI"))}


def training_curves(report: TrainReport) -> dict[str, Any]:
    """The training curves of a model as an image (``curves``).

    Args:
        report: What :func:`~flair_pipeline.training.train.train_model` returned.

    Returns:
        ``{"curves": MetadataValue.md(image)}``, the PNG at ``report.curves_png``.
    """
    from flair_pipeline.plots import markdown_image

    with open(report.curves_png, "rb") as f:
        return {"curves": dg.MetadataValue.md(markdown_image(f.read(), "training curves"))}


def evaluation_figures(report: EvalReport) -> dict[str, Any]:
    """A model's per-class scores as a Markdown table and its two figures as images.

    Args:
        report: What :func:`~flair_pipeline.evaluation.checkpoint_eval.evaluate_checkpoint`
            returned.

    Returns:
        ``per_class_iou`` (class, IoU, F1, support) and ``figures`` (the row-normalised
        confusion matrix, then the test patches), each a ``MetadataValue.md``.
    """
    from flair_pipeline.plots import markdown_image

    s = report.scores
    rows = ["| class | IoU | F1 | support |", "|---|---|---|---|"]
    rows += [
        f"| {n} | {s.iou[i]:.4f} | {s.f1[i]:.4f} | {int(s.support[i])} |"
        for i, n in enumerate(s.names)
    ]
    images = markdown_image(report.confusion_png.read_bytes(), "confusion (row-normalised)")
    images += "\n\n" + markdown_image(report.patches_png.read_bytes(), "test patches")
    return {
        "per_class_iou": dg.MetadataValue.md("\n".join(rows)),
        "figures": dg.MetadataValue.md(images),
    }


def comparison_table(report: ComparisonReport) -> dict[str, Any]:
    """The comparison of the evaluated models as Markdown (``table``).

    Args:
        report: What :func:`~flair_pipeline.evaluation.compare.compare_models` returned.

    Returns:
        ``{"table": MetadataValue.md(report.table)}``.
    """
    return {"table": dg.MetadataValue.md(report.table)}


def figures(report: StageReport) -> dict[str, Any]:
    """What the UI shows of a report beyond its values: its tables and figures, drawn here.

    Args:
        report: A stage report (values only).

    Returns:
        Dagster metadata values keyed as the UI shows them; ``{}`` for a report without.
    """
    cls = type(report)
    draw = FIGURES.get(f"{cls.__module__}.{cls.__qualname__}")
    return draw(report) if draw is not None else {}


#: The reports with tables or figures (by class path, so that this module imports none of
#: the stages: each asset's DVC code deps stay its own stage's) and what draws them.
FIGURES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "flair_pipeline.dataset.metadata_step.MetadataReport": domain_metadata_figures,
    "flair_pipeline.dataset.assemble.SplitsReport": split_table,
    "flair_pipeline.sentinel2.build.SeriesReport": series_figures,
    "flair_pipeline.training.train.TrainReport": training_curves,
    "flair_pipeline.evaluation.checkpoint_eval.EvalReport": evaluation_figures,
    "flair_pipeline.evaluation.compare.ComparisonReport": comparison_table,
}


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
    """  # noqa: DOC501 (as_failure() builds the dagster.Failure named above)
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
    """A report's :meth:`~StageReport.as_metadata` with paths typed and figures drawn for the UI.

    A report holds values only; its tables and figures are drawn here (:func:`figures`),
    each in place of the value it shows or after the values.

    Args:
        report: A stage report.

    Returns:
        Dagster metadata: ``MetadataValue.path``/``md`` where the report's
        ``metadata_kinds`` say so, the tables and figures of :func:`figures`, every other
        JSON value as is.
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
    out.update(figures(report))  # a key already there keeps its place
    return out


def progress(context: dg.AssetExecutionContext) -> Progress:
    """The progress of a long stage as lines of the run's log (one per 5 %, and at the end).

    In a run tagged ``flair/progress: stderr`` (the CLI's ``materialize``, in process) the
    progress shows on stderr too: a bar on a terminal, else the same lines.

    Args:
        context: The asset's context; each line goes to ``context.log.info``, after the
            asset's name (``aerial_patches D033_2021 IMG: 120/2400 (5 %), …``).

    Returns:
        The :class:`~flair_pipeline.progress.Progress` to hand to the stage function.
    """
    prefix = context.asset_key.to_user_string()
    if context.run.tags.get(STDERR_TAG) != "stderr":
        return Progress(context.log.info, prefix=prefix)
    if sys.stderr.isatty():
        return Progress(context.log.info, bar=sys.stderr, prefix=prefix)

    def both(line: str) -> None:
        context.log.info(line)
        print(line, file=sys.stderr, flush=True)

    return Progress(both, prefix=prefix)


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
