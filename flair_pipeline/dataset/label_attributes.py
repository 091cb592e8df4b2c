"""A label layer's codes checked from its attributes alone: a département's layer without its geometries.

The sources step checks a domain's label layer before anything is sampled. Reading and
repairing every geometry of a département's OCS GE layer (about 15 million polygons)
takes minutes (145 s at 15.2 million polygons); its codes alone, read as an Arrow
column (pyogrio ``read_arrow`` with ``read_geometry=False``, the mosaic's extent as
``bbox``: OGR's spatial filter, a GeoPackage's R-tree), take seconds (the whole sources
step: 10.9 s at 15.2 million polygons, ``bench/departement.py``, docs/performance.md). Used for a département-size delivery
(:data:`~flair_pipeline.dataset.coarse_coverage.AUTO_OVERVIEW_TILES`); the geometries are
then checked and repaired where they are read (the areas scored, the patches' masks).

Anything doubtful (a null, non-integer or out-of-range code, a missing field, a value the
mapping table lacks, a file pyogrio cannot read this way) returns None: the caller then
reads the features as before (:func:`~flair_pipeline.dataset.rasterize.read_labels`), whose
error line names the features by fid. So a bad layer is refused with the same line,
whatever its size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from shapely.geometry.base import BaseGeometry

from flair_pipeline.geo.label_layers import choose_label_layer
from flair_pipeline.geo.label_mapping import LabelMapping, label_crs, mapping_key
from flair_pipeline.storage import vector_location

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttributeCheck:
    """A label layer whose codes passed, read without geometries.

    Attributes:
        features: Features over the extent (OGR's spatial filter: envelopes meeting it).
        layer: The layer read.
        layer_decision: The decision line when the layer was chosen among several.
    """

    features: int
    layer: str
    layer_decision: str | None


def check_label_attributes(
    path: str | Path,
    layer: str | None,
    mapping: LabelMapping | None,
    within: BaseGeometry,
) -> AttributeCheck | None:
    """Check the FLAIR codes of a vector label layer over `within` without reading geometries.

    Args:
        path: A vector label file (GeoPackage, Shapefile, FlatGeobuf…): local, or an
            ``s3://`` / ``https://`` URL read in place (GDAL's ``/vsis3/``, ``/vsicurl/``).
        layer: The layer, or None (:func:`~flair_pipeline.geo.label_layers.choose_label_layer`).
        mapping: A mapping from another nomenclature (its fields and table), or None (the
            ``code`` column, integers 1..19).
        within: The extent (EPSG:2154); its bounds, in the layer's CRS, filter the features.

    Returns:
        The :class:`AttributeCheck` when every code is valid, None when anything is
        doubtful (the caller reads the features to name the bad ones).
    """
    import pyogrio  # OGR: not at import

    from flair_pipeline.dataset.rasterize import extent_in

    try:
        with vector_location(path) as where:  # a URL: GDAL's options, its VSI path
            choice = choose_label_layer(where, layer)
            fields = list(mapping.fields) if mapping is not None else ["code"]
            bbox = extent_in(within, label_crs(where, choice.name)).bounds
            _, table = pyogrio.read_arrow(
                where, layer=choice.name, columns=fields, read_geometry=False, bbox=bbox
            )
    except Exception:  # any failure: the full read names it
        return None
    if any(f not in table.column_names for f in fields):
        return None
    if mapping is not None and mapping.table is not None:
        frame = table.select(fields).to_pandas().drop_duplicates()
        lookup = mapping.load()
        keys = zip(*(frame[f].map(mapping_key) for f in fields), strict=True)
        codes = np.asarray([lookup.get(k, 0) for k in keys], dtype=float)
    else:
        column = table.column(fields[0])
        if column.null_count:
            return None
        try:
            codes = np.unique(column.to_numpy().astype(float))
        except (TypeError, ValueError):  # text codes: the full read says what they are
            return None
    if ((codes != np.round(codes)) | (codes < 1) | (codes > 19)).any():
        return None
    if choice.decision is not None:
        log.warning("%s", choice.decision)
    return AttributeCheck(table.num_rows, str(choice.name), choice.decision)
