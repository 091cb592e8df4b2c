"""Dalle footprints of a mosaic VRT, read from its XML without opening a dalle.

A département's BD ORTHO is thousands of dalles; a GDAL VRT placing them (``gdalbuildvrt``,
or the ``departement`` synthetic world whose entries reuse a few files) is one raster to
read. Coverage, though, must follow the dalles: a hole between them is no data. This
module lists a VRT's sources (those of its first band) with their place on the VRT's grid,
as :class:`~flair_pipeline.geo.raster_vrt.TileFacts`, from the XML alone.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from affine import Affine
from rasterio.crs import CRS

from flair_pipeline.errors import InputError
from flair_pipeline.geo.raster_vrt import TileFacts

_SOURCES = ("SimpleSource", "ComplexSource", "AveragedSource", "KernelFilteredSource")
_GDAL_TYPES = {"Byte": "uint8", "UInt16": "uint16", "Int16": "int16", "Float32": "float32"}


def vrt_sources(path: Path) -> list[TileFacts]:
    """The sources of a mosaic VRT's first band, each with its footprint on the VRT's grid.

    Args:
        path: A ``.vrt`` file.

    Returns:
        One :class:`TileFacts` per source (its file, resolved against the VRT's folder when
        ``relativeToVRT``; its transform from the VRT's geotransform and the source's
        ``DstRect``; the VRT's band count, type, nodata and CRS), in XML order; empty when
        the file is not a VRT with sources placed by ``DstRect``.

    Raises:
        InputError: The VRT's XML cannot be parsed, naming it.
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"{path}: cannot read the VRT's XML ({exc})") from None
    gt_text = root.findtext("GeoTransform")
    bands = root.findall("VRTRasterBand")
    if root.tag != "VRTDataset" or gt_text is None or not bands:
        return []
    gt = [float(v) for v in gt_text.split(",")]
    grid = Affine(gt[1], gt[2], gt[0], gt[4], gt[5], gt[3])
    srs = root.findtext("SRS")
    crs = CRS.from_user_input(srs) if srs else None
    first = bands[0]
    dtype = _GDAL_TYPES.get(first.get("dataType", "Byte"), "uint8")
    nd = first.findtext("NoDataValue")
    nodata = float(nd) if nd is not None else None
    out = []
    for src in (s for s in first if s.tag in _SOURCES):
        name, dst = src.find("SourceFilename"), src.find("DstRect")
        if name is None or name.text is None or dst is None:
            continue
        file = Path(name.text)
        if name.get("relativeToVRT") == "1":
            file = (path.parent / file).resolve()
        x, y = float(dst.get("xOff", 0)), float(dst.get("yOff", 0))
        w, h = round(float(dst.get("xSize", 0))), round(float(dst.get("ySize", 0)))
        transform = grid * Affine.translation(x, y)
        out.append(TileFacts(file, crs, transform, w, h, len(bands), dtype, nodata))
    return out
