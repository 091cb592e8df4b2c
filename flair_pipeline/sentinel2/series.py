"""Super-areas per zone and FLAIR's on-disk format for their Sentinel-2 series.

Each zone gets one super-area: the 10 m grid covering a window of ``sentinel2.window`` px
around every patch centroid of the zone (FLAIR feeds the model a 40 × 40 crop around the
centroid). It is written as FLAIR does: ``SEN2_sp_<domain>-<zone>_data.npy`` (T×10×H×W),
``_masks.npy`` (T×2×H×W) and ``_products.txt`` (one product per date), plus where each
patch's centroid falls in it (``centroids_sp_to_patch.json``: ``IMG_<id>.tif`` → [row, col]).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np

from flair_pipeline.errors import InputError
from flair_pipeline.io import atomic_path
from flair_pipeline.layout import SEN2_PARTS, DatasetLayout, img_name
from flair_pipeline.sentinel2.provider import RES, Grid, TimeSeries


@dataclass(frozen=True)
class SuperArea:
    """A zone's super-area and the centroid pixel of each of its patches."""

    domain: str
    zone: str
    grid: Grid
    centroids: dict[str, tuple[int, int]]  # "IMG_<id>.tif" -> (row, col)


def super_areas(grid_gdf: gpd.GeoDataFrame, window: int, max_size: int) -> list[SuperArea]:
    """One super-area per zone of a domain's patch grid.

    Args:
        grid_gdf: The domain's patch grid (``domain``, ``zone``, ``x_centroid``,
            ``y_centroid`` in Lambert-93 m).
        window: Side (px at 10 m) of the Sentinel-2 window around each patch centroid.
        max_size: Largest side (px) a super-area may have.

    Returns:
        One super-area per (domain, zone): a 10 m grid covering every patch's window.

    Raises:
        InputError: A zone's super-area would exceed `max_size` px, naming the zone: zones
            must then be made smaller (sampling.zone_size_m) or the bound raised (the line
            says to what).
    """
    out = []
    half = window * RES / 2
    for (domain, zone), z in sorted(grid_gdf.groupby(["domain", "zone"])):
        cx, cy = z["x_centroid"].to_numpy(), z["y_centroid"].to_numpy()
        grid = Grid.around((cx.min() - half, cy.min() - half, cx.max() + half, cy.max() + half))
        if max(grid.width, grid.height) > max_size:
            raise InputError(
                f"{domain}/{zone}: super-area {grid.width}×{grid.height} px exceeds "
                f"sentinel2.max_size={max_size}; raise sentinel2.max_size to at least "
                f"{max(grid.width, grid.height)} (FLAIR's areas of about 1 km with the 40 px "
                "window need about 132) or lower sampling.zone_size_m"
            )
        cents = {
            img_name(p): grid.rowcol(x, y) for p, x, y in zip(z["patch_id"], cx, cy, strict=True)
        }
        out.append(SuperArea(str(domain), str(zone), grid, cents))
    return out


def write_series(layout: DatasetLayout, area: SuperArea, series: TimeSeries) -> list[Path]:
    """Write the FLAIR files of a zone's series, each atomically.

    Write the three FLAIR files of a zone, each atomically, and, when the provider
    recorded decisions (``series.provenance``: BOA offset rule per date, SCL-derived
    masks), their companion ``_products.json``.

    Args:
        layout: The dataset layout.
        area: The zone's super-area.
        series: Its series: data uint16 (T, 10, H, W), masks uint8 (T, 2, H, W).

    Returns:
        The files written: ``_data.npy``, ``_masks.npy``, ``_products.txt`` and maybe
        ``_products.json``.
    """
    paths = [layout.sen_file(area.domain, area.zone, part) for part in SEN2_PARTS[:3]]
    with atomic_path(paths[0]) as tmp, open(tmp, "wb") as f:
        np.save(f, series.data)
    with atomic_path(paths[1]) as tmp, open(tmp, "wb") as f:
        np.save(f, series.masks)
    with atomic_path(paths[2], allow_empty=True) as tmp:
        tmp.write_text("".join(f"{p}\n" for p in series.products))
    if series.provenance:
        paths.append(layout.sen_file(area.domain, area.zone, SEN2_PARTS[3]))
        with atomic_path(paths[3]) as tmp:
            tmp.write_text(json.dumps(series.provenance, indent=1, sort_keys=True) + "\n")
    return paths


def read_series(
    layout: DatasetLayout, domain: str, zone: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load a zone's data, masks and products.

    Args:
        layout: The dataset layout.
        domain: Domain id.
        zone: Zone name.

    Returns:
        (data (T, 10, H, W), masks (T, 2, H, W), product names), as written.
    """
    data_f, masks_f, products_f = (layout.sen_file(domain, zone, p) for p in SEN2_PARTS[:3])
    data = np.load(data_f)
    masks = np.load(masks_f)
    products = products_f.read_text().split()
    return data, masks, products


def product_date(product: str) -> dt.date | None:
    """Acquisition date of a product name such as ``S2A_MSIL2A_20200712T105619_…``.

    Args:
        product: A Sentinel-2 product name.

    Returns:
        The date of its first ``YYYYMMDD…`` field, or None.
    """
    for token in product.split("_"):
        if len(token) >= 8 and token[:8].isdigit():
            try:
                return dt.datetime.strptime(token[:8], "%Y%m%d").date()
            except ValueError:
                continue
    return None


def ndvi(data: np.ndarray) -> np.ndarray:
    """NDVI of a (T, 10, …) series (B08 and B04).

    Args:
        data: (T, 10, …) reflectance DN in FLAIR's band order.

    Returns:
        float32 (T, …) NDVI in -1..1, 0 where both bands are 0.
    """
    nir, red = data[:, 6].astype(np.float32), data[:, 2].astype(np.float32)
    index: np.ndarray = (nir - red) / np.maximum(nir + red, 1.0)
    return index
