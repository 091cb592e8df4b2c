"""A domain's metadata step: every IMG paired with its MSK, FLAIR's aerial metadata JSON.

The ``dataset_metadata`` asset's function, the last step of a domain's build
(:mod:`flair_pipeline.dataset.build`): ``metadata/domains/<domain>.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio

from flair_pipeline import layout as L
from flair_pipeline.config import PipelineConfig
from flair_pipeline.dataset import aerial_metadata as md
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.domain_lock import holds
from flair_pipeline.dataset.generation import recover
from flair_pipeline.dataset.mosaic import Mosaic, mosaic_options
from flair_pipeline.dataset.patch_writers import Elevation
from flair_pipeline.dataset.sampling import read_area_record
from flair_pipeline.io import remove_stale_temps
from flair_pipeline.reports import JSON, StageReport
from flair_pipeline.sources.domain_spec import DomainInputs
from flair_pipeline.storage import vector_location


@dataclass(frozen=True)
class MetadataReport(StageReport):
    """A domain's aerial metadata and class shares (``metadata/domains/<domain>.json``).

    Its check is img_msk_pairs (every kept IMG has a MSK on the same grid).
    """

    domain: str
    path: str
    patches: int
    zones: int
    skipped: tuple[str, ...]  # "<patch id>: no IMG|MSK"
    class_shares: dict[str, float]  # % of each of the 13 training classes
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: up to 3 (IMG 5×H×W uint8, MSK H×W uint8, title) for the preview figure
    previews: tuple[tuple[np.ndarray, np.ndarray, str], ...] = field(
        default=(), compare=False, repr=False
    )

    @property
    def passed(self) -> bool:
        """No IMG/MSK pair on different grids, and at least one pair."""
        return not self.problems and self.patches > 0

    def as_metadata(self) -> dict[str, JSON]:
        """Counts, the first 50 skipped patches and the class shares (% by class name).

        Plain values: the Dagster adapter (``defs/adapter.py``) shows the class shares as a
        table and chart, and :attr:`previews` as a figure.

        Returns:
            A JSON-serialisable dict: ``patches`` and ``zones`` (ints), ``skipped`` (the first
            50 "<patch id>: no IMG|MSK" lines) and ``class_shares`` (class name -> %).
        """
        return {
            "patches": self.patches,
            "skipped": list(self.skipped[:50]),
            "zones": self.zones,
            "class_shares": dict(self.class_shares),
        }


def _ortho_decisions(inputs: DomainInputs, cfg: PipelineConfig) -> list[str]:
    """The ortho reader's decision lines, from the tiles' headers (no pixel read).

    One per product that is rescaled (its nodata through the rescale), resampled to
    ``sampling.resolution`` (the method), or whose alpha-declared band is mapped as data.

    Returns:
        The decision lines of the domain's ortho mosaic, in the reader's order (may be empty).
    """
    with Mosaic(inputs.ortho, **mosaic_options(cfg.sampling)) as mosaic:
        return list(mosaic.vrt.decisions)


def _label_decisions(inputs: DomainInputs) -> list[str]:
    """Decision lines on the labels: the layer read by default, a CRS reprojected on the fly.

    Returns:
        Zero to two lines: the layer choice's decision (when one was taken), then one naming
        the labels' CRS when it is not Lambert-93 and is reprojected to EPSG:2154.
    """
    from flair_pipeline.geo.crs import is_lambert93
    from flair_pipeline.geo.label_layers import choose_label_layer
    from flair_pipeline.geo.label_mapping import label_crs

    with vector_location(inputs.labels) as where:  # a URL: read in place
        choice = choose_label_layer(where, inputs.labels_layer)
        crs = label_crs(where, choice.name)
    out = [choice.decision] if choice.decision else []
    if crs is None or is_lambert93(crs):
        return out
    name = rasterio.crs.CRS.from_user_input(crs).to_string()
    return [*out, f"labels {inputs.labels}: CRS {name} reprojected on the fly to EPSG:2154"]


def _on_cell(src: Any, bounds: tuple[float, float, float, float], size: int) -> bool:
    """Whether an open patch file lies on its grid cell: top-left corner and size.

    Returns:
        True if the file is `size` × `size` pixels and its top-left corner is within half a
        pixel of the cell's (`bounds` = left, bottom, right, top in the file's CRS units).
    """
    res = abs(src.transform.a)
    on_cell: bool = (
        src.shape == (size, size)
        and abs(src.transform.c - bounds[0]) < res / 2
        and abs(src.transform.f - bounds[3]) < res / 2
    )
    return on_cell


@holds("aerial_patches", "label_masks", "dataset_metadata")  # reads IMG and MSK: no swap meanwhile
def write_domain_metadata(ctx: DomainContext) -> MetadataReport:
    """Pair each grid patch's IMG and MSK and write the domain's metadata JSON.

    Holds the domain's ``aerial_patches``, ``label_masks`` and ``dataset_metadata`` locks
    (:mod:`~flair_pipeline.dataset.domain_lock`: no other build swaps IMG or MSK while
    they are read). First finishes or undoes an interrupted generation swap of
    ``aerial/<domain>`` and ``labels/<domain>`` (each action is a warning). An IMG/MSK pair
    off its cell of the current grid (built from another grid) is a problem: the check
    ``img_msk_pairs`` fails. The JSON holds FLAIR's aerial metadata
    per kept patch (centroid x/y in m, EPSG:2154; z = terrain altitude in m; camera, date,
    time), the class shares (%), the problems, the skipped patches and the decisions, and,
    when areas were chosen (not the whole mosaic), ``areas``: how (strategy, budget, seed)
    and which (:func:`~flair_pipeline.dataset.sampling.read_area_record`).

    Args:
        ctx: The domain's build (its patch grid and inputs; ``sampling``); reads the IMG
            and MSK, writes the domain's JSON.

    Returns:
        The :class:`MetadataReport`.

    Raises:
        InputError: A missing or unusable input (named), a DTM void under a centroid.
    """
    domain, dataset, cfg, grid, inputs = ctx.domain, ctx.dataset, ctx.cfg, ctx.grid, ctx.inputs
    warnings: list[str] = []
    # a swap killed half-way: back to one generation
    for kind in (L.AERIAL.all_domains().rel, L.LABELS.all_domains().rel):
        warnings += recover(dataset.root, kind, domain)
    remove_stale_temps(dataset.domain_metadata(domain))
    pairs: list[str] = []
    problems: list[str] = []
    missing: list[str] = []
    previews: list[tuple[np.ndarray, np.ndarray, str]] = []  # (IMG, MSK, title)
    size = cfg.sampling.patch_size
    row: Any  # a patch grid row (pandas' itertuples are untyped)
    for row in grid.itertuples():
        img, msk = (
            dataset.img(row.domain, row.zone, row.patch_id),
            dataset.msk(row.domain, row.zone, row.patch_id),
        )
        if not (img.is_file() and msk.is_file()):  # skipped upstream and reported there
            missing.append(f"{row.patch_id}: no {'IMG' if not img.is_file() else 'MSK'}")
            continue
        with rasterio.open(img) as a, rasterio.open(msk) as b:
            if (a.transform, a.shape, a.crs) != (b.transform, b.shape, b.crs):
                problems.append(f"{row.patch_id}: IMG and MSK grids differ")
                continue
            if not _on_cell(a, row.geometry.bounds, size):
                problems.append(
                    f"{row.patch_id}: IMG and MSK are not on the current patch grid (built "
                    "from another grid, e.g. by another build of the domain in between); "
                    "rebuild aerial_patches and label_masks"
                )
                continue
            if len(previews) < 3:
                previews.append((a.read(), b.read(1), f"IMG_{row.patch_id} ({row.zone})"))
        pairs.append(row.patch_id)
    kept: gpd.GeoDataFrame = grid[grid["patch_id"].isin(pairs)]
    elevation = Elevation(inputs.dsm, inputs.dtm, cfg.sampling.elevation_scale)
    try:
        ground: dict[str, float] = {}
        for row in kept.itertuples():
            bounds = row.geometry.bounds
            ground[row.patch_id] = elevation.ground(row.x_centroid, row.y_centroid, bounds)
    finally:
        elevation.close()
    shares = md.class_distribution(kept)
    areas = read_area_record(dataset.patch_grid(domain))  # None: the mosaic sampled whole
    path = md.write_json(
        {
            **({"areas": areas} if areas is not None else {}),
            "domain": domain,
            "patches": md.aerial_metadata(kept, inputs.info, ground),
            "class_distribution": shares,
            "problems": problems,
            "skipped": missing,
            "decisions": [
                *_ortho_decisions(inputs, cfg),
                *elevation.decisions,
                *_label_decisions(inputs),
            ],
        },
        dataset.domain_metadata(domain),
    )
    return MetadataReport(
        domain=domain,
        path=str(path),
        patches=len(kept),
        zones=int(kept["zone"].nunique()) if len(kept) else 0,
        skipped=tuple(missing),
        class_shares=shares,
        problems=tuple(problems),
        warnings=tuple(warnings),
        previews=tuple(previews),
    )
