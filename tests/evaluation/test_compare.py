"""compare_models without Dagster: the table from each model's metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.compare import compare_models


def _metrics(folder: Path, building: float | None, water: float, miou: float, oa: float) -> None:
    folder.mkdir(parents=True)
    per_class = {"building": {"iou": building}, "water": {"iou": water}}
    data = {"per_class": per_class, "miou": miou, "overall_accuracy": oa}
    (folder / "metrics.json").write_text(json.dumps(data))


def test_table_has_a_column_per_model_and_a_row_per_class(tmp_path: Path) -> None:
    _metrics(tmp_path / "unet", 0.5, 0.25, 0.375, 0.8)
    _metrics(tmp_path / "utt", None, 0.123456, 0.2, 0.75)
    report = compare_models(tmp_path)
    assert report.table == (
        "| class | unet | utt |\n"
        "|---|---|---|\n"
        "| building | 0.5000 | - |\n"
        "| water | 0.2500 | 0.1235 |\n"
        "| **mIoU (1-12)** | **0.3750** | **0.2000** |\n"
        "| overall accuracy | 0.8000 | 0.7500 |\n"
    )
    assert (tmp_path / "comparison.md").read_text() == report.table
    assert report.as_metadata() == {"table": report.table, "path": str(tmp_path / "comparison.md")}


def test_a_missing_evaluation_is_named(tmp_path: Path) -> None:
    _metrics(tmp_path / "unet", 0.5, 0.25, 0.375, 0.8)
    with pytest.raises(InputError, match=r"utt/metrics\.json: missing; materialize evaluation_utt"):
        compare_models(tmp_path)
    assert not (tmp_path / "comparison.md").exists()
