"""Vector labels to MSK rasters: one uint8 code per pixel, FLAIR's pixel-centre rule.

Labels come as polygons with an integer `code` (1..19). A domain holds tens of thousands of
them while a patch is 512 x 512 px, so :class:`LabelIndex` reads them once, keeps an
STRtree and burns only the polygons that touch a patch, clipped to it: the cost of a mask
depends on the patch, not on the domain. Pixels no polygon covers hold 0.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.features import rasterize
from shapely.geometry.base import BaseGeometry

from flair_pipeline.errors import InputError
from flair_pipeline.geo.crs import normalize_crs, same_crs
from flair_pipeline.geo.label_layers import choose_label_layer
from flair_pipeline.geo.label_mapping import (
    LabelMapping,
    apply_mapping,
    is_label_raster,
    raster_labels,
)
from flair_pipeline.io import write_geotiff
from flair_pipeline.nomenclature import colormap
from flair_pipeline.storage import gdal_options, gdal_path, is_remote, vector_env

__all__ = ["LabelIndex", "normalize_crs", "rasterize_like", "read_labels", "same_crs"]

log = logging.getLogger(__name__)

_MAX_LISTED = 20
_CLIP_VERTICES = 256


def _listing(ids: Any, values: Any) -> str:
    """Features as "fid 3 (code 0), … and 4 more": enough to find them, never a flood.

    Args:
        ids: Feature ids.
        values: Their codes, same order.

    Returns:
        The first few as text, with how many more.
    """
    pairs = [f"fid {i} (code {v})" for i, v in zip(list(ids)[:_MAX_LISTED], values, strict=False)]
    more = len(ids) - len(pairs)
    return ", ".join(pairs) + (f" and {more} more" if more > 0 else "")


def _polygonal(geom: BaseGeometry) -> BaseGeometry | None:
    """The polygonal part of `geom` (None if it has none): lines and points burn nothing.

    Args:
        geom: Any shapely geometry.

    Returns:
        A Polygon, MultiPolygon or None.
    """
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return None if geom.is_empty else geom
    polys = [
        p
        for part in shapely.get_parts(geom)
        for p in shapely.get_parts(part)
        if p.geom_type == "Polygon" and not p.is_empty
    ]
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def repair_polygons(
    geometries: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polygons ready to burn: 2-D, invalid ones repaired, non-polygonal parts dropped.

    The rule of every vector layer this package rasterizes (labels, RPG parcels):
    ``make_valid`` on invalid geometries, then the polygonal part of collections, points,
    lines and empties (:func:`_polygonal`); what has none is dropped.

    Args:
        geometries: Shapely geometries (object array, one per feature; none missing).

    Returns:
        ``(geoms, invalid, keep)``: the repaired geometries (None where dropped), a bool mask
        of the features that were invalid, and a bool mask of those kept.
    """
    geoms = shapely.force_2d(geometries)
    invalid = ~shapely.is_valid(geoms)
    geoms[invalid] = shapely.make_valid(geoms[invalid])
    odd = ~np.isin(shapely.get_type_id(geoms), (3, 6)) | shapely.is_empty(geoms)
    for i in np.flatnonzero(odd):  # collections from make_valid, points, lines, empties
        geoms[i] = _polygonal(geoms[i])
    return geoms, invalid, ~shapely.is_missing(geoms)


def extent_in(within: BaseGeometry, crs: str | None) -> BaseGeometry:
    """`within` (EPSG:2154) in the label layer's CRS, its edges densified first.

    Args:
        within: The extent to read, Lambert-93 metres.
        crs: The layer's CRS (WKT), or None (taken as Lambert-93).

    Returns:
        The extent in the layer's CRS (unchanged when it is Lambert-93).
    """
    from flair_pipeline.geo.crs import is_lambert93

    if crs is None or is_lambert93(crs):
        return within
    to = Transformer.from_crs("EPSG:2154", crs, always_xy=True)
    dense = shapely.segmentize(within, max(1.0, shapely.length(within) / 400))
    return shapely.transform(dense, lambda xy: np.column_stack(to.transform(*xy.T)))


def read_labels(
    path: str | Path,
    layer: str | None = None,
    mapping: LabelMapping | None = None,
    *,
    within: BaseGeometry | None = None,
) -> gpd.GeoDataFrame:
    """Read and check a label layer: polygons with an integer `code` in 1..19.

    `path` is a local path, or an ``https://`` / ``s3://`` URL read in place (GDAL's
    ``/vsicurl/`` / ``/vsis3/``, :func:`flair_pipeline.storage.gdal_path`): with `within`, a
    GeoPackage's spatial index is read and then only the pages of the features kept, over
    HTTP range requests, not the whole file. `path` is any OGR vector (GeoPackage, Shapefile with its .prj, GeoJSON, FlatGeobuf) or
    a label raster (.tif/.tiff/.jp2, polygonised, value in ``value``). The layer read is
    `layer`, or the one :func:`~flair_pipeline.geo.label_layers.choose_label_layer` picks
    (the only layer with geometries, else ``labels`` with a decision line, else refused):
    ``attrs["layer"]`` names it and ``attrs["layer_decision"]`` holds the decision line
    (None when the layer was named or alone). With `mapping`, the codes come from its
    field(s) through its table (:mod:`flair_pipeline.geo.label_mapping`); without, from the
    ``code`` column.

    The index is the feature id (the GeoPackage fid), so errors point at features a user
    can find in QGIS. Invalid geometries are repaired (``attrs["repaired"]``) and features
    with no polygonal part are dropped (``attrs["dropped"]``) rather than failing a whole
    domain over a few digitising slips; codes, nulls and a missing CRS are errors because
    no repair would be right.

    With `within` (an EPSG:2154 geometry: the mosaic's extent, the areas or patches kept),
    only the features intersecting it are read from a vector file (pyogrio's ``bbox`` for
    a rectangle, its ``mask`` otherwise, in the layer's CRS), so the codes checked and the
    geometries repaired are those read, and memory follows the extent, not the file.
    ``attrs["features_read"]`` is the count read and ``attrs["within"]`` the extent's
    bounds (None: the whole layer); ``attrs["repaired_fids"]`` the ids of the features
    repaired. A label raster is read whole.

    Args:
        path: The label file (a path or a URL).
        layer: The layer to read, or None for the rule above.
        mapping: A mapping from another nomenclature, or None.
        within: The extent to read (EPSG:2154), or None for the whole layer.

    Returns:
        The polygons with a uint8 ``code`` (1..19), in the file's CRS, indexed by fid.

    Raises:
        InputError: The file is missing or unreadable, has no CRS, no usable layer, or
            null or out-of-range codes (the features listed by fid).
    """
    if is_remote(path):
        with rasterio.Env(**gdal_options()), vector_env():
            return _read_labels(gdal_path(str(path)), layer, mapping, within)
    path = Path(path)
    if not path.exists():
        raise InputError(f"label file {path} does not exist")
    return _read_labels(path, layer, mapping, within)


def _read_labels(
    path: str | Path,
    layer: str | None,
    mapping: LabelMapping | None,
    within: BaseGeometry | None,
) -> gpd.GeoDataFrame:
    """:func:`read_labels` on a local file or a GDAL VSI path (``/vsicurl/…``).

    Args:
        path: The label file, or its VSI path when read in place.
        layer: The layer to read, or None.
        mapping: A mapping from another nomenclature, or None.
        within: The extent to read (EPSG:2154), or None.

    Returns:
        As :func:`read_labels`.

    Raises:
        InputError: As :func:`read_labels`.
    """
    choice = choose_label_layer(path, layer)
    if choice.decision is not None:
        log.warning("%s", choice.decision)
    if is_label_raster(path):
        gdf = raster_labels(path)
    else:
        import pyogrio  # here, not at import: predicting needs rasterize's grid helpers, not OGR

        where: dict[str, Any] = {}
        if within is not None:
            from flair_pipeline.geo.label_mapping import label_crs

            extent = extent_in(within, label_crs(path, choice.name))
            rectangle = shapely.equals(extent, shapely.box(*extent.bounds))
            where = {"bbox": extent.bounds} if rectangle else {"mask": extent}
        try:
            gdf = pyogrio.read_dataframe(path, layer=choice.name, fid_as_index=True, **where)
        except Exception as exc:  # pyogrio raises several types for unreadable data
            raise InputError(f"label file {path} cannot be read as a vector layer: {exc}") from exc
    if mapping is not None:
        gdf = apply_mapping(gdf, mapping, path)
    if "code" not in gdf.columns:
        found = [c for c in gdf.columns if c != gdf.geometry.name]
        raise InputError(f"label file {path} has no `code` column (columns: {found})")
    if gdf.crs is None:
        raise InputError(f"label file {path} has no CRS; expected one such as EPSG:2154")
    crs = normalize_crs(gdf.crs)
    if crs is not None and crs != CRS.from_user_input(gdf.crs):
        gdf = gdf.set_crs(crs.to_wkt(), allow_override=True)

    code = gdf["code"]
    if code.dtype.kind not in "iuf":
        raise InputError(f"label file {path}: `code` must be an integer column, found {code.dtype}")
    values = code.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 1) | (values > 19)
    if bad.any():
        raise InputError(
            f"label file {path}: `code` must be an integer 1..19; {int(bad.sum())} feature(s) "
            f"are not: {_listing(gdf.index[bad], code[bad])}"
        )
    gdf["code"] = values.astype(np.uint8)

    null = gdf.geometry.isna().to_numpy()
    if null.any():
        raise InputError(
            f"label file {path}: {int(null.sum())} feature(s) have no geometry: "
            f"{_listing(gdf.index[null], code[null])}"
        )
    geoms, invalid, keep = repair_polygons(gdf.geometry.to_numpy())
    out = gpd.GeoDataFrame({"code": gdf["code"].to_numpy()[keep]}, index=gdf.index[keep])
    out = out.set_geometry(gpd.GeoSeries(geoms[keep], index=out.index, crs=gdf.crs))
    out.attrs.update(
        source=str(path),
        layer=choice.name,
        layer_decision=choice.decision,
        repaired=int(invalid.sum()),
        dropped=int((~keep).sum()),
        features_read=len(gdf),
        within=None if within is None else list(within.bounds),
        repaired_fids=tuple(int(f) for f in gdf.index.to_numpy()[invalid]),
    )
    if invalid.any() or not keep.all():
        log.warning(
            "%s: repaired %d invalid geometries, dropped %d non-polygonal features",
            path,
            out.attrs["repaired"],
            out.attrs["dropped"],
        )
    return out


def _grid_bounds(transform: Affine, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of a grid, from its four corners (any affine transform).

    Args:
        transform: The grid's affine transform.
        shape: (height, width) in pixels.

    Returns:
        The bounds in the transform's CRS units.
    """
    h, w = shape
    xs, ys = zip(*(transform * (c, r) for c, r in ((0, 0), (w, 0), (0, h), (w, h))), strict=True)
    return min(xs), min(ys), max(xs), max(ys)


def _clip_large(
    geoms: np.ndarray, bounds: tuple[float, float, float, float], transform: Affine
) -> np.ndarray:
    """Clip polygons of many vertices to the grid plus a pixel; leave the rest untouched.

    GDAL's scanline fill costs ~1 µs per vertex per patch, so a river or road polygon of
    20 000 vertices would dominate every patch it touches. Small polygons are burnt as read:
    clipping them costs more than it saves and moves edges by an ulp, which can flip a pixel
    centre lying exactly on an edge. Pixel centres lie inside the grid, so what they see of
    a clipped polygon is unchanged.

    Args:
        geoms: The candidate polygons.
        bounds: The grid's bounds.
        transform: The grid's transform (its pixel size sets the margin).

    Returns:
        The polygons, the large ones clipped, same order and length.
    """
    large = shapely.get_num_coordinates(geoms) > _CLIP_VERTICES
    if not large.any():
        return geoms
    px = max(abs(transform.a) + abs(transform.b), abs(transform.d) + abs(transform.e))
    frame = shapely.box(bounds[0] - px, bounds[1] - px, bounds[2] + px, bounds[3] + px)
    geoms = geoms.copy()
    for i in np.flatnonzero(large):
        with contextlib.suppress(shapely.errors.GEOSException):  # unclipped is still right
            geoms[i] = shapely.intersection(geoms[i], frame)
    return geoms


class LabelIndex:
    """Label polygons of one file, indexed for rasterising many small grids fast.

    Built once per domain and reused for every patch: reading the file and building the
    STRtree dominate the cost otherwise.
    """

    def __init__(self, gdf: gpd.GeoDataFrame, source: str | None = None) -> None:
        self.source = source or str(gdf.attrs.get("source", "labels"))
        self.geoms: np.ndarray = np.asarray(gdf.geometry.to_numpy(), dtype=object)
        self.codes: np.ndarray = gdf["code"].to_numpy().astype(np.uint8)
        self.crs: CRS | None = normalize_crs(gdf.crs)
        self.tree = shapely.STRtree(self.geoms)
        self._to_grid: dict[str, tuple[Transformer, Transformer] | None] = {}

    @classmethod
    def from_file(
        cls, path: str | Path, layer: str | None = None, mapping: LabelMapping | None = None
    ) -> LabelIndex:
        """Read, check and index a label file (see :func:`read_labels`).

        Args:
            path: The label file.
            layer: The layer, or None.
            mapping: A nomenclature mapping, or None.

        Returns:
            The index over the checked labels.
        """
        return cls(read_labels(path, layer, mapping), source=str(path))

    def __len__(self) -> int:
        return len(self.geoms)

    def _transformers(self, crs: Any) -> tuple[Transformer, Transformer] | None:
        """(grid -> labels, labels -> grid), or None when no reprojection is needed; cached.

        Args:
            crs: The grid's CRS, or None (taken as the labels').

        Returns:
            The two pyproj transformers, or None.
        """
        key = crs if isinstance(crs, str) else crs.to_wkt()
        if key not in self._to_grid:
            grid = normalize_crs(crs)
            if self.crs is None or grid == self.crs:
                self._to_grid[key] = None
            else:
                self._to_grid[key] = (
                    Transformer.from_crs(grid, self.crs, always_xy=True),
                    Transformer.from_crs(self.crs, grid, always_xy=True),
                )
        return self._to_grid[key]

    def candidates(self, bounds: tuple[float, float, float, float]) -> np.ndarray:
        """Indices (in feature order) of the polygons intersecting `bounds` (labels' CRS).

        Args:
            bounds: (left, bottom, right, top) in the labels' CRS.

        Returns:
            Sorted int indices.
        """
        hits = self.tree.query(shapely.box(*bounds), predicate="intersects")
        hits.sort()
        return hits

    def mask(self, transform: Affine, shape: tuple[int, int], crs: Any = None) -> np.ndarray:
        """Codes of the grid's pixels (uint8, 0 where no polygon covers the pixel centre).

        `crs` is the grid's CRS; when it differs from the labels', the polygons near the
        grid are reprojected to it. Where polygons overlap, the later feature wins, so the
        result depends only on the file and is byte-identical across runs.

        Args:
            transform: The grid's affine transform.
            shape: (height, width) in pixels.
            crs: The grid's CRS (None: the labels').

        Returns:
            uint8 (height, width) FLAIR codes.
        """
        bounds = _grid_bounds(transform, shape)
        tr = None if crs is None else self._transformers(crs)
        query = bounds if tr is None else tr[0].transform_bounds(*bounds, densify_pts=21)
        idx = self.candidates(query)
        out = np.zeros(shape, dtype=np.uint8)
        if idx.size == 0:
            return out
        geoms = self.geoms[idx]
        if tr is not None:
            geoms = shapely.transform(geoms, lambda xy: np.column_stack(tr[1].transform(*xy.T)))
        geoms = _clip_large(geoms, bounds, transform)
        keep = ~shapely.is_empty(geoms)
        if keep.any():
            shapes = zip(geoms[keep], self.codes[idx][keep].tolist(), strict=True)
            rasterize(shapes, out=out, transform=transform, fill=0, all_touched=False)
        return out


def rasterize_like(
    labels_path: str | Path,
    like_path: str | Path,
    out_path: str | Path,
    layer: str | None = None,
) -> Path:
    """Write labels as an MSK on the exact grid of an existing image (e.g. its IMG).

    `layer` names the layer of a multi-layer label file (:func:`read_labels`' rule
    otherwise).

    The output is single-band uint8 with FLAIR's colour map, written atomically. Its CRS is
    the image's, normalised (a Lambert-93 LOCAL_CS is written as EPSG:2154). A grid no
    polygon touches is an error: an all-zero MSK almost always means the wrong file or CRS.

    Args:
        labels_path: The label file.
        like_path: The image whose grid the MSK takes.
        out_path: The MSK written.
        layer: The label layer, or None.

    Returns:
        `out_path` as a Path.

    Raises:
        InputError: The image is missing, unreadable or without a CRS, the labels are
            refused (see :func:`read_labels`), or no polygon touches the grid.
    """
    like_path = Path(like_path)
    if not like_path.exists():
        raise InputError(f"image {like_path} (--like) does not exist")
    try:
        with rasterio.open(like_path) as src:
            transform, shape, crs = src.transform, (src.height, src.width), src.crs
    except RasterioIOError as exc:
        raise InputError(f"image {like_path} (--like) cannot be read as a raster: {exc}") from exc
    if crs is None:
        raise InputError(f"image {like_path} (--like) has no CRS; cannot place the labels on it")
    index = LabelIndex.from_file(labels_path, layer)
    mask = index.mask(transform, shape, crs)
    if not mask.any():
        raise InputError(
            f"no label polygon of {labels_path} covers a pixel of {like_path} "
            f"(grid bounds {_grid_bounds(transform, shape)} in {crs}); wrong file or CRS?"
        )
    return write_geotiff(out_path, mask, transform, normalize_crs(crs), colormap=colormap())
