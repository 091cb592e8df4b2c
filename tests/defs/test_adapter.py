"""defs/adapter.py: a stage report becomes Dagster metadata, a check and a failure."""

from __future__ import annotations

import dagster as dg
import pytest

from flair_pipeline.dataset.assemble import SplitsReport
from flair_pipeline.defs.adapter import as_failure, metadata, project_failures
from flair_pipeline.errors import InputError


def test_paths_and_markdown_are_typed_other_values_kept() -> None:
    report = SplitsReport(
        path="/d/metadata/splits.csv", rows=(("D033_2021", "train", "official", 4),)
    )
    meta = metadata(report)
    assert isinstance(meta["path"], dg.PathMetadataValue) and meta["path"].value == report.path
    assert isinstance(meta["splits"], dg.MarkdownMetadataValue)
    assert "| D033_2021 | train" in meta["splits"].value
    assert meta["domains"] == 1 and meta["train_patches"] == 4 and meta["test_patches"] == 0


def test_project_errors_fail_without_retry_other_errors_pass() -> None:
    failure = as_failure(InputError("x.tif: not a raster"))
    assert failure.description == "x.tif: not a raster" and failure.allow_retries is False
    with pytest.raises(dg.Failure) as e, project_failures():
        raise InputError("labels.gpkg: code 42")
    assert e.value.allow_retries is False and isinstance(e.value.__cause__, InputError)
    with pytest.raises(OSError), project_failures():
        raise OSError(5, "EIO")  # a transient error stays retryable
