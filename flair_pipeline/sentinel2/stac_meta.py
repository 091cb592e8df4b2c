"""What a STAC item says about its pixels, read in one place.

Every catalogue spells the same facts differently; this module turns them into one
:class:`AssetMeta` per asset so that the provider never reads ``raster:*`` or ``proj:*``
fields itself.

* **scale / offset** — ``raster:bands[0].scale|offset`` (raster extension v1), else the
  asset-level ``raster:scale|raster:offset`` (raster v2, STAC 1.1), else the first entry of
  the STAC 1.1 ``bands`` array. Scale defaults to 1e-4 (Sentinel-2 L2A quantification
  value 10000).
* **nodata** — ``raster:bands[0].nodata``, else the asset-level ``nodata`` (STAC 1.1 common
  metadata), else ``None``: the reader then takes the file's own nodata, else 0 (the L2A
  ``NO_DATA`` value).
* **CRS** — ``proj:code`` (projection v2, ``"EPSG:32631"``) or ``proj:epsg`` (v1.x, an
  integer), on the asset first, then on the item.
* **The L2A BOA offset, applied exactly once** (:func:`boa_offset`). ESA's processing
  baseline 04.00 (25 January 2022) added ``BOA_ADD_OFFSET = -1000`` DN to L2A reflectances
  (reflectance = (DN - 1000) / 10000); older baselines have none. Catalogues then differ:
  Earth Search ``sentinel-2-c1-l2a`` keeps the DN and declares ``offset: -0.1``; Earth
  Search ``sentinel-2-l2a`` removed the offset from the DN of baseline >= 04.00 scenes
  (``earthsearch:boa_offset_applied: true``) yet still declares ``offset: -0.1``
  (Element84/earth-search#66); Planetary Computer keeps the DN and declares nothing; CDSE
  keeps the DN and declares ``raster:offset: -0.1`` (raster v2).
  The rule, by the data's processing baseline:

  ==========================  =============================  =====================
  baseline                    ``boa_offset_applied``         offset removed (DN)
  ==========================  =============================  =====================
  < 04.00                     any                            0
  >= 04.00                    true                           0 (already removed)
  >= 04.00                    false or absent                1000
  unknown                     any                            the declared offset
  ==========================  =============================  =====================

  A declared offset that disagrees with the rule is a contradiction inside the item; the
  rule wins and the decision is returned in words, to be recorded per date.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pystac

BOA_ADD_OFFSET = 1000  # DN, processing baseline >= 04.00 (ESA, January 2022)
DEFAULT_SCALE = 1e-4  # 1 / QUANTIFICATION_VALUE of Sentinel-2 L2A


@dataclass(frozen=True)
class AssetMeta:
    """How to turn one asset's DN into reflectance: ``DN × scale + offset``.

    ``nodata`` is None when the catalogue does not say (the file decides); ``crs`` is
    ``"EPSG:<code>"`` or None; ``decision`` says in words how the offset was chosen.
    """

    scale: float
    offset: float
    nodata: float | None
    crs: str | None
    decision: str


def product_name(item: pystac.Item) -> str:
    """``s2:product_uri`` without ``.SAFE`` (FLAIR's products.txt), else the item id."""
    uri = item.properties.get("s2:product_uri")
    return str(uri).removesuffix(".SAFE") if uri else item.id


def processing_baseline(item: pystac.Item) -> float | None:
    """The item's processing baseline as a number, or None.

    From ``s2:processing_baseline`` (Earth Search, Planetary Computer) or
    ``processing:version`` (CDSE), else the ``_Nxxyy_`` field of ``s2:product_uri`` or of
    the item id (CDSE ids are product names).
    """
    for field in ("s2:processing_baseline", "processing:version"):
        try:
            return float(item.properties[field])
        except (KeyError, TypeError, ValueError):
            pass
    for text in (item.properties.get("s2:product_uri", ""), item.id):
        m = re.search(r"_N(\d{2})(\d{2})_", str(text))
        if m:
            return int(m[1]) + int(m[2]) / 100
    return None


def _band_fields(asset: pystac.Asset) -> dict[str, Any]:
    """The first band's fields under raster v1 names (scale, offset, nodata), from any spelling."""
    ex = asset.extra_fields
    out: dict[str, Any] = {}
    v1 = ex.get("raster:bands")
    if isinstance(v1, list) and v1 and isinstance(v1[0], dict):
        out.update({k: v1[0][k] for k in ("scale", "offset", "nodata") if k in v1[0]})
    bands = ex.get("bands")
    if isinstance(bands, list) and bands and isinstance(bands[0], dict):
        b = bands[0]
        for k in ("scale", "offset"):
            if f"raster:{k}" in b:
                out.setdefault(k, b[f"raster:{k}"])
        if "nodata" in b:
            out.setdefault("nodata", b["nodata"])
    for k in ("scale", "offset"):
        if f"raster:{k}" in ex:
            out.setdefault(k, ex[f"raster:{k}"])
    if "nodata" in ex:
        out.setdefault("nodata", ex["nodata"])
    return out


def asset_crs(item: pystac.Item, key: str) -> str | None:
    """``proj:code`` or ``proj:epsg`` of asset `key`, else of the item, as ``EPSG:<n>``."""
    for fields in (item.assets[key].extra_fields, item.properties):
        code = fields.get("proj:code")
        if code:
            return str(code)
        epsg = fields.get("proj:epsg")
        if epsg:
            return f"EPSG:{int(epsg)}"
    return None


def boa_offset(item: pystac.Item, declared: float | None, scale: float) -> tuple[float, str]:
    """(offset in reflectance units, decision in words) by the rule of this module's table."""
    baseline = processing_baseline(item)
    flag = item.properties.get("earthsearch:boa_offset_applied")
    if baseline is None:
        off = float(declared) if declared is not None else 0.0
        return off, f"baseline unknown: declared offset {off:g} used"
    pb = f"baseline {baseline:05.2f}"
    if baseline < 4.0:
        off, why = 0.0, f"{pb} < 04.00: DN carry no BOA offset"
    elif flag is True:
        off, why = 0.0, f"{pb}, earthsearch:boa_offset_applied: offset already removed"
    else:
        off, why = -BOA_ADD_OFFSET * scale, f"{pb}: DN carry +{BOA_ADD_OFFSET}, removed once"
    if declared is not None and not math.isclose(float(declared), off, abs_tol=1e-9):
        why += f"; declared offset {float(declared):g} contradicts it and is ignored"
    return off, why


def asset_meta(item: pystac.Item, key: str, reflectance: bool = True) -> AssetMeta:
    """Scale, offset, nodata and CRS of asset `key` (see the module docstring).

    Non-reflectance assets (masks, SCL) get scale 1 and offset 0 whatever they declare.
    Raises KeyError if the item has no asset `key`.
    """
    fields = _band_fields(item.assets[key])
    nodata = fields.get("nodata")
    nodata = float(nodata) if isinstance(nodata, (int, float)) else None
    crs = asset_crs(item, key)
    if not reflectance:
        return AssetMeta(1.0, 0.0, nodata, crs, "not a reflectance")
    scale = float(fields.get("scale", DEFAULT_SCALE))
    declared = fields.get("offset")
    offset, why = boa_offset(item, None if declared is None else float(declared), scale)
    return AssetMeta(scale, offset, nodata, crs, why)


def scale_offset(item: pystac.Item, key: str) -> tuple[float, float]:
    """(scale, offset) of reflectance asset `key`: reflectance = DN × scale + offset."""
    m = asset_meta(item, key)
    return m.scale, m.offset
