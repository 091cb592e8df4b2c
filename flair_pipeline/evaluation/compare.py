"""The comparison of every evaluated model: one Markdown table (``<paths.eval>/comparison.md``).

Reads each model's ``<paths.eval>/<model>/metrics.json`` (written by
:mod:`flair_pipeline.evaluation.checkpoint_eval`); the table is what ``flair-pipeline demo``
prints and the ``model_comparison`` asset shows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from flair_pipeline.errors import InputError
from flair_pipeline.layout import EvalFiles, comparison
from flair_pipeline.model_registry import TRAINED
from flair_pipeline.reports import JSON, MetadataKind, StageReport

#: the models the evaluation assets evaluate (their folders), in table order
EVALUATED = tuple(m.folder for m in TRAINED)


def comparison_table(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown: one column per model, one row per class (IoU), then mIoU and OA.

    Args:
        metrics: Model name -> its metrics.json content (``per_class`` -> name -> ``iou``,
            ``miou``, ``overall_accuracy``; None where undefined).

    Returns:
        The table, IoU to 4 decimals, ``-`` where undefined, ending with a newline.
    """
    models = list(metrics)
    names = list(next(iter(metrics.values()))["per_class"])
    head = "| class | " + " | ".join(models) + " |"
    lines = [head, "|---" * (len(models) + 1) + "|"]

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    for n in names:
        lines.append(
            f"| {n} | " + " | ".join(cell(metrics[m]["per_class"][n]["iou"]) for m in models) + " |"
        )
    lines.append(
        "| **mIoU (1-12)** | "
        + " | ".join(f"**{cell(metrics[m]['miou'])}**" for m in models)
        + " |"
    )
    lines.append(
        "| overall accuracy | "
        + " | ".join(cell(metrics[m]["overall_accuracy"]) for m in models)
        + " |"
    )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ComparisonReport(StageReport):
    """The comparison table and where it was written."""

    metadata_kinds: ClassVar[Mapping[str, MetadataKind]] = {"path": "path"}

    table: str
    path: str

    def as_metadata(self) -> dict[str, JSON]:
        """The table (Markdown) and its file.

        Plain values: ``table`` is the text written to the file; the Dagster adapter
        (``defs/adapter.py``) shows it as Markdown.

        Returns:
            ``table`` (the Markdown comparison) and ``path`` (where it was written).
        """
        return {"table": self.table, "path": self.path}


def compare_models(eval_dir: str | Path, models: Sequence[str] = EVALUATED) -> ComparisonReport:
    """Write ``<eval_dir>/comparison.md`` from each model's metrics.json.

    Args:
        eval_dir: ``paths.eval``, holding ``<model>/metrics.json``.
        models: The models compared, in column order.

    Returns:
        The :class:`ComparisonReport`.

    Raises:
        InputError: A model's metrics.json is missing (named, with the asset to run).
    """
    from flair_pipeline.evaluation.scoring import write_text

    root = Path(eval_dir)
    metrics = {}
    for m in models:
        f = EvalFiles.of(root, m).metrics
        if not f.is_file():
            raise InputError(f"{f}: missing; materialize evaluation_{m}")
        metrics[m] = json.loads(f.read_text())
    table = comparison_table(metrics)
    path = write_text(comparison(root), table)
    return ComparisonReport(table=table, path=str(path))
