"""What a STAC item says about its pixels, read in one place.

Every catalogue spells the same facts differently; this module turns them into one
:class:`AssetMeta` per asset so that the provider never reads ``raster:*`` or ``proj:*``
fields itself.

* **scale / offset** — every spelling an asset may use: ``raster:bands[0].scale|offset``
  (raster extension v1), the asset-level ``raster:scale|raster:offset`` (raster v2, STAC
  1.1) and the first entry of the STAC 1.1 ``bands`` array. Spellings that disagree on one
  asset are a contradiction the pipeline cannot settle: :class:`CatalogueContradiction`
  names the item, and the provider drops that item's date (not the year). Scale defaults
  to 1e-4 (Sentinel-2 L2A quantification value 10000).
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
  keeps the DN and declares ``raster:offset: -0.1`` (raster v2); a harmonised catalogue
  may remove the offset itself and declare ``raster:offset: 0``.
  The most specific declaration wins, in this order (the first that applies):

  =====  ========================================  ========================================
  rule   when                                      offset removed (DN)
  =====  ========================================  ========================================
  flag   ``earthsearch:boa_offset_applied: true``  0 (the catalogue removed it)
  flag   ``earthsearch:boa_offset_applied: false`` the baseline table below (DN as ESA
         and the baseline is known                 delivered them)
  asset  the asset declares an offset              ``-offset / scale`` (what it declares)
  table  baseline < 04.00                          0
  table  baseline >= 04.00                         1000
  none   baseline unknown, nothing declared        0
  =====  ========================================  ========================================

  The flag is Earth Search's statement about what it did to the DN of *this* item, more
  specific than the offset its asset template declares; a declared offset is more specific
  than ESA's table. When the winner disagrees with a lower rule, the decision says which
  won and what the other would have removed; the provider records it per date
  (``_products.json``). A flag that is not a boolean, or a scale / offset that is not a
  finite number, is a :class:`CatalogueContradiction` too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pystac

from flair_pipeline.errors import InputError

BOA_ADD_OFFSET = 1000  # DN, processing baseline >= 04.00 (ESA, January 2022)
DEFAULT_SCALE = 1e-4  # 1 / QUANTIFICATION_VALUE of Sentinel-2 L2A
FLAG = "earthsearch:boa_offset_applied"


class CatalogueContradiction(InputError):
    """An item's declarations disagree in a way no rule settles; its date is dropped."""


@dataclass(frozen=True)
class AssetMeta:
    """How to turn one asset's DN into reflectance: ``DN × scale + offset``.

    ``nodata`` is None when the catalogue does not say (the file decides); ``crs`` is
    ``"EPSG:<code>"`` or None; ``rule`` is which rule of the module's table set the offset
    (``flag``, ``asset``, ``table``, ``none``) and ``decision`` says it in words.
    """

    scale: float
    offset: float
    nodata: float | None
    crs: str | None
    decision: str
    rule: str = ""


def product_name(item: pystac.Item) -> str:
    """``s2:product_uri`` without ``.SAFE`` (FLAIR's products.txt), else the item id.

    Args:
        item: A Sentinel-2 L2A item.

    Returns:
        The product name written in ``products.txt``.
    """
    uri = item.properties.get("s2:product_uri")
    return str(uri).removesuffix(".SAFE") if uri else item.id


def processing_baseline(item: pystac.Item) -> float | None:
    """The item's processing baseline as a number, or None.

    From ``s2:processing_baseline`` (Earth Search, Planetary Computer) or
    ``processing:version`` (CDSE), else the ``_Nxxyy_`` field of ``s2:product_uri`` or of
    the item id (CDSE ids are product names).

    Args:
        item: A Sentinel-2 L2A item.

    Returns:
        The baseline, e.g. 5.09 for ``N0509``, or None when no field gives it.
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


def _spellings(asset: pystac.Asset, name: str) -> dict[str, Any]:
    """Every value asset-level field `name` (scale, offset, nodata) has, by its spelling.

    Args:
        asset: A STAC asset.
        name: ``scale``, ``offset`` or ``nodata``.

    Returns:
        Spelling (``raster:bands[0].scale``, ``bands[0].raster:scale``, …) -> value.
    """
    ex = asset.extra_fields
    out: dict[str, Any] = {}
    v1 = ex.get("raster:bands")
    if isinstance(v1, list) and v1 and isinstance(v1[0], dict) and name in v1[0]:
        out[f"raster:bands[0].{name}"] = v1[0][name]
    bands = ex.get("bands")
    key = name if name == "nodata" else f"raster:{name}"
    if isinstance(bands, list) and bands and isinstance(bands[0], dict) and key in bands[0]:
        out[f"bands[0].{key}"] = bands[0][key]
    if key in ex:
        out[key] = ex[key]
    return out


def _declared(item: pystac.Item, key: str, name: str) -> tuple[float | None, str]:
    """(value, spelling) of asset `key`'s declared scale or offset; None when undeclared.

    Args:
        item: A STAC item.
        key: One of its asset keys.
        name: ``scale`` or ``offset``.

    Returns:
        The value and the spelling it was read under; (None, "") when undeclared.

    Raises:
        CatalogueContradiction: a value that is not a finite number, or two spellings
            that disagree.
    """
    found = _spellings(item.assets[key], name)
    values: dict[str, float] = {}
    for spelling, v in found.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise CatalogueContradiction(
                f"STAC item {item.id} ({item.collection_id}), asset {key!r}: {spelling} "
                f"is {v!r}, not a number; its date is dropped (fix the catalogue or choose "
                "another sentinel2.source.collection)"
            )
        values[spelling] = float(v)
    if not values:
        return None, ""
    first, *others = values.items()
    for spelling, v in others:
        if not math.isclose(v, first[1], rel_tol=1e-9, abs_tol=1e-12):
            raise CatalogueContradiction(
                f"STAC item {item.id} ({item.collection_id}), asset {key!r}: {first[0]} "
                f"{first[1]:g} and {spelling} {v:g} disagree and no rule says which the DN "
                "follow; its date is dropped (fix the catalogue or choose another "
                "sentinel2.source.collection)"
            )
    return first[1], " = ".join(values)


def asset_crs(item: pystac.Item, key: str) -> str | None:
    """``proj:code`` or ``proj:epsg`` of asset `key`, else of the item, as ``EPSG:<n>``.

    Args:
        item: A STAC item.
        key: One of its asset keys.

    Returns:
        The CRS as ``EPSG:<n>`` (or the ``proj:code`` as given), None when neither declares one.
    """
    for fields in (item.assets[key].extra_fields, item.properties):
        code = fields.get("proj:code")
        if code:
            return str(code)
        epsg = fields.get("proj:epsg")
        if epsg:
            return f"EPSG:{int(epsg)}"
    return None


def boa_offset(
    item: pystac.Item, declared: float | None, scale: float, spelling: str = "offset"
) -> tuple[float, str, str]:
    """The BOA offset of a reflectance asset by the rule table of the module docstring.

    Args:
        item: The STAC item (processing baseline, ``earthsearch:boa_offset_applied``).
        declared: The asset's declared offset (reflectance units), None if undeclared.
        scale: The asset's scale (reflectance per DN).
        spelling: How the asset declared the offset, for the decision's words.

    Returns:
        (offset in reflectance units, rule that won, decision in words).

    Raises:
        CatalogueContradiction: ``earthsearch:boa_offset_applied`` is not a boolean.
    """
    baseline = processing_baseline(item)
    flag = item.properties.get(FLAG)
    if flag is not None and not isinstance(flag, bool):
        raise CatalogueContradiction(
            f"STAC item {item.id} ({item.collection_id}): {FLAG} is {flag!r}, not true or "
            "false; whether the DN carry the BOA offset is unknown, its date is dropped "
            "(fix the catalogue or choose another sentinel2.source.collection)"
        )
    pb = "baseline unknown" if baseline is None else f"baseline {baseline:05.2f}"
    table = None if baseline is None else (0 if baseline < 4.0 else BOA_ADD_OFFSET)
    said = "" if declared is None else f"{spelling} {declared:g}"
    if flag is True or (flag is False and table is not None):
        dn = 0 if flag else (table or 0)
        rule = "flag"
        why = (
            f"{pb}, {FLAG}: true: the catalogue already removed the BOA offset"
            if flag
            else f"{pb}, {FLAG}: false: DN as ESA delivered them, {dn} DN removed"
        )
        off = -dn * scale if dn else 0.0
        if declared is not None and not _same(declared, off):
            why += f"; the flag wins over the asset's {said} (Element84/earth-search#66)"
        return off, rule, why
    if declared is not None:
        why = f"{pb}: the asset's {said} used"
        if table is not None and not _same(declared, -table * scale):
            why += f"; it wins over ESA's baseline table, which would remove {table} DN"
        return declared, "asset", why
    if table is None:
        return 0.0, "none", f"{pb}, no offset declared: none removed"
    if table == 0:
        return 0.0, "table", f"{pb} < 04.00: DN carry no BOA offset"
    return -table * scale, "table", f"{pb}: DN carry +{table}, removed once"


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0.0, abs_tol=1e-9)


def asset_meta(item: pystac.Item, key: str, reflectance: bool = True) -> AssetMeta:
    """Scale, offset, nodata and CRS of asset `key` (see the module docstring).

    Non-reflectance assets (masks, SCL) get scale 1 and offset 0 whatever they declare.

    Args:
        item: The STAC item.
        key: One of its asset keys.
        reflectance: Whether the asset holds reflectances (scaled, offset).

    Returns:
        The asset's :class:`AssetMeta`.

    Raises:
        KeyError: The item has no asset `key`.
        CatalogueContradiction: Declarations the module's rules cannot settle.
    """
    nodata = next(iter(_spellings(item.assets[key], "nodata").values()), None)
    nodata = float(nodata) if isinstance(nodata, (int, float)) else None
    crs = asset_crs(item, key)
    if not reflectance:
        return AssetMeta(1.0, 0.0, nodata, crs, "not a reflectance", "none")
    scale, scale_said = _declared(item, key, "scale")
    if scale is not None and scale <= 0:
        raise CatalogueContradiction(
            f"STAC item {item.id} ({item.collection_id}), asset {key!r}: {scale_said} "
            f"{scale:g} is not a positive scale; its date is dropped (fix the catalogue "
            "or choose another sentinel2.source.collection)"
        )
    declared, said = _declared(item, key, "offset")
    off, rule, why = boa_offset(item, declared, scale or DEFAULT_SCALE, said or "offset")
    return AssetMeta(scale or DEFAULT_SCALE, off, nodata, crs, why, rule)


def scale_offset(item: pystac.Item, key: str) -> tuple[float, float]:
    """(scale, offset) of reflectance asset `key`: reflectance = DN × scale + offset.

    Args:
        item: A Sentinel-2 L2A item.
        key: A reflectance asset key.

    Returns:
        The declared (or defaulted, see :func:`asset_meta`) scale and offset.
    """
    m = asset_meta(item, key)
    return m.scale, m.offset
