"""NDVI through the year per land-cover class, from a zone's series and the label polygons.

What the `sentinel2_series` asset plots so a user can see at a glance that the series make
sense: crops and grassland, which look alike from the air, must differ through the year.
Samples are Sentinel-2 pixels whose centre falls inside a label polygon (10 m pixels are
labelled by their centre, the same rule as rasterization), so every class present in a
zone is represented, not only classes that dominate whole patches.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np

from flair_pipeline.nomenclature import MERGED_NAMES, merge_to_13
from flair_pipeline.sentinel2.provider import RES, TimeSeries
from flair_pipeline.sentinel2.series import ndvi

CLEAR_BELOW = 30  # SNW and CLD probability under which a date counts as clear
#: Merged indices of the classes whose phenology tells them apart (6..12: coniferous to
#: plowed land); built-up, water and bare classes only crowd the plot.
VEGETATION = tuple(range(5, 12))


def class_profiles(
    series: TimeSeries,
    labels: gpd.GeoDataFrame,
    per_class: int = 20,
    seed: int = 0,
    classes: tuple[int, ...] = VEGETATION,
) -> dict[str, list[np.ndarray]]:
    """Class name -> one (2, T') array of (day of year, NDVI) on clear dates per sampled pixel.

    Args:
        series: A zone's series (10 m grid, Lambert-93).
        labels: The label polygons (column ``code``: FLAIR codes 1..19), in the series' CRS.
        per_class: Pixels sampled per merged class at most.
        seed: Seed of the pixel draw.
        classes: Merged class indices profiled (vegetation by default).

    Returns:
        Per class name, one float array (2, T') per sampled pixel: day of year and NDVI on
        the dates whose SNW and CLD are below ``CLEAR_BELOW``; empty when no pixel centre
        lies in a polygon.
    """
    g = series.grid
    xs = g.left + (np.arange(g.width) + 0.5) * RES
    ys = g.top - (np.arange(g.height) + 0.5) * RES
    x, y = np.meshgrid(xs, ys)
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x.ravel(), y.ravel()), crs=labels.crs)
    hit = gpd.sjoin(points, labels[["code", "geometry"]], predicate="within", how="inner")
    hit = hit[~hit.index.duplicated()]  # a centre on a shared edge: keep one polygon
    if hit.empty:
        return {}
    merged = merge_to_13(hit["code"].to_numpy().astype(np.int64), source="labels")
    values = ndvi(series.data)
    doy = np.array([d.timetuple().tm_yday for d in series.dates])
    clear_all = (series.masks[:, 0] < CLEAR_BELOW) & (series.masks[:, 1] < CLEAR_BELOW)
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {}
    for k in sorted(set(np.unique(merged).tolist()) & set(classes)):
        pixels = hit.index.to_numpy()[merged == k]
        for p in rng.choice(pixels, min(per_class, len(pixels)), replace=False):
            r, c = divmod(int(p), g.width)
            clear = clear_all[:, r, c]
            if clear.any():
                out.setdefault(MERGED_NAMES[k], []).append(
                    np.stack([doy[clear], values[clear, r, c]])
                )
    return out
