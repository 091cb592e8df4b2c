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
  returns an :class:`InputError` in place of that grid's series; :meth:`fetch` (from
  :class:`~flair_pipeline.sentinel2.provider.Sentinel2Provider`) raises the first one.
* **One bad item costs its own date, not the year**: an item whose declarations no rule
  settles (:class:`~flair_pipeline.sentinel2.stac_meta.CatalogueContradiction`) or whose
  asset cannot be read is one line in ``TimeSeries.skipped`` naming it, and its date is
  dropped on the grids it covers (whole: no half mosaic of the date's other items); the
  other dates are kept.
* What an item says about its pixels (scale, offset, nodata, CRS, the BOA offset rule) is
  read in :mod:`~flair_pipeline.sentinel2.stac_meta`; which items and assets are used
  (collections, duplicates, SCL-derived masks) in :mod:`~flair_pipeline.sentinel2.stac_select`;
  timeouts and retries in :mod:`~flair_pipeline.sentinel2.stac_net`. The decisions taken
  per date go to ``TimeSeries.provenance`` (written next to ``products.txt``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from flair_pipeline.progress import Progress, each
from flair_pipeline.redaction import redact
from flair_pipeline.sentinel2.provider import (
    BANDS,
    CRS,
    RES,
    STAC_MASK_ASSETS,
    Grid,
    Sentinel2Provider,
    TimeSeries,
)
from flair_pipeline.sentinel2.stac_hrefs import Hrefs, s3_hint
from flair_pipeline.sentinel2.stac_meta import (
    BOA_ADD_OFFSET,
    AssetMeta,
    CatalogueContradiction,
    asset_meta,
    processing_baseline,
    product_name,
    scale_offset,
)
from flair_pipeline.sentinel2.stac_net import (
    gdal_env,
    gdal_messages,
    http_failure,
    stac_api_io,
    static_stac_io,
)
from flair_pipeline.sentinel2.stac_select import (
    BAND_KEYS,
    SCL_KEYS,
    SCL_MAPPING_NAME,
    asset_key,
    scl_to_masks,
    select_items,
)

__all__ = ["BOA_ADD_OFFSET", "StacProvider", "processing_baseline", "product_name", "scale_offset"]
SCL = "SCL"  # the scene classification, whatever its asset key (stac_select.SCL_KEYS)


@dataclass(frozen=True)
class Scene:
    """What is known of an item before opening a pixel.

    ``metas`` holds each band asset's scale / offset decision (:mod:`stac_meta`), by asset
    key; ``problem`` is the one line saying why the item cannot be used (declarations no
    rule settles), '' when it can: such an item costs its own date, not the year.
    """

    item: pystac.Item
    date: dt.date
    product: str
    footprint: Any  # shapely geometry, WGS84
    masks: str  # "assets" (cloud/snow), "scl" (derived from SCL) or "none"
    metas: dict[str, AssetMeta] = field(default_factory=dict)
    problem: str = ""

    @property
    def offset_dn(self) -> int:
        """DN removed by the BOA offset rule from the first band (stac_meta.boa_offset)."""
        m = next(iter(self.metas.values()), None)
        return round(-m.offset / m.scale) if m and m.scale else 0

    def record(self) -> dict[str, Any]:
        """This item's decisions, as recorded per date next to products.txt.

        Scale, offset (reflectance units and DN removed), the rule that won and why; a
        band whose decision differs from the first band's is listed under ``bands``.

        Returns:
            A JSON-serialisable dict: ``item``, ``collection``, ``product``, the first
            band's ``scale`` and ``offset`` (None without a band asset),
            ``boa_offset_removed_dn`` (int), ``offset_rule``, ``boa_offset_rule``, ``masks``
            (their source) and, when some differ, ``bands`` (asset key -> its decision).
        """
        first = next(iter(self.metas.values()), None)
        rec: dict[str, Any] = {
            "item": self.item.id,
            "collection": self.item.collection_id,
            "product": self.product,
            "scale": first.scale if first else None,
            "offset": first.offset if first else None,
            "boa_offset_removed_dn": self.offset_dn,
            "offset_rule": first.rule if first else "none",
            "boa_offset_rule": first.decision if first else "no band asset",
            "masks": "cloud/snow assets" if self.masks == "assets" else "derived from SCL",
        }
        odd = {
            k: {"scale": m.scale, "offset": m.offset, "rule": m.rule, "why": m.decision}
            for k, m in self.metas.items()
            if first
            and (m.scale, m.offset, m.decision) != (first.scale, first.offset, first.decision)
        }
        if odd:
            rec["bands"] = odd
        return rec


def to_reflectance(dn: np.ndarray, scale: float, offset: float, nodata: float) -> np.ndarray:
    """uint16 reflectance × 10000, L2A offset removed, clipped at 0; nodata → 0.

    Args:
        dn: The asset's digital numbers, any shape.
        scale: Reflectance per DN.
        offset: Reflectance added after scaling (negative for the L2A BOA offset).
        nodata: The DN value that marks no data.

    Returns:
        round((dn × scale + offset) × 10000) clipped to 0..65535, as uint16 of `dn`'s
        shape; 0 where `dn` equals `nodata`.
    """
    refl = np.rint((dn.astype(np.float64) * scale + offset) * 10000.0)
    refl = np.clip(refl, 0, 65535).astype(np.uint16)
    refl[dn == nodata] = 0
    return refl


#: (window, flat index into it, inside mask) of each grid pixel's source pixel.
_Nearest = tuple[Window, np.ndarray, np.ndarray]
#: An asset's geometry: (CRS string, affine transform, height, width).
_Geo = tuple[str, Any, int, int]
#: One grid's pixels from one scene: (data uint16 10×H×W, masks uint8 2×H×W, valid bool H×W).
_Pixels = tuple[np.ndarray, np.ndarray, np.ndarray]


class StacProvider(Sentinel2Provider):
    """Sentinel-2 series from a static STAC catalog (path or URL) or a STAC API.

    `catalog` is read once per provider (items cached); `api_url` is searched once per call
    over the union bbox of the call's grids. `collection` is one collection id or several
    in order of preference (duplicates of a scene are resolved by that order, see
    :mod:`~flair_pipeline.sentinel2.stac_select`). `max_cloud_cover` (eo:cloud_cover, %)
    drops items client-side. `workers` threads read scenes in parallel; by default 8 for
    remote hrefs (reads are latency-bound, GDAL releases the GIL while waiting) and 1 for
    local files (CPU-bound: threads only contend for the GIL). `retries`, `backoff_s`,
    `connect_timeout_s` and `read_timeout_s` bound every HTTP request, STAC and COG alike
    (:mod:`~flair_pipeline.sentinel2.stac_net`). `scl_masks` derives SNW/CLD from the SCL
    asset where an item has no readable ``cloud``/``snow`` assets; without it such an item
    raises an InputError naming its collection and the option.
    """

    name = "stac"

    def __init__(
        self,
        catalog: str | Path | None = None,
        api_url: str | None = None,
        collection: str | Sequence[str] = "sentinel-2-c1-l2a",
        max_cloud_cover: float | None = None,
        workers: int | None = None,
        retries: int = 3,
        backoff_s: float = 1.0,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
        scl_masks: bool = False,
        hrefs: Hrefs | None = None,
    ) -> None:
        if (catalog is None) == (api_url is None):
            raise InputError("StacProvider needs exactly one of catalog= or api_url=")
        self.catalog = str(catalog) if catalog is not None else None
        self.api_url = api_url
        cols = [collection] if isinstance(collection, str) else list(collection)
        if not cols:
            raise InputError("StacProvider needs at least one collection")
        self.collections: list[str] = cols
        self.collection = cols[0]
        self.max_cloud_cover = max_cloud_cover
        self.workers = workers
        self.retries, self.backoff_s = retries, backoff_s
        self.timeouts = (connect_timeout_s, read_timeout_s)
        self.scl_masks = scl_masks
        self.hrefs = hrefs or Hrefs(retries=retries, backoff_s=backoff_s, timeouts=self.timeouts)
        self._static: list[Scene] | None = None
        self._index: dict[tuple[Grid, _Geo], _Nearest | None] = {}
        self._dropped: list[tuple[str, str]] = []
        self._env: dict[str, str] = {}

    @property
    def gdal_env(self) -> dict[str, str]:
        """GDAL options for this provider's COG reads (retries and timeouts; S3 endpoint)."""
        return {
            **gdal_env(self.retries, self.backoff_s, *self.timeouts),
            **self.hrefs.gdal_options(),
        }

    def fetch_each(
        self,
        grids: list[Grid],
        start: dt.date,
        end: dt.date,
        *,
        progress: Progress | None = None,
    ) -> list[TimeSeries | InputError]:
        """One result per grid, in order: its series or the InputError naming it.

        One result per grid, in order: its series (dates sorted, T >= 1) or the
        InputError naming the grid when no date is usable. Catalogue failures raise, and
        so does an item without probability masks when ``scl_masks`` is off. `progress`
        counts the scenes read (each over every grid it covers).

        Args:
            grids: The 10 m EPSG:2154 grids (super-areas) to fill.
            start: First date searched (inclusive).
            end: Last date searched (inclusive).
            progress: Where to count the scenes read, or None.

        Returns:
            Per grid, in order: its :class:`TimeSeries` (data uint16 reflectance × 10000,
            T×10×H×W; masks uint8 %, T×2×H×W; skipped items with why), or the
            :class:`InputError` naming the grid when no date is usable.

        Raises:
            InputError: `end` is before `start`; the catalog or API cannot be read or
                searched; an item to read has no probability masks while ``scl_masks`` is
                off, or neither masks nor a readable SCL.
        """
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
        bad: list[set[dt.date]] = [set() for _ in grids]  # dates a bad item costs, per grid
        jobs = []
        for scene, gs in zip(scenes, which, strict=True):
            if not gs:
                continue
            if scene.problem:  # costs its own date on the grids it covers, not the year
                for g in gs:
                    seen[g] += 1
                    skipped[g].append((scene.product, scene.problem))
                    bad[g].add(scene.date)
                continue
            jobs.append((scene, gs))
        for scene, _ in jobs:
            self._check_masks(scene)
        self._env = self.gdal_env if jobs else {}  # S3 keys checked once, before any read
        n = self.workers or (8 if jobs and _remote(jobs[0][0]) else 1)
        try:
            with ThreadPoolExecutor(max(1, n)) as pool:
                results = pool.map(lambda j: self._read(j[0], [grids[g] for g in j[1]]), jobs)
                done = zip(jobs, results, strict=True)
                label = f"Sentinel-2 {start.year}"
                for (scene, gs), res in each(progress, label, done, "scenes", len(jobs)):
                    for k, g in enumerate(gs):
                        seen[g] += 1
                        if isinstance(res, str):
                            skipped[g].append((scene.product, res))
                            bad[g].add(scene.date)
                        elif not res[k][2].any():
                            skipped[g].append((scene.product, "no valid pixel over the grid"))
                        else:
                            acc[g].setdefault(scene.date, _Date()).add(scene, *res[k])
        finally:
            self._index.clear()
        for g, days in enumerate(bad):
            for day in days & acc[g].keys():  # no half mosaic beside a dropped item
                kept = ", ".join(s.product for s in acc[g].pop(day).scenes)
                skipped[g].append((kept, f"date {day} dropped with an unusable item of it"))
        extra = {"dropped_duplicates": [f"{i}: {why}" for i, why in self._dropped]}
        return [
            _series(grid, acc[g], skipped[g], seen[g], self._why(start, end), extra)
            for g, grid in enumerate(grids)
        ]

    def _why(self, start: dt.date, end: dt.date) -> str:
        cols = ", ".join(repr(c) for c in self.collections)
        return f"collection {cols} of {self._source()}, {start}..{end}"

    def _source(self) -> str:
        """Where the scenes come from, as written into ``_products.json``.

        The API URL, or the catalog relative to the working directory when under it: the
        text goes into ``_products.json``, which must not change between clones of a repo.

        Returns:
            The API URL, a catalog URL as given, or the local catalog path (POSIX,
            relative to the working directory when under it, else as configured).
        """
        if self.api_url or not self.catalog or "://" in self.catalog:
            return str(self.api_url or self.catalog)
        path, cwd = Path(self.catalog).resolve(), Path.cwd().resolve()
        return path.relative_to(cwd).as_posix() if path.is_relative_to(cwd) else self.catalog

    def _check_masks(self, scene: Scene) -> None:
        if scene.masks == "scl" and not self.scl_masks:
            raise InputError(
                f"collection {scene.item.collection_id!r} (item {scene.item.id}) has no readable "
                "'cloud'/'snow' probability assets: set sentinel2.source.scl_masks: true to derive "
                "the SNW/CLD masks from its scene classification (SCL)"
            )
        if scene.masks == "none":
            scl = asset_key(scene.item, SCL_KEYS)
            href = scene.item.assets[scl].get_absolute_href() or "" if scl else ""
            fix = (
                s3_hint()
                if href.startswith("s3://")
                else "choose another sentinel2.source.collection"
            )
            raise InputError(
                f"collection {scene.item.collection_id!r} (item {scene.item.id}) has neither "
                "readable 'cloud'/'snow' assets nor a readable scene classification (SCL): "
                f"no SNW/CLD masks possible; {fix}"
            )

    # -- catalogue ---------------------------------------------------------------------
    def _scenes(self, feet: list[Any], start: dt.date, end: dt.date) -> list[Scene]:
        if self.catalog is not None:
            if self._static is None:
                self._static = self._select(self._load_catalog())
            return self._static
        bbox = list(shapely.union_all(feet).bounds) if feet else None
        when = f"{start.isoformat()}/{end.isoformat()}"
        return self._select(self._search(bbox, when))

    def _select(self, items: list[pystac.Item]) -> list[Scene]:
        kept, self._dropped = select_items(items, self.collections)
        return [_scene(i, self.hrefs) for i in kept]

    def _search(self, bbox: list[float] | None, when: str) -> list[pystac.Item]:
        """All pages of one search; each request retried on its own (stac_net).

        Args:
            bbox: WGS84 (west, south, east, north) of the grids, or None for no bound.
            when: The ISO 8601 interval ``<start>/<end>``.

        Returns:
            Every item of the configured collections found, all pages read.

        Raises:
            InputError: The API cannot be opened or the search fails after the retries,
                naming the URL, the HTTP status when known and the settings to change.
        """
        import requests
        from pystac_client import Client
        from pystac_client.exceptions import APIError

        # only reached without a catalog, and __init__ requires exactly one of the two
        assert self.api_url is not None
        io = stac_api_io(self.retries, self.backoff_s, *self.timeouts)
        try:
            client = Client.open(self.api_url, stac_io=io, timeout=self.timeouts)
            found = client.search(collections=self.collections, bbox=bbox, datetime=when, limit=100)
            return list(found.items())
        except (APIError, requests.RequestException, OSError, ValueError) as exc:
            status = getattr(exc, "status_code", None)
            http = f"HTTP {status}, " if status else ""
            raise InputError(
                f"STAC API {self.api_url}: search failed ({http}{_short(exc)}); retried "
                f"{self.retries} times on 429/5xx/connection errors with timeouts "
                f"{self.timeouts[0]:g}/{self.timeouts[1]:g} s (sentinel2.source.max_retries, "
                "sentinel2.source.connect_timeout_s, sentinel2.source.read_timeout_s)"
            ) from exc

    def _load_catalog(self) -> list[pystac.Item]:
        href = self.catalog or ""
        if "://" not in href and not Path(href).is_file():
            raise InputError(f"STAC catalog {href}: file not found")

        def load() -> list[pystac.Item]:
            # remote: the same bounded StacApiIO as the API (no hand-written retry loop)
            io = static_stac_io(self.retries, self.backoff_s, *self.timeouts) if remote else None
            cat = pystac.Catalog.from_file(href, stac_io=io)
            items: list[pystac.Item] = []
            for col in self.collections:
                child = cat.get_child(col)
                if child is not None:
                    items += list(child.get_items(recursive=True))
            if items:
                return items
            return list(cat.get_items(recursive=True))

        remote = "://" in href
        try:
            return load()
        except InputError:
            raise
        except Exception as exc:  # network, HTTP and JSON failures all look alike here
            status = getattr(exc, "status_code", None)
            why = f"HTTP {status}, " if status else ""
            if remote:
                raise InputError(
                    f"STAC catalog {href}: unreadable ({why}{_short(exc)}); retried "
                    f"{self.retries} times on 429/5xx/connection errors (sentinel2.source.max_retries)"
                ) from exc
            raise InputError(
                f"STAC catalog {href}: not a readable STAC catalog ({_short(exc)})"
            ) from exc

    # -- pixels ------------------------------------------------------------------------
    def _read(self, scene: Scene, grids: list[Grid]) -> list[_Pixels] | str:
        """Each asset of `scene` opened once, every grid's window read from it.

        Returns:
            Per grid (data uint16 reflectance × 10000, 10×H×W; masks uint8 SNW/CLD %,
            2×H×W; valid bool H×W), or the one-line reason the whole scene is unusable.
        """
        shapes = [(g.height, g.width) for g in grids]
        out = [
            (np.zeros((10, *hw), np.uint16), np.zeros((2, *hw), np.uint8), np.zeros(hw, bool))
            for hw in shapes
        ]
        keys = list(BANDS) + (list(STAC_MASK_ASSETS) if scene.masks == "assets" else [SCL])
        with rasterio.Env(**self._env):
            for b, key in enumerate(keys):
                why = self._read_asset(scene, b, key, grids, out)
                if why:
                    return why
        return out

    def _read_asset(
        self, scene: Scene, b: int, what: str, grids: list[Grid], out: list[_Pixels]
    ) -> str:
        """Open the asset of `what` once and fill band `b` of every grid.

        `what` is a band name, SCL, or a mask asset key.

        Returns:
            '' when the asset was read into `out`; else one line on why it failed (missing,
            unreadable s3:// href, no or conflicting CRS, read error; signed hrefs redacted).
        """
        spectral = b < len(BANDS)
        candidates = BAND_KEYS[what] if spectral else SCL_KEYS if what == SCL else (what,)
        key = asset_key(scene.item, candidates)
        if key is None:
            return f"asset {' / '.join(repr(k) for k in candidates)} missing"
        if not self.hrefs.readable(scene.item, key):
            return f"asset {key!r} not readable: s3:// href ({s3_hint()})"
        href = self.hrefs.href(scene.item, key)
        known = scene.metas.get(key) if spectral else None
        meta = known or asset_meta(scene.item, key, reflectance=spectral)
        try:
            with gdal_messages() as said, rasterio.open(href) as src:
                nodata = meta.nodata if meta.nodata is not None else src.nodata
                nodata = 0 if nodata is None else nodata
                crs = src.crs.to_string() if src.crs else meta.crs
                if crs is None:
                    return f"asset {key!r} has no CRS in the file nor proj:code/proj:epsg"
                if src.crs and meta.crs and rasterio.crs.CRS.from_user_input(meta.crs) != src.crs:
                    return f"asset {key!r}: file CRS {crs} but the item says {meta.crs}"
                geo = (crs, src.transform, src.height, src.width)
                for g, (data, masks, valid) in zip(grids, out, strict=True):
                    hit = self._nearest(g, geo)
                    if hit is None:
                        continue
                    window, local, inside = hit
                    dn = np.full(g.height * g.width, nodata, src.dtypes[0])
                    dn[inside] = src.read(1, window=window).ravel()[local]
                    dn = dn.reshape(g.height, g.width)
                    if spectral:
                        data[b] = to_reflectance(dn, meta.scale, meta.offset, nodata)
                        valid |= dn != nodata
                    elif what == SCL:
                        masks[:] = scl_to_masks(dn)
                    else:
                        masks[b - len(BANDS)] = np.clip(dn, 0, 100)
        except (rasterio.errors.RasterioError, OSError) as exc:
            http, detail = http_failure(said), str(exc)
            if http:  # GDAL's own last words hide a stalled or refused read behind "format"
                env = self._env
                detail = (
                    f"{http} (GDAL_HTTP_TIMEOUT {env.get('GDAL_HTTP_TIMEOUT')} s, "
                    f"GDAL_HTTP_MAX_RETRY {env.get('GDAL_HTTP_MAX_RETRY')}: sentinel2."
                    f"read_timeout_s, sentinel2.source.max_retries); GDAL: {detail}"
                )
            return redact(f"asset {key!r} unreadable ({href}): {detail}")  # signed hrefs
        return ""

    def _nearest(self, grid: Grid, geo: _Geo) -> _Nearest | None:
        """Where each grid pixel takes its value from, cached per grid and geometry.

        (window, flat index into it, inside mask) of each grid pixel's source pixel;
        once per grid and asset geometry `geo` (crs, transform, height, width) per call.

        Returns:
            :func:`_index_map`'s answer for (`grid`, `geo`): None when no grid pixel
            falls on the asset.
        """
        key = (grid, geo)
        if key in self._index:
            return self._index[key]
        # two threads may both compute it: same answer, no lock needed
        hit = self._index[key] = _index_map(grid, *geo)
        return hit


def _index_map(grid: Grid, crs: str, transform: Any, height: int, width: int) -> _Nearest | None:
    """Where each grid pixel takes its value: a nearest-neighbour warp of pixel numbers.

    Where each grid pixel takes its value: rasterio's nearest-neighbour warp of a raster
    of source pixel numbers onto the grid.

    Warping the pixel *numbers* rather than the pixels gives the exact mapping GDAL's
    nearest reprojection uses, computed once and then applied to every date and band by
    fancy indexing, instead of one warp per date × band × zone.

    Returns:
        (window of the asset to read, int32 index into its flattened pixels for each grid
        pixel it covers, bool mask over the grid's H×W pixels flattened, True where
        covered), or None when no grid pixel falls on the asset.
    """
    bounds = transform_bounds(CRS, crs, *grid.bounds, densify_pts=21)
    window = from_bounds(*bounds, transform=transform)
    window = (
        Window(
            math.floor(window.col_off) - 1,
            math.floor(window.row_off) - 1,
            math.ceil(window.width) + 3,
            math.ceil(window.height) + 3,
        ).intersection(Window(0, 0, width, height))
        if _overlaps(window, height, width)
        else None
    )
    if window is None:
        return None
    h, w = int(window.height), int(window.width)
    numbers = np.arange(h * w, dtype=np.int32).reshape(h, w)
    target = np.full((grid.height, grid.width), -1, np.int32)
    reproject(
        numbers,
        target,
        src_transform=window_transform(window, transform),
        src_crs=crs,
        dst_transform=grid.transform,
        dst_crs=CRS,
        dst_nodata=-1,
        resampling=Resampling.nearest,
    )
    flat = target.ravel()
    inside = flat >= 0
    if not inside.any():
        return None
    return window, flat[inside], inside


def _overlaps(window: Window, height: int, width: int) -> bool:
    inside: bool = (
        window.col_off < width
        and window.row_off < height
        and window.col_off + window.width > 0
        and window.row_off + window.height > 0
    )
    return inside


class _Date:
    """One grid's mosaic for one date: earlier items (by id) win where they have data."""

    data: np.ndarray
    masks: np.ndarray
    filled: np.ndarray
    product: str | None = None

    def __init__(self) -> None:
        self.scenes: list[Scene] = []

    def add(self, scene: Scene, data: np.ndarray, masks: np.ndarray, valid: np.ndarray) -> None:
        if self.product is None:  # first item of the date: take its arrays as they are
            if not valid.all():
                data[:, ~valid], masks[:, ~valid] = 0, 0
            self.data, self.masks, self.filled, self.product = data, masks, valid, scene.product
            self.scenes.append(scene)
            return
        take = valid & ~self.filled
        if take.any():
            self.data[:, take], self.masks[:, take] = data[:, take], masks[:, take]
            self.filled |= take
            self.scenes.append(scene)


def _series(
    grid: Grid,
    dates: dict[dt.date, _Date],
    skipped: list[tuple[str, str]],
    seen: int,
    why: str,
    extra: dict[str, Any],
) -> TimeSeries | InputError:
    x0, y0, x1, y1 = grid.bounds
    label = f"grid ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}) EPSG:2154"
    if not dates:
        if not seen:
            return InputError(f"{label}: no Sentinel-2 item intersects it ({why})")
        reasons = "; ".join(f"{p}: {r}" for p, r in skipped[:3])
        return InputError(f"{label}: none of its {seen} items is usable ({why}): {reasons}")
    days = sorted(dates)
    per_date = [
        {"date": d.isoformat(), "items": [s.record() for s in dates[d].scenes]} for d in days
    ]
    provenance: dict[str, Any] = {"source": why, "dates": per_date, **extra}
    if any(s.masks == "scl" for d in days for s in dates[d].scenes):
        provenance["scl_mapping"] = SCL_MAPPING_NAME
    return TimeSeries(
        grid=grid,
        data=np.stack([dates[d].data for d in days]),
        masks=np.stack([dates[d].masks for d in days]),
        dates=days,
        products=[dates[d].product or "" for d in days],
        skipped=skipped,
        provenance=provenance,
    )


def _scene(item: pystac.Item, hrefs: Hrefs) -> Scene:
    when = item.datetime or pystac.utils.str_to_datetime(item.properties["start_datetime"])
    geom = shape(item.geometry) if item.geometry else shapely.box(*(item.bbox or ()))
    scl = asset_key(item, SCL_KEYS)
    if all(hrefs.readable(item, k) for k in STAC_MASK_ASSETS):
        masks = "assets"
    elif scl and hrefs.readable(item, scl):
        masks = "scl"
    else:
        masks = "none"
    metas: dict[str, AssetMeta] = {}
    try:
        for b in BANDS:
            key = asset_key(item, BAND_KEYS[b])
            if key is not None:
                metas[key] = asset_meta(item, key)
    except CatalogueContradiction as exc:
        return Scene(item, when.date(), product_name(item), geom, masks, metas, str(exc))
    return Scene(item, when.date(), product_name(item), geom, masks, metas)


def _remote(scene: Scene) -> bool:
    return any("://" in (a.get_absolute_href() or "") for a in scene.item.assets.values())


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def _cloud(item: pystac.Item) -> float:
    return float(item.properties.get("eo:cloud_cover", 0.0) or 0.0)


_TO_WGS84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def _wgs84_footprint(grid: Grid) -> Any:
    poly = shapely.box(*grid.bounds).segmentize(RES * 10)
    return shapely.transform(poly, lambda xy: np.c_[_TO_WGS84.transform(xy[:, 0], xy[:, 1])])
