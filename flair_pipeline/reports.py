"""What every stage function returns: a frozen report, its metadata and its check.

A stage of the pipeline (a domain's patches, the split, a domain's Sentinel-2 series, the
model comparison) is one plain function that returns a report (rslearn's
``handler_summaries``, eo-learn's execution stats): the numbers a person wants to see
(:meth:`StageReport.as_metadata`, plain JSON values), the problems a blocking check fails on
(:attr:`StageReport.problems`) and the warning lines a run shows (:attr:`StageReport.warnings`).
A report holds values only (numbers, names, class shares, preview arrays): front doors render
it, the Dagster assets as materialization metadata, tables, figures and an asset check
(``defs/adapter.py``: ``FIGURES`` says which report has which), the CLI as text. Nothing
here imports Dagster or draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

#: How a front door should show a metadata value that is a plain string: a file path or
#: Markdown (tables, images as data URLs). Every other value is shown as its JSON type.
MetadataKind = Literal["path", "md"]

JSON = Any  # None, bool, int, float, str, lists and dicts of them


class StageReport:
    """Mixin of the frozen dataclasses stage functions return.

    Subclasses set :attr:`metadata_kinds` and override :meth:`as_metadata`; those with a
    blocking check set :attr:`problems` (empty: passed) and override :meth:`check_metadata`.
    """

    #: metadata key -> how its string value is shown (see :data:`MetadataKind`)
    metadata_kinds: ClassVar[Mapping[str, MetadataKind]] = {}
    warnings: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def as_metadata(self) -> dict[str, JSON]:
        """The stage's figures as JSON values, keyed as the Dagster UI shows them.

        Returns:
            A dict of JSON-serialisable values (no Dagster types).
        """
        return {}

    @property
    def passed(self) -> bool:
        """Whether the stage's check passes: no problem found."""
        return not self.problems

    def check_metadata(self) -> dict[str, JSON]:
        """What the stage's check records besides pass/fail (the first 20 problems).

        Returns:
            A dict of JSON-serialisable values.
        """
        return {"problems": list(self.problems[:20])}
