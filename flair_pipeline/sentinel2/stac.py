"""Sentinel-2 L2A series from a STAC catalogue: a static catalog or a STAC API (Earth Search).

Items are Earth Search ``sentinel-2-c1-l2a`` items: one cloud-optimised GeoTIFF per band in
the tile's UTM zone (10 m or 20 m), plus the ``cloud`` and ``snow`` probability assets. The
synthetic archive is written the same way, so the same code reads both.

Why it is shaped this way:

* A domain's zones are asked for in one call, and each scene asset is opened **once per
  call** and every grid's window read from that open dataset: opening (an HTTP round trip
  per file on a remote COG) costs far more than reading a 110 × 110 px window.
* Reprojection from UTM is rasterio's nearest-neighbour warp (which also up-samples the
  20 m bands by nearest, as FLAIR did), applied once per grid and asset geometry to a
  raster of source pixel numbers; every date and band then takes its pixels through that
  index map. Only the window around the grid is read.
* Several items on one date covering a grid (overlapping MGRS tiles, reprocessed copies)
  are **mosaicked**: items in id order, the first valid pixel wins; the date's product
  name is the first item that contributed.
* A per-grid failure must not lose the other zones of the domain: :meth:`fetch_each`
  returns an :class:`InputError` in place of that grid's series; :meth:`fetch` (the
  provider protocol) raises the first one.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pystac
import rasterio
import shapely
from pyproj import Transformer
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.windows import Window, from_bounds
from rasterio.windows import transform as window_transform
from shapely.geometry import shape

from flair_pipeline.errors import InputError
from flair_pipeline.redaction import redact
from flair_pipeline.sentinel2.provider import (
    BANDS,
    CRS,
    RES,
    STAC_ASSETS,
    STAC_MASK_ASSETS,
    Grid,
    TimeSeries,
)

ASSETS = STAC_ASSETS + STAC_MASK_ASSETS
BOA_ADD_OFFSET = 1000  # DN, processing baseline >= 04.00 (ESA, January 2022)
#: GDAL settings for remote COGs: no directory listing, merged range requests, retries.
GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_MAX_RETRY": "4",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "AWS_NO_SIGN_REQUEST": os.environ.get("AWS_NO_SIGN_REQUEST", "YES"),
}
T = TypeVar("T")


@dataclass(frozen=True)
class Scene:
    """What is known of an item before opening a pixel."""

    item: pystac.Item
    date: dt.date
    product: str
    footprint: Any  # shapely geometry, WGS84


def product_name(item: pystac.Item) -> str:
    """``s2:product_uri`` without ``.SAFE`` (FLAIR's products.txt), else the item id."""
    uri = item.properties.get("s2:product_uri")
    return str(uri).removesuffix(".SAFE") if uri else item.id


def processing_baseline(item: pystac.Item) -> float | None:
    """``s2:processing_baseline`` as a number, else the ``_Nxxyy_`` field of the product."""
    try:
        return float(item.properties["s2:processing_baseline"])
    except (KeyError, TypeError, ValueError):
        pass
    m = re.search(r"_N(\d{2})(\d{2})_", str(item.properties.get("s2:product_uri", "")))
    return int(m[1]) + int(m[2]) / 100 if m else None


def scale_offset(item: pystac.Item, key: str) -> tuple[float, float]:
    """(scale, offset): reflectance = DN × scale + offset.

    A declared ``raster:bands[0].offset`` wins (Earth Search declares -0.1 for the
    harmonised collection 1). Otherwise baseline >= 04.00 means DN carry BOA_ADD_OFFSET,
    unless Earth Search says it already removed it (``earthsearch:boa_offset_applied``).
    """
    asset = item.assets[key]
    bands = asset.extra_fields.get("raster:bands") or [{}]
    band = bands[0] if isinstance(bands[0], dict) else {}
    scale = float(band.get("scale", asset.extra_fields.get("raster:scale", 1e-4)))
    offset = band.get("offset", asset.extra_fields.get("raster:offset"))
    if offset is not None:
        return scale, float(offset)
    baseline = processing_baseline(item)
    shifted = baseline is not None and baseline >= 4.0
    if item.properties.get("earthsearch:boa_offset_applied"):
        shifted = False
    return scale, -BOA_ADD_OFFSET * scale if shifted else 0.0


def to_reflectance(dn: np.ndarray, scale: float, offset: float, nodata: float) -> np.ndarray:
    """uint16 reflectance × 10000, L2A offset removed, clipped at 0; nodata → 0."""
    refl = np.rint((dn.astype(np.float64) * scale + offset) * 10000.0)
    refl = np.clip(refl, 0, 65535).astype(np.uint16)
    refl[dn == nodata] = 0
    return refl


def retry(
    what: str, fn: Callable[[], T], tries: int, backoff_s: float, fail: str = "unreachable"
) -> T:
    """`fn()` with exponential back-off; after `tries` failures, an InputError naming `what`."""
    last: Exception | None = None
    for k in range(max(tries, 1)):
        try:
            return fn()
        except InputError:
            raise
        except Exception as exc:  # network, HTTP and JSON failures all look alike here
            last = exc
            if k + 1 < tries:
                time.sleep(backoff_s * 2**k)
    raise InputError(f"{what}: {fail} after {max(tries, 1)} tries ({type(last).__name__}: {last})")


class StacProvider:
    """Sentinel-2 series from a static STAC catalog (path or URL) or a STAC API.

    `catalog` is read once per provider (items cached); `api_url` is searched once per call
    over the union bbox of the call's grids. `max_cloud_cover` (eo:cloud_cover, %) drops
    items client-side. `workers` threads read scenes in parallel; by default 8 for remote
    hrefs (reads are latency-bound, GDAL releases the GIL while waiting) and 1 for local
    files (CPU-bound: threads only contend for the GIL). `retries`/`backoff_s` govern
    catalogue access.
    """

    name = "stac"

    def __init__(
        self,
        catalog: str | Path | None = None,
        api_url: str | None = None,
        collection: str = "sentinel-2-c1-l2a",
        max_cloud_cover: float | None = None,
        workers: int | None = None,
        retries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        if (catalog is None) == (api_url is None):
            raise InputError("StacProvider needs exactly one of catalog= or api_url=")
        self.catalog = str(catalog) if catalog is not None else None
        self.api_url = api_url
        self.collection = collection
        self.max_cloud_cover = max_cloud_cover
        self.workers = workers
        self.retries, self.backoff_s = retries, backoff_s
        self._static: list[Scene] | None = None
        self._index: dict[tuple, tuple | None] = {}

    def fetch(self, grids: list[Grid], start: dt.date, end: dt.date) -> list[TimeSeries]:
        """Series per grid (see :meth:`fetch_each`); raises the first grid's InputError."""
        results = self.fetch_each(grids, start, end)
        for r in results:
            if isinstance(r, InputError):
                raise r
        return results  # type: ignore[return-value]

    def fetch_each(
        self, grids: list[Grid], start: dt.date, end: dt.date
    ) -> list[TimeSeries | InputError]:
        """One result per grid, in order: its series (dates sorted, T >= 1) or the
        InputError naming the grid when no date is usable. Catalogue failures raise."""
        if end < start:
            raise InputError(f"Sentinel-2 time range is empty: start {start} is after end {end}")
        feet = [_wgs84_footprint(g) for g in grids]
        scenes = [s for s in self._scenes(feet, start, end) if start <= s.date <= end]
        if self.max_cloud_cover is not None:
            scenes = [s for s in scenes if _cloud(s.item) <= self.max_cloud_cover]
        scenes.sort(key=lambda s: (s.date, s.item.id))
        which = [[g for g, f in enumerate(feet) if s.footprint.intersects(f)] for s in scenes]
        acc: list[dict[dt.date, _Date]] = [{} for _ in grids]
        skipped: list[list[tuple[str, str]]] = [[] for _ in grids]
        seen = [0] * len(grids)
        jobs = [(s, gs) for s, gs in zip(scenes, which, strict=True) if gs]
        n = self.workers or (8 if jobs and _remote(jobs[0][0]) else 1)
        try:
            with ThreadPoolExecutor(max(1, n)) as pool:
                results = pool.map(lambda j: self._read(j[0], [grids[g] for g in j[1]]), jobs)
                for (scene, gs), res in zip(jobs, results, strict=True):
                    for k, g in enumerate(gs):
                        seen[g] += 1
                        if isinstance(res, str):
                            skipped[g].append((scene.product, res))
                        elif not res[k][2].any():
                            skipped[g].append((scene.product, "no valid pixel over the grid"))
                        else:
                            acc[g].setdefault(scene.date, _Date()).add(scene, *res[k])
        finally:
            self._index.clear()
        return [
            _series(grid, acc[g], skipped[g], seen[g], self._why(start, end))
            for g, grid in enumerate(grids)
        ]

    def _why(self, start: dt.date, end: dt.date) -> str:
        return f"collection {self.collection!r} of {self.api_url or self.catalog}, {start}..{end}"

    # -- catalogue ---------------------------------------------------------------------
    def _scenes(self, feet: list[Any], start: dt.date, end: dt.date) -> list[Scene]:
        if self.catalog is not None:
            if self._static is None:
                self._static = [_scene(i) for i in self._load_catalog()]
            return self._static
        from pystac_client import Client

        bbox = list(shapely.union_all(feet).bounds) if feet else None
        when = f"{start.isoformat()}/{end.isoformat()}"

        def search() -> list[pystac.Item]:
            client = Client.open(self.api_url)
            found = client.search(
                collections=[self.collection], bbox=bbox, datetime=when, limit=100
            )
            return list(found.items())

        items = retry(f"STAC API {self.api_url}", search, self.retries, self.backoff_s)
        return [_scene(i) for i in items]

    def _load_catalog(self) -> list[pystac.Item]:
        href = self.catalog or ""
        if "://" not in href and not Path(href).is_file():
            raise InputError(f"STAC catalog {href}: file not found")

        def load() -> list[pystac.Item]:
            cat = pystac.Catalog.from_file(href)
            child = cat.get_child(self.collection)
            if child is not None:
                return list(child.get_items(recursive=True))
            return [i for i in cat.get_items(recursive=True) if i.collection_id == self.collection]

        if "://" in href:
            return retry(f"STAC catalog {href}", load, self.retries, self.backoff_s)
        return retry(f"STAC catalog {href}", load, 1, 0.0, fail="not a readable STAC catalog")

    # -- pixels ------------------------------------------------------------------------
    def _read(self, scene: Scene, grids: list[Grid]) -> list[tuple] | str:
        """Each asset of `scene` opened once, every grid's window read from it.

        Returns per grid (data uint16 10×H×W, masks uint8 2×H×W, valid bool H×W), or the
        reason the whole scene is unusable.
        """
        shapes = [(g.height, g.width) for g in grids]
        out = [(np.zeros((10, *hw), np.uint16), np.zeros((2, *hw), np.uint8), np.zeros(hw, bool))
               for hw in shapes]  # fmt: skip
        with rasterio.Env(**GDAL_ENV):
            for b, key in enumerate(ASSETS):
                why = self._read_asset(scene, b, key, grids, out)
                if why:
                    return why
        return out

    def _read_asset(self, scene: Scene, b: int, key: str, grids: list[Grid], out: list) -> str:
        """Open asset `key` once and fill band `b` of every grid; '' or why it failed."""
        if key not in scene.item.assets:
            return f"asset {key!r} missing"
        href = scene.item.assets[key].get_absolute_href() or ""
        spectral = b < len(BANDS)
        scale, offset = scale_offset(scene.item, key) if spectral else (1.0, 0.0)
        try:
            with rasterio.open(href) as src:
                nodata = src.nodata if src.nodata is not None else 0
                geo = (src.crs.to_string(), src.transform, src.height, src.width)
                for g, (data, masks, valid) in zip(grids, out, strict=True):
                    hit = self._nearest(g, geo)
                    if hit is None:
                        continue
                    window, local, inside = hit
                    dn = np.full(g.height * g.width, nodata, src.dtypes[0])
                    dn[inside] = src.read(1, window=window).ravel()[local]
                    dn = dn.reshape(g.height, g.width)
                    if spectral:
                        data[b] = to_reflectance(dn, scale, offset, nodata)
                        valid |= dn != nodata
                    else:
                        masks[b - len(BANDS)] = np.clip(dn, 0, 100)
        except (rasterio.errors.RasterioError, OSError) as exc:
            return redact(f"asset {key!r} unreadable ({href}): {exc}")  # signed hrefs
        return ""

    def _nearest(self, grid: Grid, geo: tuple) -> tuple[Window, np.ndarray, np.ndarray] | None:
        """(window, flat index into it, inside mask) of each grid pixel's source pixel;
        once per grid and asset geometry `geo` (crs, transform, height, width) per call."""
        key = (grid, geo)
        hit = self._index.get(key, False)
        if hit is False:  # two threads may both compute it: same answer, no lock needed
            hit = self._index[key] = _index_map(grid, *geo)
        return hit


def _index_map(grid: Grid, crs: str, transform: Any, height: int, width: int) -> tuple | None:
    """Where each grid pixel takes its value: rasterio's nearest-neighbour warp of a raster
    of source pixel numbers onto the grid.

    Warping the pixel *numbers* rather than the pixels gives the exact mapping GDAL's
    nearest reprojection uses, computed once and then applied to every date and band by
    fancy indexing, instead of one warp per date × band × zone.
    """
    bounds = transform_bounds(CRS, crs, *grid.bounds, densify_pts=21)
    window = from_bounds(*bounds, transform=transform)
    window = Window(
        math.floor(window.col_off) - 1, math.floor(window.row_off) - 1,
        math.ceil(window.width) + 3, math.ceil(window.height) + 3,
    ).intersection(Window(0, 0, width, height)) if _overlaps(window, height, width) else None  # fmt: skip
    if window is None:
        return None
    h, w = int(window.height), int(window.width)
    numbers = np.arange(h * w, dtype=np.int32).reshape(h, w)
    target = np.full((grid.height, grid.width), -1, np.int32)
    reproject(
        numbers, target,
        src_transform=window_transform(window, transform), src_crs=crs,
        dst_transform=grid.transform, dst_crs=CRS, dst_nodata=-1,
        resampling=Resampling.nearest,
    )  # fmt: skip
    flat = target.ravel()
    inside = flat >= 0
    if not inside.any():
        return None
    return window, flat[inside], inside


def _overlaps(window: Window, height: int, width: int) -> bool:
    return (
        window.col_off < width and window.row_off < height
        and window.col_off + window.width > 0 and window.row_off + window.height > 0
    )  # fmt: skip


class _Date:
    """One grid's mosaic for one date: earlier items (by id) win where they have data."""

    data: np.ndarray
    masks: np.ndarray
    filled: np.ndarray
    product: str | None = None

    def add(self, scene: Scene, data: np.ndarray, masks: np.ndarray, valid: np.ndarray) -> None:
        if self.product is None:  # first item of the date: take its arrays as they are
            if not valid.all():
                data[:, ~valid], masks[:, ~valid] = 0, 0
            self.data, self.masks, self.filled, self.product = data, masks, valid, scene.product
            return
        take = valid & ~self.filled
        if take.any():
            self.data[:, take], self.masks[:, take] = data[:, take], masks[:, take]
            self.filled |= take


def _series(
    grid: Grid, dates: dict[dt.date, _Date], skipped: list, seen: int, why: str
) -> TimeSeries | InputError:
    x0, y0, x1, y1 = grid.bounds
    label = f"grid ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}) EPSG:2154"
    if not dates:
        if not seen:
            return InputError(f"{label}: no Sentinel-2 item intersects it ({why})")
        reasons = "; ".join(f"{p}: {r}" for p, r in skipped[:3])
        return InputError(f"{label}: none of its {seen} items is usable ({why}): {reasons}")
    days = sorted(dates)
    return TimeSeries(
        grid=grid,
        data=np.stack([dates[d].data for d in days]),
        masks=np.stack([dates[d].masks for d in days]),
        dates=days,
        products=[dates[d].product or "" for d in days],
        skipped=skipped,
    )


def _scene(item: pystac.Item) -> Scene:
    when = item.datetime or pystac.utils.str_to_datetime(item.properties["start_datetime"])
    geom = shape(item.geometry) if item.geometry else shapely.box(*item.bbox)
    return Scene(item, when.date(), product_name(item), geom)


def _remote(scene: Scene) -> bool:
    return any("://" in (a.get_absolute_href() or "") for a in scene.item.assets.values())


def _cloud(item: pystac.Item) -> float:
    return float(item.properties.get("eo:cloud_cover", 0.0) or 0.0)


_TO_WGS84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def _wgs84_footprint(grid: Grid) -> Any:
    poly = shapely.box(*grid.bounds).segmentize(RES * 10)
    return shapely.transform(poly, lambda xy: np.c_[_TO_WGS84.transform(xy[:, 0], xy[:, 1])])
