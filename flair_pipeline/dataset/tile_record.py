"""A URL raw root's tile headers, recorded once by the sources step, reused by later steps.

Opening a mosaic checks every tile's header (:func:`~flair_pipeline.geo.raster_vrt.build_vrt`).
Over a URL raw root that is one request (GDAL's first 16 KiB chunk) a tile, in every step
that opens the mosaic: 12,000 requests and about 200 MB a step for a département's two
products, whatever few tiles the step's patches touch. The sources step opens them anyway
(it checks them); it records each remote tile's header facts with its version from the
listing (size and ETag, or modification time) under ``"tiles"`` of
``metadata/sources/<domain>.json``. A later step (grid, IMG, metadata) whose listing gives a
tile the same version takes its facts from there (``Product.known``) instead of opening
it, and GDAL opens only the tiles whose blocks it reads (a VRT opens its sources lazily).
A tile whose version moved, or that the record lacks, is opened again. A local raw root
records nothing: a local header costs microseconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from affine import Affine
from rasterio.crs import CRS

from flair_pipeline.geo.raster_vrt import TileFacts

#: Key of the record in ``metadata/sources/<domain>.json``.
KEY = "tiles"


def to_record(tiles: Sequence[TileFacts], versions: Mapping[str, str]) -> dict[str, Any]:
    """The facts of the tiles that have a version, as JSON (each CRS written once).

    Args:
        tiles: The mosaic's tiles as opened (resampled views are left out: their facts
            are not the file's).
        versions: Tile location (its GDAL path) -> version from the listing.

    Returns:
        ``{"crs": [WKT or None, …], "tiles": [{path, version, crs (index), transform (6
        floats), width, height, count, dtype, nodata, mask, alpha_band}, …]}``.
    """
    crs: list[str | None] = []
    rows = []
    for t in tiles:
        version = versions.get(str(t.path))
        if version is None or t.source is not None:
            continue
        wkt = t.crs.to_wkt() if t.crs is not None else None
        if wkt not in crs:
            crs.append(wkt)
        rows.append(
            {
                "path": str(t.path),
                "version": version,
                "crs": crs.index(wkt),
                "transform": list(t.transform)[:6],
                "width": t.width,
                "height": t.height,
                "count": t.count,
                "dtype": t.dtype,
                "nodata": t.nodata,
                "mask": t.mask,
                "alpha_band": t.alpha_band,
            }
        )
    return {"crs": crs, "tiles": rows}


def known_facts(path: Path, versions: Mapping[str, str]) -> dict[str, TileFacts]:
    """The recorded facts of the tiles whose version is unchanged.

    Args:
        path: The domain's ``metadata/sources/<domain>.json`` (may not exist).
        versions: Tile location (its GDAL path) -> version from this step's listing.

    Returns:
        Location -> facts, for every recorded tile whose version equals `versions`'; empty
        without a record, or one that cannot be read (the tiles are then opened).
    """
    try:
        record = json.loads(path.read_text()).get(KEY) or {}
        crs = [CRS.from_wkt(w) if w else None for w in record.get("crs", [])]
        out = {}
        for row in record.get("tiles", []):
            if versions.get(row["path"]) != row["version"]:
                continue
            out[row["path"]] = TileFacts(
                row["path"],
                crs[row["crs"]],
                Affine(*row["transform"]),
                row["width"],
                row["height"],
                row["count"],
                row["dtype"],
                row["nodata"],
                row["mask"],
                row["alpha_band"],
            )
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return {}  # no record, or not one this code wrote: open the tiles
    return out
