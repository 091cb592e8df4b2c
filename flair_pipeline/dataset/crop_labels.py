"""RPG parcels to crop-type labels: 3 uint8 bands (LPIS levels 1–3), MSK's pixel-centre rule.

The RPG (any OGR vector of the declared year with ``CODE_CULTU``, and ``CODE_GROUP`` when a
table keys on it) goes through each level's table (:mod:`flair_pipeline.geo.crop_tables`)
and is burnt on the patch grid as the land-cover labels are
(:class:`~flair_pipeline.dataset.rasterize.LabelIndex`: a pixel takes the parcel holding its
centre, the later feature where parcels overlap). A pixel of no parcel takes the level's
background (level 1: 22, as FLAIR-HUB codes it); a level without a table is
:data:`~flair_pipeline.geo.crop_tables.NODATA` (255, the file's declared nodata) everywhere.
Invalid geometries are repaired and counted, features with no polygonal part dropped and
counted; a missing field, a missing CRS, null geometries or codes missing from a table are
one-line errors naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
from affine import Affine

from flair_pipeline.dataset.rasterize import LabelIndex, repair_polygons
from flair_pipeline.errors import InputError
from flair_pipeline.geo.crop_tables import (
    NODATA,
    CropTables,
    crop_classes,
    level1_classes,
    rpg_fields,
)
from flair_pipeline.geo.crs import normalize_crs
from flair_pipeline.geo.label_layers import choose_label_layer
from flair_pipeline.io import write_geotiff

__all__ = ["CropIndex", "read_rpg", "write_crop_labels"]

log = logging.getLogger(__name__)

#: Band descriptions of a crop-label file.
BANDS = ("LPIS level 1", "LPIS level 2", "LPIS level 3")
_MAX_LISTED = 20


def read_rpg(
    path: str | Path,
    tables: CropTables,
    layer: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
) -> gpd.GeoDataFrame:
    """Read an RPG layer and give each parcel its class at the three levels.

    The layer read follows :func:`~flair_pipeline.geo.label_layers.choose_label_layer`'s
    rule. Fields are matched ignoring case (``code_cultu`` is read as ``CODE_CULTU``).

    Args:
        path: The RPG file (GeoPackage, Shapefile, GeoJSON, FlatGeobuf…).
        tables: The checked tables of the three levels.
        layer: The layer, or None for the rule.
        bbox: Only the parcels touching these bounds (the file's CRS), or None for all.

    Returns:
        Parcels with uint8 ``level_1``..``level_3`` and ``CODE_CULTU``, indexed by fid;
        ``attrs``: ``source``, ``layer``, ``repaired``, ``dropped``.

    Raises:
        InputError: The file is missing or unreadable, has no CRS, lacks ``CODE_CULTU``
            (the line names the fields it has), has null geometries, or codes missing
            from a table (listed with their area).
    """
    import pyogrio  # here, not at import, as rasterize's read

    path = Path(path)
    if not path.exists():
        raise InputError(f"RPG file {path} does not exist")
    choice = choose_label_layer(path, layer)
    if choice.decision is not None:
        log.warning("%s", choice.decision)
    try:
        gdf = pyogrio.read_dataframe(path, layer=choice.name, fid_as_index=True, bbox=bbox)
    except Exception as exc:  # pyogrio raises several types for unreadable data
        raise InputError(f"RPG file {path} cannot be read as a vector layer: {exc}") from exc
    gdf = rpg_fields(gdf, tables, path)
    if gdf.crs is None:
        raise InputError(f"RPG file {path} has no CRS; expected one such as EPSG:2154")
    null = gdf.geometry.isna().to_numpy()
    if null.any():
        fids = ", ".join(str(i) for i in gdf.index[null][:_MAX_LISTED])
        raise InputError(
            f"RPG file {path}: {int(null.sum())} parcel(s) have no geometry (fid {fids}); "
            "delete or redraw them"
        )
    geoms, invalid, keep = repair_polygons(gdf.geometry.to_numpy())
    parcels = gpd.GeoDataFrame(
        {"CODE_CULTU": gdf["CODE_CULTU"].to_numpy()[keep]},
        geometry=gpd.GeoSeries(geoms[keep], index=gdf.index[keep], crs=gdf.crs),
        index=gdf.index[keep],
    )
    for field in tables.fields:
        parcels[field] = gdf[field].to_numpy()[keep]
    classes = crop_classes(parcels, tables, path)
    for level in range(3):
        parcels[f"level_{level + 1}"] = classes[:, level]
    parcels.attrs.update(
        source=str(path),
        layer=choice.name,
        layer_decision=choice.decision,
        repaired=int(invalid.sum()),
        dropped=int((~keep).sum()),
    )
    if invalid.any() or not keep.all():
        log.warning(
            "%s: repaired %d invalid geometries, dropped %d non-polygonal features",
            path,
            parcels.attrs["repaired"],
            parcels.attrs["dropped"],
        )
    return parcels


class CropIndex:
    """RPG parcels of one file, indexed per level for many patch grids (one per domain)."""

    def __init__(self, parcels: gpd.GeoDataFrame, tables: CropTables) -> None:
        self.tables = tables
        self.background = tables.background
        self.source = str(parcels.attrs.get("source", "RPG"))
        self.attrs = dict(parcels.attrs)
        self.parcels = len(parcels)
        # LabelIndex burns 1..255 over 0: a class c (0..254) is burnt as c + 1.
        self.levels: list[LabelIndex | None] = []
        for level, table in enumerate(tables.tables, 1):
            if table is None:
                self.levels.append(None)
                continue
            coded = gpd.GeoDataFrame(
                {"code": parcels[f"level_{level}"].to_numpy().astype(np.int64) + 1},
                geometry=parcels.geometry.to_numpy(),
                crs=parcels.crs,
            )
            self.levels.append(LabelIndex(coded, source=self.source))

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        tables: CropTables,
        layer: str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
    ) -> CropIndex:
        """Read, check and index an RPG file (:func:`read_rpg`).

        Args:
            path: The RPG file.
            tables: The tables.
            layer: The layer, or None.
            bbox: Only parcels touching these bounds (file CRS), or None.

        Returns:
            The index.
        """
        return cls(read_rpg(path, tables, layer, bbox), tables)

    def labels(self, transform: Affine, shape: tuple[int, int], crs: Any = None) -> np.ndarray:
        """The three levels' classes of a grid's pixels.

        Args:
            transform: The grid's affine transform.
            shape: (height, width).
            crs: The grid's CRS (None: the parcels').

        Returns:
            uint8 (3, height, width): a parcel's class where its polygon holds the pixel
            centre, else the level's background; :data:`NODATA` for a level without table.
        """
        out = np.full((3, *shape), NODATA, np.uint8)
        for i, index in enumerate(self.levels):
            if index is None:
                continue
            burnt = index.mask(transform, shape, crs)
            out[i] = np.where(burnt == 0, self.background[i], burnt.astype(np.int64) - 1)
        return out

    def describe(self) -> dict[str, Any]:
        """What the labels were made from, for the metadata.

        Returns:
            Source, layer, parcel count, repairs and each level's table and background.
        """
        return {
            "source": self.source,
            "layer": self.attrs.get("layer"),
            "layer_decision": self.attrs.get("layer_decision"),
            "parcels": self.parcels,
            "repaired": self.attrs.get("repaired", 0),
            "dropped": self.attrs.get("dropped", 0),
            "rule": "pixel centre; later feature wins where parcels overlap",
            "levels": self.tables.describe(),
        }


def _palette() -> dict[int, tuple[int, int, int, int]]:
    """Level 1's palette from IGN's class colours.

    Returns:
        class -> RGBA.
    """
    out = {}
    for c in level1_classes():
        rgb = c.colour.lstrip("#")
        out[c.index] = (int(rgb[0:2], 16), int(rgb[2:4], 16), int(rgb[4:6], 16), 255)
    return out


def write_crop_labels(
    path: str | Path,
    labels: np.ndarray,
    transform: Affine,
    crs: Any,
    descriptions: Sequence[str] = BANDS,
) -> Path:
    """Write crop labels as a 3-band uint8 GeoTIFF (nodata 255, IGN's level-1 colours).

    Args:
        path: The file written (atomically).
        labels: uint8 (3, H, W) from :meth:`CropIndex.labels`.
        transform: The grid's transform.
        crs: The grid's CRS.
        descriptions: The band descriptions.

    Returns:
        `path` as a Path.
    """
    return write_geotiff(
        path,
        labels,
        transform,
        normalize_crs(crs),
        nodata=NODATA,
        descriptions=list(descriptions),
        colormap=_palette(),
    )
