"""A domain's crop-type labels: ``CROP_<id>.tif`` next to each MSK, from the domain's RPG.

The step of the ``crop_labels`` asset. A domain's RPG is ``<raw>/rpg/<domain>.gpkg`` (the
parcels of the domain's year: the id's year names it); the tables are
``<raw>/rpg/lpis_level1.csv`` (required), ``lpis_level2.csv`` and ``lpis_level3.csv``
(optional), with the backgrounds of levels 2 and 3 in ``lpis_backgrounds.json``
(``{"2": 0, "3": 0}``). A domain without an RPG file gets no crop labels, and its report says
so. Every patch of the grid gets a file (3 bands uint8,
:mod:`~flair_pipeline.dataset.crop_labels`); ``crop_labels/<domain>`` is replaced as one
generation. The check ``crop_codes``: 3 bands of the patch size, level 1 in IGN's 0..22.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import rasterio
from rasterio.transform import from_origin

from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.domain_lock import holds
from flair_pipeline.dataset.generation import new_generation
from flair_pipeline.errors import InputError
from flair_pipeline.geo.crop_tables import BACKGROUND_L1, CropTables, load_crop_tables
from flair_pipeline.geo.crs import same_crs
from flair_pipeline.geo.label_mapping import label_crs
from flair_pipeline.layout import CROP, CROP_LABELS, RAW_RPG, RAW_RPG_PARCELS
from flair_pipeline.progress import Progress, each
from flair_pipeline.reports import JSON, MetadataKind, StageReport

#: The Lambert-93 grid every patch is on.
_CRS = "EPSG:2154"
#: Table files in ``<raw>/rpg/``.
TABLE_FILES = ("lpis_level1.csv", "lpis_level2.csv", "lpis_level3.csv")
BACKGROUNDS_FILE = "lpis_backgrounds.json"


@dataclass(frozen=True)
class CropLabelsReport(StageReport):
    """CROP files of a domain: written, class pixels, what they came from; check crop_codes."""

    metadata_kinds: ClassVar[Mapping[str, MetadataKind]] = {"rpg": "path"}

    domain: str
    written: int
    rpg: str | None
    source: dict[str, Any] = field(default_factory=dict)
    pixels_per_class: dict[str, int] = field(default_factory=dict)
    decisions: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def as_metadata(self) -> dict[str, JSON]:
        """Files written, level-1 pixels per class, the RPG and tables, decisions.

        Returns:
            ``written`` (int), ``rpg`` (path or None), ``source`` (parcels, repairs, each
            level's table and background), ``pixels_per_class`` (level-1 class as str ->
            pixels) and ``decisions``.
        """
        return {
            "written": self.written,
            "rpg": self.rpg,
            "source": json.loads(json.dumps(self.source)),
            "pixels_per_class": dict(self.pixels_per_class),
            "decisions": list(self.decisions),
        }

    def check_metadata(self) -> dict[str, JSON]:
        """The first 20 problems and how many files were checked.

        Returns:
            ``problems`` and ``checked``.
        """
        return {"problems": list(self.problems[:20]), "checked": self.written}


def domain_tables(raw_root: Path) -> CropTables:
    """The LPIS tables of the raw root (``<raw>/rpg/``, module docstring).

    Args:
        raw_root: The raw data root.

    Returns:
        The checked tables.

    Raises:
        InputError: The level-1 table is missing, the backgrounds file is unreadable, or a
            table is refused (one line naming the file).
    """
    folder = RAW_RPG.under(raw_root)
    paths = [folder / name for name in TABLE_FILES]
    if not paths[0].exists():
        raise InputError(
            f"{paths[0]} does not exist: the RPG's level-1 table (code_cultu,class) is "
            "required to make crop labels (docs/inputs.md)"
        )
    backgrounds: dict[str, int] = {}
    bg_path = folder / BACKGROUNDS_FILE
    if bg_path.exists():
        try:
            backgrounds = {str(k): int(v) for k, v in json.loads(bg_path.read_text()).items()}
        except (ValueError, TypeError, AttributeError) as exc:
            raise InputError(
                f'{bg_path}: not a JSON object of level -> background ({{"2": 0}}): {exc}'
            ) from None
    return load_crop_tables(
        paths[0],
        paths[1] if paths[1].exists() else None,
        paths[2] if paths[2].exists() else None,
        background2=backgrounds.get("2"),
        background3=backgrounds.get("3"),
    )


@holds("crop_labels")
def build_domain_crop_labels(
    ctx: DomainContext, *, progress: Progress | None = None
) -> CropLabelsReport:
    """Write ``CROP_<id>.tif`` of every grid patch from the domain's RPG (if it has one).

    Holds the domain's ``crop_labels`` lock while it runs (another build of it waits,
    :mod:`~flair_pipeline.dataset.domain_lock`).

    Args:
        ctx: The domain's build (its patch grid; ``sampling``); writes ``crop_labels/<domain>``.
        progress: Where to show the count of patches written (``<domain> CROP``), or None.

    Returns:
        The :class:`CropLabelsReport`; no files and a decision line for a domain without
        an RPG file.

    Raises:
        InputError: The RPG or a table is refused (one line naming the file).
        StorageError: A file could not be written (nothing swapped in).
    """
    from flair_pipeline.dataset.crop_labels import CropIndex, write_crop_labels  # OGR

    domain, raw_root = ctx.domain, ctx.raw.local_root
    rpg = RAW_RPG_PARCELS.under(raw_root, domain=domain)
    if not rpg.exists():
        return CropLabelsReport(
            domain=domain,
            written=0,
            rpg=None,
            decisions=(f"{domain}: no RPG file {rpg}: no crop labels for this domain",),
        )
    tables = domain_tables(raw_root)
    grid = ctx.grid
    size, res = ctx.cfg.sampling.patch_size, ctx.cfg.sampling.resolution
    # Only the parcels near the grid when the RPG is on the grid's CRS (a department's or
    # France's file): codes far from the domain need no table row.
    bbox = None
    if len(grid) and same_crs(label_crs(rpg), _CRS):
        x0, y0, x1, y1 = (float(v) for v in grid.total_bounds)
        bbox = (x0, y0, x1, y1)
    index = CropIndex.from_file(rpg, tables, bbox=bbox)
    source = index.describe()
    decisions = [
        f"level {lv}: {d['decision']}"
        for lv, d in enumerate(source["levels"].values(), 1)
        if "decision" in d
    ]
    if source.get("layer_decision"):
        decisions.append(str(source["layer_decision"]))
    counts = np.zeros(256, np.int64)
    problems: list[str] = []
    written = 0
    with new_generation(ctx.dataset.root, CROP_LABELS.all_domains().rel, domain) as stage:
        rows: list[Any] = list(grid.itertuples())
        for row in each(progress, f"{domain} CROP", rows, "patches"):
            minx, _, _, maxy = row.geometry.bounds
            transform = from_origin(minx, maxy, res, res)
            labels = index.labels(transform, (size, size), _CRS)
            path = CROP.under(stage, domain=row.domain, zone=row.zone, patch_id=row.patch_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_crop_labels(path, labels, transform, _CRS)
            written += 1
            with rasterio.open(path) as src:  # the check reads what was written
                got = src.read()
            if got.shape != (3, size, size) or got.dtype != np.uint8:
                problems.append(f"CROP_{row.patch_id}: shape {got.shape} {got.dtype}")
                continue
            counts += np.bincount(got[0].ravel(), minlength=256)
            unknown = sorted(set(np.unique(got[0]).tolist()) - set(range(BACKGROUND_L1 + 1)))
            if unknown:
                problems.append(f"CROP_{row.patch_id}: level-1 classes {unknown}")
    return CropLabelsReport(
        domain=domain,
        written=written,
        rpg=str(rpg),
        source=source,
        pixels_per_class={str(c): int(counts[c]) for c in range(256) if counts[c]},
        decisions=tuple(decisions),
        problems=tuple(problems),
    )
