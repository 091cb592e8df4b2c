"""Class areas of a domain's patch cells, streamed from the label layer one block of areas at a time.

Scoring the candidate areas (:func:`~flair_pipeline.dataset.areas.choose_areas`) needs the
area of each merged class in each patch cell of the mosaic. Read whole, a département's
label layer (about a million polygons) sits in memory for the whole build. Here the
lattice is cut into square blocks of ``block_areas`` × ``block_areas`` areas; for each
block the features whose envelope meets the block's cells are read
(:func:`~flair_pipeline.dataset.rasterize.read_labels` with ``within``: pyogrio's
``bbox``; when the cells do not fill a rectangle, as a département's pool of scattered
areas, pyogrio's ``mask`` of their union, so features between them are never read), intersected with that block's cells only, accumulated, and dropped. A polygon
spanning two blocks is read twice but each of its parts is counted in the one block whose
cell holds it, so the sums equal a whole-layer scoring; peak memory follows one block.

Within a cell the intersections are summed in feature-id order (:func:`cell_class_areas`),
so a streamed and a whole-layer scoring give the same floats, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from flair_pipeline.dataset.areas import PatchLattice
from flair_pipeline.geo.label_mapping import LabelMapping
from flair_pipeline.nomenclature import N_CLASSES_MERGED, merge_to_13

#: Default block side, in areas: 4 × 4 areas of 700 m ≈ 8 km², ~20,000 OCS GE polygons.
BLOCK_AREAS = 4


@dataclass
class ScoringStats:
    """What a streamed scoring read.

    Attributes:
        blocks: Blocks read (those holding at least one cell).
        features_read: Features read over all blocks (a polygon on a block edge counts once
            per block it meets).
        peak_features: The most features held at once (one block's).
    """

    blocks: int = 0
    features_read: int = 0
    peak_features: int = 0


def cell_class_areas(labels: gpd.GeoDataFrame, boxes: np.ndarray) -> np.ndarray:
    """(n_boxes, 13) area of each merged class inside each box, summed in feature-id order.

    Args:
        labels: Label polygons (column ``code``, FLAIR codes 1..19), EPSG:2154, indexed by
            feature id (as :func:`~flair_pipeline.dataset.rasterize.read_labels` returns).
        boxes: Patch cells (EPSG:2154 boxes).

    Returns:
        float64 (n_boxes, 13) areas in m².
    """
    out = np.zeros((len(boxes), N_CLASSES_MERGED))
    if not len(labels) or not len(boxes):
        return out
    merged = merge_to_13(labels["code"].to_numpy(), source="labels")
    geoms = np.asarray(labels.geometry.values)
    box_idx, poly_idx = shapely.STRtree(geoms).query(boxes, predicate="intersects")
    if box_idx.size:
        fids = np.asarray(labels.index.to_numpy(), dtype=np.int64)
        order = np.lexsort((fids[poly_idx], box_idx))  # per cell, by feature id
        box_idx, poly_idx = box_idx[order], poly_idx[order]
        areas = shapely.area(shapely.intersection(boxes[box_idx], geoms[poly_idx]))
        np.add.at(out, (box_idx, merged[poly_idx]), areas)
    return out


def streamed_class_areas(
    lattice: PatchLattice,
    path: str | Path,
    layer: str | None = None,
    mapping: LabelMapping | None = None,
    *,
    block_areas: int = BLOCK_AREAS,
) -> tuple[np.ndarray, ScoringStats]:
    """Class areas of every cell of `lattice`, reading the label layer one block at a time.

    Args:
        lattice: The domain's patch lattice.
        path: The label file (any OGR vector; a label raster is read whole per block).
        layer: Its layer, or None (:func:`~flair_pipeline.dataset.rasterize.read_labels`).
        mapping: A mapping from another nomenclature, or None.
        block_areas: A block's side in areas (at least 1).

    Returns:
        (float64 (cells, 13) class areas in m², as :func:`cell_class_areas` of the whole
        layer; what was read).

    Raises:
        InputError: The label file is missing, unreadable or holds bad codes (named by
            ``read_labels``).
    """
    from flair_pipeline.dataset.rasterize import read_labels  # OGR: not at import

    out = np.zeros((len(lattice.boxes), N_CLASSES_MERGED))
    stats = ScoringStats()
    if not len(lattice.boxes):
        return out, stats
    side = max(1, int(block_areas)) * lattice.cells_per_area
    block_rows, block_cols = lattice.rows // side, lattice.cols // side
    width = int(block_cols.max()) + 1
    keys = block_rows * width + block_cols
    order = np.argsort(keys, kind="stable")
    bounds = shapely.bounds(lattice.boxes)
    starts = np.flatnonzero(np.r_[True, np.diff(keys[order]) != 0])
    for cells in np.split(order, starts[1:]):
        b = bounds[cells]
        extent = shapely.box(b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
        cover = shapely.union_all(lattice.boxes[cells])
        if not shapely.equals(cover, extent):  # scattered areas (a pool): their own extent
            extent = cover
        labels = read_labels(path, layer, mapping, within=extent)
        layer = str(labels.attrs.get("layer") or layer) if layer is None else layer  # once
        out[cells] = cell_class_areas(labels, lattice.boxes[cells])
        stats.blocks += 1
        stats.features_read += len(labels)
        stats.peak_features = max(stats.peak_features, len(labels))
        del labels
    return out, stats
