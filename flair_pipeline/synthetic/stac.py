"""STAC metadata of the synthetic Sentinel-2 archive, shaped like Earth Search's items.

Items carry what a provider needs to use them without opening a pixel: datetime, the UTM
projection of each asset (``proj:code``, ``proj:shape``, ``proj:transform``), the declared
L2A scale and offset (``raster:bands``), cloud cover and the product URI.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import shapely
from pyproj import Transformer
from shapely.geometry import box, mapping

from flair_pipeline.synthetic.sentinel2 import BOA_OFFSET, COLLECTION, S2Grid

EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]


def mgrs_tile(epsg: int, department: int) -> str:
    """A plausible, per-département-unique MGRS-like tile name such as ``31TCJ``.

    Args:
        epsg: The UTM EPSG code of the domain (its zone: the last two digits).
        department: The domain's département number.

    Returns:
        ``<zone>T<two letters>`` derived from the département.
    """
    zone = epsg % 100
    letters = "CDEFGHJKLMNPQRSTUVWXYZ"
    return f"{zone}T{letters[department // len(letters) % len(letters)]}{letters[department % len(letters)]}"


def make_item(
    domain: str,
    grid: S2Grid,
    date: dt.datetime,
    facts: dict[str, dict[str, Any]],
    folder: Path,
    cloud_cover: float,
    snow_cover: float,
    tile: str,
) -> pystac.Item:
    """One L2A item whose assets are the GeoTIFFs written in `folder`.

    Args:
        domain: Domain id, stored as ``flair:domain``.
        grid: The scene's UTM grid.
        date: Acquisition time (UTC).
        facts: Per asset key: band name, resolution (m), shape and transform of its file.
        folder: Where the scene's GeoTIFFs are.
        cloud_cover: Cloudy share of the scene, percent.
        snow_cover: Snowy share of the scene, percent.
        tile: MGRS-like tile name.

    Returns:
        The item (footprint in WGS84, eo/proj/raster extensions), not yet in a catalog.
    """
    sat = "A" if date.toordinal() % 2 else "B"
    ymd = date.strftime("%Y%m%d")
    item_id = f"S2{sat}_{tile}_{ymd}_0_L2A"
    to_wgs = Transformer.from_crs(f"EPSG:{grid.epsg}", "EPSG:4326", always_xy=True)
    foot = shapely.transform(
        box(*grid.bounds).segmentize(200.0),
        lambda xy: np.c_[to_wgs.transform(xy[:, 0], xy[:, 1])],
    )
    orbit = 8 + date.toordinal() % 130
    stamp = date.strftime("%Y%m%dT%H%M%S")
    props = {
        "platform": f"sentinel-2{sat.lower()}",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": round(cloud_cover, 2),
        "s2:snow_ice_percentage": round(snow_cover, 2),
        "s2:processing_baseline": "05.00",
        "s2:product_uri": f"S2{sat}_MSIL2A_{stamp}_N0500_R{orbit:03d}_T{tile}_{ymd}T140000.SAFE",
        "s2:mgrs_tile": tile,
        "proj:code": f"EPSG:{grid.epsg}",
        "flair:domain": domain,
    }
    item = pystac.Item(
        id=item_id,
        geometry=mapping(foot),
        bbox=list(foot.bounds),
        datetime=date,
        properties=props,
        stac_extensions=list(EXTENSIONS),
        collection=COLLECTION,
    )
    for key, f in facts.items():
        spectral = key not in ("cloud", "snow", "scl")
        band: dict[str, Any] = {
            "data_type": "uint16" if spectral else "uint8",
            "spatial_resolution": f["res"],
        }
        if spectral:
            band.update(nodata=0, scale=0.0001, offset=-BOA_OFFSET / 10000, unit="reflectance")
        elif key == "scl":
            band["nodata"] = 0
        extra = {
            "proj:shape": list(f["shape"]),
            "proj:transform": list(f["transform"])[:6],
            "raster:bands": [band],
            "gsd": f["res"],
        }
        if spectral:
            extra["eo:bands"] = [{"name": f["band"], "common_name": key}]
        item.add_asset(
            key,
            pystac.Asset(
                href=str((folder / f"{key}.tif").resolve()),
                media_type=pystac.MediaType.GEOTIFF,
                roles=["data", "reflectance"] if spectral else ["data", key],
                extra_fields=extra,
            ),
        )
    return item


def write_catalog(
    root: Path,
    items: list[pystac.Item],
    *,
    catalog_id: str = "flair-synthetic-sentinel2",
    catalog_description: str = (
        "Synthetic Sentinel-2 L2A archive of the flair_pipeline embedded world."
    ),
    collection_id: str = COLLECTION,
    collection_description: str = (
        "Sentinel-2 L2A scenes (synthetic), assets named as in Earth Search."
    ),
) -> Path:
    """Save a self-contained catalog at `root` holding one collection with `items`.

    The same writer serves the synthetic Sentinel-2 archive (the defaults) and the
    Sentinel-1 one (:func:`flair_pipeline.synthetic.sentinel1.write_catalog`).

    Args:
        root: Folder of the catalog.
        items: The scenes' items.
        catalog_id: The catalog's id.
        catalog_description: The catalog's description.
        collection_id: The id of the one collection holding `items`.
        collection_description: The collection's description.

    Returns:
        Path of ``catalog.json``.
    """
    catalog = pystac.Catalog(id=catalog_id, description=catalog_description)
    years = sorted({i.datetime.year for i in items if i.datetime}) or [2020]
    spatial = pystac.SpatialExtent([_union_bbox(items)])
    temporal = pystac.TemporalExtent(
        [
            [
                dt.datetime(years[0], 1, 1, tzinfo=dt.UTC),
                dt.datetime(years[-1], 12, 31, tzinfo=dt.UTC),
            ]
        ]
    )
    coll = pystac.Collection(
        id=collection_id,
        description=collection_description,
        extent=pystac.Extent(spatial, temporal),
        license="CC-BY-4.0",
    )
    for item in sorted(items, key=lambda i: i.id):
        coll.add_item(item)
    catalog.add_child(coll)
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def _union_bbox(items: list[pystac.Item]) -> list[float]:
    if not items:
        return [-5.0, 41.0, 10.0, 51.5]
    b = [i.bbox for i in items if i.bbox]
    return [min(x[0] for x in b), min(x[1] for x in b), max(x[2] for x in b), max(x[3] for x in b)]
