"""How a predicted map is drawn and what its pixel values mean: 13 classes and no data.

A map (``predict``, the ``demo_map`` stage, the evaluation's ``PRED_<id>.tif``) holds the 13
merged classes as codes 1..13, where 13 is "other" (codes 13..19 of the MSK merged), and
:data:`MAP_NODATA` (0) where the ortho holds no data. Its colour table and its QGIS style
are therefore not the 19-class MSK ones (where 13 is "swimming pool", in cyan): codes 1..12
keep the MSK's names and colours, 13 is "other" in black, as FLAIR's own display draws it
(``MERGED_COLOURS``; FLAIR-HUB's ``flair-hub-qgis-style-flair-num.qml`` gives "other"
``#000000`` too), and 0 is transparent. The 19-class MSK style is
:func:`flair_pipeline.release.flair_stac.write_qml`.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

from flair_pipeline.io import atomic_path
from flair_pipeline.nomenclature import MERGED_COLOURS, MERGED_NAMES

#: Value of a map pixel where the ortho holds no data (its nodata value, mask or alpha).
#: Declared as the map's GDAL nodata: map classes are 1..13, so 0 is never a class.
MAP_NODATA = 0
#: Band description of every map.
MAP_DESCRIPTION = "land cover (FLAIR merged code 1..13, 13 = other; 0 = no data)"


def _rgb(colour: str) -> tuple[int, int, int]:
    h = colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def map_colormap() -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table of a map: code -> RGBA, 1..13 the merged classes, 0 transparent.

    Returns:
        ``{0: (0, 0, 0, 0), 1: building's colour, …, 13: (0, 0, 0, 255)}``.
    """
    table = {MAP_NODATA: (0, 0, 0, 0)}
    for code, colour in enumerate(MERGED_COLOURS, start=1):
        table[code] = (*_rgb(colour), 255)
    return table


def map_qml() -> str:
    """A QGIS paletted style for a map: codes 1..13 named and coloured, no data transparent.

    Returns:
        The ``.qml`` text.
    """
    entries = "\n".join(
        f'        <paletteEntry value="{code}" color="{colour}" alpha="255" '
        f"label={quoteattr(name)}/>"
        for code, (name, colour) in enumerate(zip(MERGED_NAMES, MERGED_COLOURS, strict=True), 1)
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def style_path(map_path: str | Path) -> Path:
    """Where a map's QGIS style goes: beside it, same name, ``.qml`` (QGIS loads it).

    Args:
        map_path: The map GeoTIFF.

    Returns:
        ``<folder>/<stem>.qml``.
    """
    return Path(map_path).with_suffix(".qml")


def write_map_style(map_path: str | Path) -> Path:
    """Write the 13-class style beside a map (atomically).

    Args:
        map_path: The map GeoTIFF.

    Returns:
        The ``.qml`` written.

    Raises:
        StorageError: The file could not be written (DiskFullError for a full disk).
    """
    out = style_path(map_path)
    with atomic_path(out) as tmp:
        tmp.write_text(map_qml())
    return out
