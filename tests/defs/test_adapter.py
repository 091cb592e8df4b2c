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


def test_a_domain_metadata_report_holds_values_and_the_adapter_draws_its_figures() -> None:
    """MetadataReport.as_metadata is plain JSON (the class shares as numbers); the adapter
    turns it into the UI's table, chart and preview under the same keys as before. Planted
    bug (the Markdown table drawn back in as_metadata): the json/equality assertion fails."""
    import json

    import numpy as np

    from flair_pipeline.dataset.metadata_step import MetadataReport

    img = np.zeros((5, 8, 8), np.uint8)
    msk = np.ones((8, 8), np.uint8)
    report = MetadataReport(
        domain="D033_2021",
        path="/d/metadata/domains/D033_2021.json",
        patches=2,
        zones=1,
        skipped=("p3: no MSK",),
        class_shares={"building": 60.0, "water": 40.0},
        previews=((img, msk, "IMG_p1 (Z1_UA)"),),
    )
    values = report.as_metadata()
    assert json.loads(json.dumps(values)) == {
        "patches": 2,
        "skipped": ["p3: no MSK"],
        "zones": 1,
        "class_shares": {"building": 60.0, "water": 40.0},
    }
    meta = metadata(report)
    assert list(meta) == ["patches", "skipped", "zones", "class_shares", "class_chart", "preview"]
    table = meta["class_shares"]
    assert isinstance(table, dg.MarkdownMetadataValue)
    rows = [r.split("|")[1:3] for r in table.value.splitlines()[2:]]  # after header and rule
    assert [(a.strip(), float(b)) for a, b in rows] == [("building", 60.0), ("water", 40.0)]
    for key in ("class_chart", "preview"):
        assert isinstance(meta[key], dg.MarkdownMetadataValue)
        assert meta[key].value.startswith("![") and "data:image/png;base64," in meta[key].value


def test_every_report_with_figures_is_named_by_its_real_class_path() -> None:
    """The adapter finds a report's figures by class path (it imports no stage); a renamed
    or moved report would lose its figures silently. Planted bug (a key misspelt): the
    import fails here."""
    import importlib

    from flair_pipeline.defs.adapter import FIGURES
    from flair_pipeline.reports import StageReport

    for path in FIGURES:
        module, name = path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, StageReport) and f"{cls.__module__}.{cls.__qualname__}" == path
