"""Which items and which assets of a STAC search the provider uses.

**Collections.** A STAC API may return several collections in one page (Earth Search's
``/search`` does when asked without ``collections``); only items of the configured
collections are kept, whatever the server sent.

**One scene, one item.** The same acquisition can come several times: once per collection
(Earth Search ``sentinel-2-l2a`` and ``sentinel-2-c1-l2a`` hold the same datatake) and once
per reprocessing (processing baselines 04.00 and 05.09 of one scene). Items are grouped by
scene — platform, MGRS tile and sensing time to the second — and one is kept: the item of
the earliest configured collection, then the highest processing baseline, then the latest
``updated``/``created`` time, then the smallest id. The others are reported as dropped.
Items of **different tiles** on one day (a grid across two MGRS tiles, or two UTM zones)
are different scenes: they are all kept and mosaicked into **one date** by the provider.

**Assets.** Each catalogue names the bands its own way (:data:`BAND_KEYS`): Earth Search
``blue`` … ``swir22`` and ``scl``; Planetary Computer ``B02`` … ``B12`` and ``SCL``; CDSE
``B02_10m``, ``B05_20m`` … and ``SCL_20m`` (the native resolution of each band; CDSE also
lists resampled copies such as ``B02_20m``, never used). The first key an item has is
used. Whether an asset can be read (an ``s3://`` href needs ``sentinel2.source.s3_endpoint``) is
decided by :class:`~flair_pipeline.sentinel2.stac_hrefs.Hrefs`; an unreadable asset counts
as absent. When the ``cloud``/``snow`` probability assets are absent (only Earth Search
``sentinel-2-c1-l2a`` has readable ones), the masks can be derived from the scene
classification (SCL) — only when asked (``scl_masks``).

**SCL → SNW/CLD (0–100).** Sen2Cor's classes are categories, not probabilities; each is
given the upper edge of the probability band Sen2Cor assigns it (ESA Sen2Cor L2A ATBD:
medium-probability clouds 35–65 %, high-probability > 65 %), so that the default
``cloud_threshold`` of 60 treats medium clouds and cirrus as cloudy:

=====  ==========================  ====  ====
SCL    class                       SNW   CLD
=====  ==========================  ====  ====
8      cloud, medium probability   0     65
9      cloud, high probability     0     100
10     thin cirrus                 0     65
11     snow or ice                 100   0
other  (0 no data, 1–7)            0     0
=====  ==========================  ====  ====
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pystac

from flair_pipeline.sentinel2.stac_meta import processing_baseline

#: SCL class -> (SNW, CLD) probability, 0..100 (table of the module docstring).
SCL_TO_MASKS = {8: (0, 65), 9: (0, 100), 10: (0, 65), 11: (100, 0)}
SCL_MAPPING_NAME = "scl-v1: 8->CLD 65, 9->CLD 100, 10->CLD 65, 11->SNW 100, else 0"


def scl_to_masks(scl: np.ndarray) -> np.ndarray:
    """(2, H, W) uint8 SNW, CLD probabilities from an (H, W) SCL array (table above).

    Args:
        scl: Scene classification codes (H, W), any integer dtype.

    Returns:
        uint8 (2, H, W): SNW and CLD probabilities (0..100) per ``SCL_TO_MASKS``; 0 for
        codes it does not list.
    """
    lut = np.zeros((2, 256), np.uint8)
    for cls, (snw, cld) in SCL_TO_MASKS.items():
        lut[0, cls], lut[1, cls] = snw, cld
    idx = np.clip(scl, 0, 255).astype(np.intp)
    return np.stack([lut[0][idx], lut[1][idx]])


#: asset keys of each FLAIR band (provider.BANDS order): Earth Search, Planetary Computer, CDSE
BAND_KEYS: dict[str, tuple[str, ...]] = {
    "B02": ("blue", "B02", "B02_10m"),
    "B03": ("green", "B03", "B03_10m"),
    "B04": ("red", "B04", "B04_10m"),
    "B05": ("rededge1", "B05", "B05_20m"),
    "B06": ("rededge2", "B06", "B06_20m"),
    "B07": ("rededge3", "B07", "B07_20m"),
    "B08": ("nir", "B08", "B08_10m"),
    "B8A": ("nir08", "B8A", "B8A_20m"),
    "B11": ("swir16", "B11", "B11_20m"),
    "B12": ("swir22", "B12", "B12_20m"),
}
#: asset keys of the scene classification: Earth Search, Planetary Computer, CDSE
SCL_KEYS = ("scl", "SCL", "SCL_20m")


def asset_key(item: pystac.Item, candidates: Sequence[str]) -> str | None:
    """The first of `candidates` (one band's keys, :data:`BAND_KEYS`) that `item` has.

    Args:
        item: A STAC item.
        candidates: Asset keys to try, in order.

    Returns:
        The first key present in ``item.assets``, or None.
    """
    return next((k for k in candidates if k in item.assets), None)


def scene_key(item: pystac.Item) -> tuple[str, str, str]:
    """(platform, MGRS tile, sensing time to the second): equal for copies of one scene.

    Args:
        item: A Sentinel-2 L2A STAC item.

    Returns:
        (platform in lower case, MGRS tile without ``MGRS-``, ``YYYYMMDDTHHMMSS``).
    """
    p = item.properties
    tile = p.get("grid:code") or "".join(
        str(p.get(k, "")) for k in ("mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square")
    )
    if not tile:
        tile = str(p.get("s2:mgrs_tile") or p.get("s2:tile_id") or item.id)
    when = item.datetime or dt.datetime.min
    return (
        str(p.get("platform", "")).lower(),
        str(tile).removeprefix("MGRS-"),
        when.strftime("%Y%m%dT%H%M%S"),
    )


def _rank(item: pystac.Item, collections: Sequence[str]) -> tuple[int, float, tuple[int, ...], str]:
    col = item.collection_id or ""
    order = collections.index(col) if col in collections else len(collections)
    pb = processing_baseline(item) or 0.0
    stamp = str(item.properties.get("updated") or item.properties.get("created") or "")
    # smaller is better: first collection, highest baseline, latest stamp, smallest id
    return (order, -pb, _neg(stamp), item.id)


def _neg(s: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in s)


def select_items(
    items: list[pystac.Item], collections: Sequence[str]
) -> tuple[list[pystac.Item], list[tuple[str, str]]]:
    """(kept items, [(dropped id, why)]): configured collections only, one item per scene.

    Args:
        items: Every item a search returned.
        collections: The configured collections, preferred first.

    Returns:
        The kept items sorted by id, and each duplicate dropped with the item it lost to.
        A duplicate loses to the earlier collection, then the higher processing baseline,
        then the later ``updated``/``created`` stamp, then the smaller id.
    """
    dropped: list[tuple[str, str]] = []
    best: dict[tuple[str, str, str], pystac.Item] = {}
    for item in items:
        if item.collection_id not in collections:
            continue
        key = scene_key(item)
        old = best.get(key)
        if old is None:
            best[key] = item
            continue
        win, lose = sorted((old, item), key=lambda i: _rank(i, collections))
        best[key] = win
        dropped.append((lose.id, f"duplicate of {win.id} ({win.collection_id})"))
    kept = sorted(best.values(), key=lambda i: i.id)
    return kept, dropped
