"""Another nomenclature's labels turned into FLAIR codes, by a table keyed on one or two columns.

OCS GE tells agricultural land from herbaceous vegetation only by its cover code
(``code_cs``) *and* its use code (``code_us``), so a row of the mapping table may key on
both. The table is a CSV with the key column(s) and a ``flair`` column (1..19, FLAIR's
nomenclature, see :mod:`flair_pipeline.nomenclature`)::

    code_cs,code_us,flair
    CS2.2.1,US1.1,18
    CS2.2.1,US235,10

Values the table does not map are an error listing each one with its area (m²), largest
first: a silent default class would corrupt the labels. Label rasters (e.g. IGN's land
cover rasters) are polygonised first, their pixel value in the column ``value``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterio.features import shapes

from flair_pipeline.errors import InputError
from flair_pipeline.storage import is_url, read_text

#: Suffixes read as label rasters rather than OGR vectors (any case).
RASTER_LABEL_SUFFIXES = (".tif", ".tiff", ".jp2")
_MAX_LISTED = 20


@dataclass(frozen=True)
class LabelMapping:
    """Which column(s) hold the class and the CSV table turning them into FLAIR codes.

    `fields` names one or two columns of the layer (``value`` for a label raster);
    `table` is None when the field already holds FLAIR codes.
    """

    fields: tuple[str, ...]
    table: Path | str | None = None  # a str: a URL (a raw root read in place)

    def load(self) -> dict[tuple[str, ...], int]:
        """Key (one string per field) -> FLAIR code; InputError naming the bad row.

        Returns:
            The table's mapping, keys stripped.

        Raises:
            InputError: The table is unreadable, lacks a key or the ``flair`` column, or a row's
                code is not an integer 1..19: naming the table and the line.
        """
        assert self.table is not None
        try:
            if is_url(self.table):
                text = read_text(str(self.table))
                if text is None:
                    raise InputError(f"{self.table}: cannot read the label mapping (not found)")
                rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
            else:
                with open(self.table, newline="", encoding="utf-8-sig") as fh:
                    rows = list(csv.DictReader(fh))
        except OSError as exc:
            raise InputError(f"{self.table}: cannot read the label mapping ({exc})") from None
        need = [*self.fields, "flair"]
        if not rows or any(c not in rows[0] for c in need):
            found = list(rows[0]) if rows else []
            raise InputError(f"{self.table}: mapping needs columns {need}, found {found}")
        out: dict[tuple[str, ...], int] = {}
        for i, row in enumerate(rows, 2):
            try:
                code = int(row["flair"])
            except ValueError:
                code = 0
            if not 1 <= code <= 19:
                raise InputError(
                    f"{self.table}: line {i}: flair code {row['flair']!r} is not an integer 1..19"
                )
            out[tuple(mapping_key(row[f]) for f in self.fields)] = code
        return out


def mapping_key(value: object) -> str:
    """A cell as a mapping key: integral floats lose their ".0", text is stripped.

    Args:
        value: A table or attribute cell.

    Returns:
        Its key text.
    """
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def apply_mapping(
    gdf: gpd.GeoDataFrame, mapping: LabelMapping, path: str | Path
) -> gpd.GeoDataFrame:
    """`gdf` with a ``code`` column of FLAIR codes from `mapping`'s field(s) and table.

    Args:
        gdf: The label layer.
        mapping: The field(s) read and the mapping table.
        path: The label file, named in errors.

    Returns:
        A copy of `gdf` with a uint8 ``code`` column (1..19).

    Raises:
        InputError: A field is missing, or values are unmapped: every one listed with
            its area in m² (the layer's CRS units).
    """
    missing = [f for f in mapping.fields if f not in gdf.columns]
    if missing:
        found = [c for c in gdf.columns if c != gdf.geometry.name]
        raise InputError(f"label file {path} has no column {missing} (columns: {found})")
    if mapping.table is None:
        return gdf.assign(code=gdf[mapping.fields[0]])
    table = mapping.load()
    keys = list(zip(*(gdf[f].map(mapping_key) for f in mapping.fields), strict=True))
    codes = np.array([table.get(k, 0) for k in keys], dtype=np.int64)
    if (codes == 0).any():
        area = pd.Series(gdf.geometry.area.to_numpy()[codes == 0])
        per = area.groupby(
            [" / ".join(k) for k, c in zip(keys, codes, strict=True) if c == 0]
        ).sum()
        per = per.sort_values(ascending=False)
        listed = ", ".join(f"{k} ({a:,.0f} m²)" for k, a in per.head(_MAX_LISTED).items())
        more = f" and {len(per) - _MAX_LISTED} more" if len(per) > _MAX_LISTED else ""
        raise InputError(
            f"label file {path}: {len(per)} value(s) of {'/'.join(mapping.fields)} are not in "
            f"{mapping.table}: {listed}{more}; add a row for each to the table"
        )
    return gdf.assign(code=codes)


def raster_labels(path: str | Path, band: int = 1) -> gpd.GeoDataFrame:
    """Polygons of equal pixel value of a label raster, the value in column ``value``.

    Pixels equal to the raster's nodata are left out. The index numbers the polygons.

    Args:
        path: A label raster (GeoTIFF, …).
        band: The band read.

    Returns:
        Polygons with their ``value``, in the raster's CRS.

    Raises:
        InputError: The raster cannot be read.
    """
    try:
        with rasterio.open(path) as src:
            arr, transform, crs, nodata = src.read(band), src.transform, src.crs, src.nodata
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"label raster {path} cannot be read ({exc})") from None
    mask = None if nodata is None else arr != nodata
    geoms, values = [], []
    for geom, value in shapes(arr, mask=mask, transform=transform):
        geoms.append(shapely.geometry.shape(geom))
        values.append(int(value))
    return gpd.GeoDataFrame({"value": values}, geometry=geoms, crs=crs)


def is_label_raster(path: str | Path) -> bool:
    """Whether `path` is read as a label raster (by its suffix, any case).

    Args:
        path: A label file.

    Returns:
        True for the suffixes of ``RASTER_LABEL_SUFFIXES``.
    """
    return Path(path).suffix.lower() in RASTER_LABEL_SUFFIXES


def label_crs(path: str | Path, layer: str | int | None = None) -> str | None:
    """The CRS of a label file (WKT, from its header only), None when it has none.

    Args:
        path: A label file (raster or vector).
        layer: The vector layer read (None: the first).

    Returns:
        The CRS as WKT, or None.
    """
    if is_label_raster(path):
        with rasterio.open(path) as src:
            return src.crs.to_wkt() if src.crs else None
    import pyogrio

    crs: str | None = pyogrio.read_info(path, layer=layer).get("crs")
    return crs
