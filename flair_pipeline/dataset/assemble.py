"""Assemble the built domains into one dataset: the split and the merged aerial metadata.

FLAIR splits by domain, never by patch (:mod:`flair_pipeline.dataset.splits`); this stage
reads every domain's ``metadata/domains/<domain>.json``, writes ``metadata/splits.csv`` and
the merged ``metadata/aerial_metadata.json``, and checks that no patch key belongs to two
domains (split leakage).

A domain built earlier whose folder is no longer among the raw inputs (removed, renamed)
is **stale**: its files stay on disk, untouched, but it is left out of ``splits.csv`` and
``aerial_metadata.json``, named in one warning line and in the report's ``stale_domains``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from flair_pipeline.config import SplitConfig
from flair_pipeline.dataset import aerial_metadata as md
from flair_pipeline.dataset.splits import assign_splits, write_splits
from flair_pipeline.io import remove_stale_temps
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.reports import JSON, MetadataKind, StageReport

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitsReport(StageReport):
    """The split of every built domain; check no_split_leakage."""

    metadata_kinds: ClassVar[Mapping[str, MetadataKind]] = {"path": "path"}

    path: str
    #: (domain, split, rule, patches), sorted by domain
    rows: tuple[tuple[str, str, str, int], ...]
    leaks: tuple[str, ...] = ()  # "<IMG key> in <domain> and <domain>"
    #: built domains whose raw folder is gone: left out of the split
    stale: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def problems(self) -> tuple[str, ...]:  # type: ignore[override]
        """``no_split_leakage``: the patch keys found in two domains."""
        return self.leaks

    def patches(self, split: str) -> int:
        """Number of patches in `split` (``train``, ``validation`` or ``test``).

        Args:
            split: The split.

        Returns:
            Its patches over every domain.
        """
        return sum(n for _, s, _, n in self.rows if s == split)

    def as_metadata(self) -> dict[str, JSON]:
        """Domain count, patches per split, the split rows and splits.csv (plain values).

        ``splits`` is one ``[domain, split, rule, patches]`` list per domain; the Dagster
        adapter (``defs/adapter.py``) shows it as a table.

        Returns:
            ``domains``, ``<split>_patches``, ``splits`` (rows), ``stale_domains``, ``path``.
        """
        return {
            "domains": len(self.rows),
            **{f"{s}_patches": self.patches(s) for s in SPLITS},
            "splits": [list(r) for r in self.rows],
            "stale_domains": list(self.stale),
            "path": self.path,
        }

    def check_metadata(self) -> dict[str, JSON]:
        """The first 20 leaks.

        Returns:
            ``leaks``: up to 20 lines ``<IMG key> in <domain> and <domain>``.
        """
        return {"leaks": list(self.leaks[:20])}


def assemble_splits(dataset: DatasetLayout, cfg: SplitConfig, raw: RawLayout) -> SplitsReport:
    """Assign every built domain a split and merge their aerial metadata.

    Args:
        dataset: The dataset root (read: ``metadata/domains/*.json``; written:
            ``metadata/splits.csv``, ``metadata/aerial_metadata.json``).
        cfg: The ``split`` section (mapping, ratios, salt).
        raw: The raw data root: a built domain without a folder there is stale and left
            out (one warning line names them all).

    Returns:
        The :class:`SplitsReport`, with any patch key found in two domains as a leak and
        the stale domains.

    Raises:
        FlairPipelineError: ``split.mapping`` moves an official FLAIR domain.
        DomainIdError: A domain file whose name is not a domain id.
    """
    remove_stale_temps(dataset.splits, dataset.aerial_metadata)
    files = sorted(
        f for f in dataset.domain_metadata_dir.glob("*.json") if not f.name.startswith(".")
    )
    stale = tuple(f.stem for f in files if not raw.domain(f.stem).is_dir())
    per_domain = {f.stem: json.loads(f.read_text()) for f in files if f.stem not in stale}
    warnings: tuple[str, ...] = ()
    if stale:
        warnings = (
            f"{len(stale)} built domain(s) with no folder under {raw.domains_dir} left "
            f"out of the split: {', '.join(stale)}; restore their raw inputs, or delete their "
            "files (metadata/domains/<id>.json, aerial/<id>, labels/<id>) to silence this",
        )
    assignment = assign_splits(per_domain, cfg)
    write_splits(assignment, dataset.splits)
    merged: dict[str, object] = {}
    owners: dict[str, str] = {}
    leaks = []
    for d, data in sorted(per_domain.items()):
        for key, value in data["patches"].items():
            if key in owners:
                leaks.append(f"{key} in {owners[key]} and {d}")
            owners[key] = d
            merged[key] = value
    md.write_json(merged, dataset.aerial_metadata)
    rows = tuple((d, str(s), r, len(per_domain[d]["patches"])) for d, (s, r) in assignment.items())
    return SplitsReport(
        path=str(dataset.splits), rows=rows, leaks=tuple(leaks), stale=stale, warnings=warnings
    )
