"""FLAIR's per-patch aerial metadata and a domain's class-distribution statistics.

The metadata feed U-Net's metadata branch (location, camera, date, time) and let users
filter patches; the class statistics show what a domain contributes to the dataset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np

from flair_pipeline.io import atomic_path
from flair_pipeline.nomenclature import MERGED_NAMES, N_CLASSES_MERGED


def aerial_metadata(
    grid: gpd.GeoDataFrame, domain_info: Mapping[str, object], ground: Mapping[str, float]
) -> dict[str, dict[str, object]]:
    """FLAIR's aerial_metadata entries, keyed ``IMG_<id>``.

    Args:
        grid: The domain's patch grid (Lambert-93): ``patch_id``, ``domain``, ``zone``,
            ``x_centroid``, ``y_centroid`` per patch.
        domain_info: The domain's flight facts (``camera``, ``date``, ``time``).
        ground: Ground elevation (m, from the DTM) under each patch centroid, by patch id.

    Returns:
        ``IMG_<id>`` -> domain, zone, centroid x/y/z (m, rounded to 0.01), camera, date, time.
    """
    out: dict[str, dict[str, object]] = {}
    row: Any  # a row of the patch grid: fields by column name
    for row in grid.itertuples():
        out[f"IMG_{row.patch_id}"] = {
            "domain": row.domain,
            "zone": row.zone,
            "patch_centroid_x": round(float(row.x_centroid), 2),
            "patch_centroid_y": round(float(row.y_centroid), 2),
            "patch_centroid_z": round(float(ground[row.patch_id]), 2),
            "camera": domain_info.get("camera", ""),
            "date": domain_info.get("date", ""),
            "time": domain_info.get("time", ""),
        }
    return out


def class_distribution(grid: gpd.GeoDataFrame) -> dict[str, float]:
    """Share (%) of each of the 13 training classes over a grid's patches.

    Args:
        grid: The patch grid with one ``class_<k>`` share-of-patch column per merged class k (0..12).

    Returns:
        Class name -> percent of the summed class area (all 0 for an empty grid).
    """
    cols = [f"class_{k}" for k in range(N_CLASSES_MERGED)]
    areas = grid[cols].to_numpy().sum(0) if len(grid) else np.zeros(N_CLASSES_MERGED)
    total = areas.sum() or 1.0
    return {name: float(100 * a / total) for name, a in zip(MERGED_NAMES, areas, strict=True)}


def write_json(data: object, path: str | Path) -> Path:
    """Write JSON atomically, keys sorted, so reruns give identical bytes.

    Args:
        data: Any JSON-serialisable value.
        path: The file written (replaced through a checked temporary file).

    Returns:
        `path` as a Path.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return Path(path)
