"""defs/adapter.py: a stage report becomes Dagster metadata, a check and a failure."""

from __future__ import annotations

from pathlib import Path

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


def test_training_evaluation_and_comparison_reports_hold_values_the_adapter_draws(
    tmp_path: Path,
) -> None:
    """TrainReport, EvalReport and ComparisonReport give plain JSON (paths, numbers, the
    table's text; no Markdown image); the adapter shows them under the same keys, in the same
    order and with the same values as when they drew themselves. Planted bug (the EvalReport
    entry of FIGURES dropped): ``per_class_iou`` stays a dict and the Markdown check fails."""
    import base64
    import json

    import numpy as np
    from PIL import Image

    from flair_pipeline.evaluation.checkpoint_eval import EvalReport
    from flair_pipeline.evaluation.compare import ComparisonReport
    from flair_pipeline.metrics import Scores
    from flair_pipeline.training.train import TrainReport

    pngs = {}
    for name in ("curves", "confusion", "patches"):
        pngs[name] = tmp_path / f"{name}.png"
        Image.fromarray(np.full((4, 4), len(name), np.uint8)).save(pngs[name])

    def image(alt: str, name: str) -> str:
        return (
            f"![{alt}](data:image/png;base64,{base64.b64encode(pngs[name].read_bytes()).decode()})"
        )

    train = TrainReport(
        model="unet", best_val_miou=0.5, epochs=2, steps=8, wall_s=3.0, images_per_s=10.0,
        train_patches=16, val_patches=4, best_checkpoint="/m/best.ckpt",
        last_checkpoint="/m/last.ckpt", curves_png=str(pngs["curves"]), dvclive="/m/dvclive",
        device="cpu",
    )  # fmt: skip
    # building: 3 of 4 right, 1 taken for water; water: 4 of 4 right
    scores = Scores.from_confusion(np.array([[3, 1], [0, 4]]), names=("building", "water"))
    evaluation = EvalReport(
        model="unet", scores=scores, metrics_json=tmp_path / "metrics.json",
        confusion_csv=tmp_path / "confusion.csv", confusion_png=pngs["confusion"],
        per_domain_csv=tmp_path / "per_domain.csv", patches_png=pngs["patches"],
        predictions=tmp_path / "pred",
    )  # fmt: skip
    table = "| class | unet |\n|---|---|\n| building | 0.7500 |\n"
    comparison = ComparisonReport(table=table, path="/e/comparison.md")

    for report in (train, evaluation, comparison):
        values = report.as_metadata()
        text = json.dumps(values)
        assert json.loads(text) == values and "data:image" not in text
    assert evaluation.as_metadata()["per_class_iou"] == {
        "building": {"iou": 0.75, "f1": 6 / 7, "support": 4},
        "water": {"iou": 0.8, "f1": 8 / 9, "support": 4},
    }

    meta = metadata(train)
    assert list(meta) == [
        "best_val_miou", "epochs", "steps", "wall_time_s", "images_per_s", "train_patches",
        "val_patches", "device", "checkpoint", "curves",
    ]  # fmt: skip
    assert isinstance(meta["checkpoint"], dg.PathMetadataValue)
    assert isinstance(meta["curves"], dg.MarkdownMetadataValue)
    assert meta["curves"].value == image("training curves", "curves")

    meta = metadata(evaluation)
    assert list(meta) == [
        "miou", "overall_accuracy", "test_patches", "per_class_iou", "per_domain_miou",
        "figures", "metrics", "void_pixels",
    ]  # fmt: skip
    assert isinstance(meta["per_class_iou"], dg.MarkdownMetadataValue)
    assert meta["per_class_iou"].value == (
        "| class | IoU | F1 | support |\n|---|---|---|---|\n"
        "| building | 0.7500 | 0.8571 | 4 |\n| water | 0.8000 | 0.8889 | 4 |"
    )
    assert isinstance(meta["figures"], dg.MarkdownMetadataValue)
    assert meta["figures"].value == (
        image("confusion (row-normalised)", "confusion") + "\n\n" + image("test patches", "patches")
    )
    assert isinstance(meta["metrics"], dg.PathMetadataValue)

    meta = metadata(comparison)
    assert list(meta) == ["table", "path"]
    assert isinstance(meta["table"], dg.MarkdownMetadataValue) and meta["table"].value == table
    assert isinstance(meta["path"], dg.PathMetadataValue)
