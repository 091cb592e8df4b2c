"""The ``departement`` scenario: one domain the size of a département, without a terabyte.

A département as IGN delivers it is about 6,000 km² of BD ORTHO dalles (1 km, 5000 × 5000
px at 0.2 m, RVB and IRC JPEG 2000), an OCS GE layer of millions of polygons, DSM/DTM
tiles and a year of Sentinel-2. This world looks like that to the pipeline while the disk
holds a few distinct files and their indexes:

- ``ortho/``: ``n × n`` dalles named like IGN's
  (``49-2022-0405-6700-LA93-0M20-E080`` RVB, ``…-LA93-0M20-IRC-E080`` IRC; x, y of the
  upper-left corner in km, or in metres for dalles that are not whole kilometres). Each
  dalle is one of ``archetypes`` distinct JPEG 2000 files (``ortho/sources/``, lossless)
  placed at its own position by one GDAL VRT per product (``ortho/<dept>-<year>-LA93-0M20-
  E080.vrt`` and ``…-IRC-E080.vrt``, sources relative to the VRT so the world can move):
  the pipeline reads the VRT as one ortho tile and takes the dalles' footprints from its
  XML (:mod:`flair_pipeline.geo.vrt_index`), never opening thousands of files.
  ``ortho/dalles.gpkg`` lists the dalles (name, product, source file, footprint), as the
  dalle index IGN ships with BD ORTHO.
- ``labels.gpkg`` (layer ``labels``, field ``code``, as the demo's label layer): every
  dalle carries its archetype's polygons translated to its position, so labels and pixels
  agree everywhere; about ``labels_per_km2`` (2,500, OCS GE's density) polygons per km²,
  parcels of a jittered grid whose codes cluster in ~100 m blocks drawn from FLAIR's
  class shares (:data:`~flair_pipeline.nomenclature.FLAIR_SHARES`). Written in row
  blocks with its R-tree.
- ``dem/dsm.vrt`` and ``dem/dtm.vrt``: 1 m float32 heights, one GeoTIFF per archetype
  (``dem/sources/``) placed like the ortho: the DTM a gentle relief (the same at every
  dalle edge, so no step between dalles), the DSM the DTM plus a height per class.
- ``sentinel2/``: a local STAC catalogue (as :mod:`flair_pipeline.synthetic.stac` writes)
  whose items cover the département; see :func:`write_sentinel2`.
- ``domain.yaml`` naming the roles.

Same scale, seed and sizes give the same files.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
import shapely
import yaml
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.transform import from_origin

from flair_pipeline.domains import DomainId, department_centre_l93
from flair_pipeline.errors import FlairPipelineError, InputError
from flair_pipeline.nomenclature import FLAIR_SHARES

RES = 0.2  # ortho pixel size, metres
DEM_RES = 1.0  # DSM/DTM pixel size, metres
#: Side of the full-scale département, km (78 × 78 = 6,084 km², about a French département).
FULL_SIDE_KM = 78.0
DOMAIN = "D049_2022"  # Maine-et-Loire 2022, the département of the real BD ORTHO samples
LABELS_PER_KM2 = 2500.0  # OCS GE's density
_BLOCK_PX = 500  # a reused Sentinel-2 block: 5 km at 10 m
#: GDAL writes this instead of "now" in GeoPackage metadata, so files are reproducible.
FIXED_DATE = "2000-01-01T00:00:00.000Z"
_JP2 = {"driver": "JP2OpenJPEG", "QUALITY": "100", "REVERSIBLE": "YES", "YCBCR420": "NO"}
#: (R, G, B, NIR) of each FLAIR code, the base colour of its polygons.
COLOURS: dict[int, tuple[int, int, int, int]] = {
    1: (190, 80, 70, 60),
    2: (150, 150, 130, 120),
    3: (120, 120, 125, 90),
    4: (170, 140, 100, 120),
    5: (40, 70, 110, 20),
    6: (30, 70, 40, 150),
    7: (50, 100, 50, 190),
    8: (90, 120, 70, 170),
    9: (110, 130, 80, 160),
    10: (120, 160, 90, 200),
    11: (160, 170, 100, 180),
    12: (140, 110, 80, 100),
    13: (60, 170, 200, 40),
    14: (245, 245, 250, 230),
    15: (130, 120, 90, 130),
    16: (40, 85, 45, 170),
    17: (100, 110, 70, 150),
    18: (210, 215, 220, 160),
    19: (100, 100, 100, 100),
}
#: Height above the ground of each code's objects, metres (the DSM's relief over the DTM).
HEIGHTS: dict[int, float] = {1: 9.0, 6: 16.0, 7: 14.0, 8: 2.0, 9: 1.5, 16: 15.0, 17: 3.0, 18: 3.0}


def code_shares() -> dict[int, float]:
    """Share of each FLAIR code 1..19 in the labels: FLAIR's 13 class shares, "other" split evenly.

    Returns:
        Code -> share, summing to 1.
    """
    shares = list(FLAIR_SHARES.values())
    out = {code: shares[code - 1] for code in range(1, 13)}
    out.update({code: shares[12] / 7 for code in range(13, 20)})
    total = sum(out.values())
    return {c: s / total for c, s in out.items()}


@dataclass(frozen=True)
class Plan:
    """Where the dalles are and which archetype each one shows.

    Attributes:
        domain: The domain id (``D049_2022``).
        left: Upper-left x of the mosaic, Lambert-93 m (on the dalle grid).
        top: Upper-left y.
        n: Dalles per side.
        dalle_px: A dalle's side in pixels (5000 for IGN's 1 km at 0.2 m).
        archetypes: Distinct dalles on disk.
        seed: The world's seed.
    """

    domain: DomainId
    left: float
    top: float
    n: int
    dalle_px: int
    archetypes: int
    seed: int

    @property
    def dalle_m(self) -> float:
        """A dalle's side in metres."""
        return self.dalle_px * RES

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of the mosaic, Lambert-93 m."""
        side = self.n * self.dalle_m
        return (self.left, self.top - side, self.left + side, self.top)

    def archetype_of(self) -> np.ndarray:
        """The archetype of each dalle, (n, n) int, row 0 at the top.

        Returns:
            Archetype indices in ``0 .. archetypes - 1``, seeded.
        """
        rng = np.random.default_rng([self.seed, self.domain.department, 51])
        return rng.integers(self.archetypes, size=(self.n, self.n))

    def dalle_name(self, row: int, col: int, irc: bool = False) -> str:
        """The IGN-style name (no suffix) of the dalle at (`row`, `col`).

        Args:
            row: Dalle row from the top.
            col: Dalle column from the left.
            irc: The IRC product (``-IRC-`` infix).

        Returns:
            ``<dept>-<year>-<xmin>-<ymax>-LA93-0M20[-IRC]-E080``: km on 4 digits when the
            dalles are whole kilometres (IGN's names), else metres on 7 digits.
        """
        x = self.left + col * self.dalle_m
        y = self.top - row * self.dalle_m
        if self.dalle_m % 1000 == 0:
            xs, ys = f"{round(x / 1000):04d}", f"{round(y / 1000):04d}"
        else:
            xs, ys = f"{round(x):07d}", f"{round(y):07d}"
        infix = "-IRC" if irc else ""
        d = self.domain
        return f"{d.department:02d}-{d.year}-{xs}-{ys}-LA93-0M20{infix}-E080"


def make_plan(scale: float = 1.0, seed: int = 0, dalle_px: int = 5000, archetypes: int = 8) -> Plan:
    """The plan of a département `scale` times the full one's area (78 km × 78 km at 1.0).

    Args:
        scale: Share of the full area (0.25: 39 km × 39 km).
        seed: The world's seed.
        dalle_px: A dalle's side in pixels at 0.2 m.
        archetypes: Distinct dalles written.

    Returns:
        The :class:`Plan`: ``n = round(78 km × √scale / dalle side)`` dalles per side (at
        least 1), the upper-left corner on the dalle grid near the département's centre.

    Raises:
        FlairPipelineError: A scale, dalle size or archetype count that is not positive.
    """
    if not scale > 0 or dalle_px < 1 or archetypes < 1:
        raise FlairPipelineError(
            f"departement scenario: scale {scale}, dalle_px {dalle_px} and archetypes "
            f"{archetypes} must be positive"
        )
    domain = DomainId.parse(DOMAIN)
    dalle_m = dalle_px * RES
    n = max(1, round(FULL_SIDE_KM * 1000 * math.sqrt(scale) / dalle_m))
    cx, cy = department_centre_l93(domain.department)
    side = n * dalle_m
    left = math.floor((cx - side / 2) / 1000) * 1000.0
    top = math.ceil((cy + side / 2) / 1000) * 1000.0
    return Plan(domain, left, top, n, dalle_px, archetypes, seed)


@dataclass
class Archetype:
    """One distinct dalle: its label parcels (in dalle coordinates, origin upper-left)."""

    boxes: np.ndarray  # (k, 4) x0, y0, x1, y1, metres, y downward from the dalle's top
    codes: np.ndarray  # (k,) int32 FLAIR codes


def make_archetype(plan: Plan, k: int, per_km2: float) -> Archetype:
    """Parcels of archetype `k`: a jittered grid of about `per_km2` cells per km².

    Rows of jittered heights, each cut at its own jittered columns; codes are drawn per
    ~100 m block from :func:`code_shares` and kept by 75 % of the block's parcels (the
    others drawn anew), so classes form patches as a landscape does.

    Args:
        plan: The world's plan (dalle size, seed).
        k: The archetype's index.
        per_km2: Target parcels per km².

    Returns:
        The :class:`Archetype`.
    """
    rng = np.random.default_rng([plan.seed, plan.domain.department, 52, k])
    side = plan.dalle_m
    m = max(1, round(side * math.sqrt(per_km2) / 1000))  # parcels per row and rows
    step = side / m

    def cuts(size: tuple[int, ...]) -> np.ndarray:
        inner = (np.arange(1, m) + rng.uniform(-0.35, 0.35, (*size, m - 1))) * step
        zero, end = np.zeros((*size, 1)), np.full((*size, 1), side)
        return np.round(np.concatenate([zero, inner, end], axis=-1) / RES) * RES

    ys = cuts(())  # row edges (m + 1)
    xs = cuts((m,))  # per row, column edges (m, m + 1)
    x0, x1 = xs[:, :-1].ravel(), xs[:, 1:].ravel()
    y0 = np.repeat(ys[:-1], m)
    y1 = np.repeat(ys[1:], m)
    codes_all = np.array(list(code_shares()), dtype=np.int32)
    p = np.array(list(code_shares().values()))
    block = 100.0
    nb = max(1, math.ceil(side / block))
    block_code = rng.choice(codes_all, size=(nb, nb), p=p)
    bx = np.minimum(((x0 + x1) / 2 // block).astype(int), nb - 1)
    by = np.minimum(((y0 + y1) / 2 // block).astype(int), nb - 1)
    codes = np.where(
        rng.random(x0.size) < 0.75, block_code[by, bx], rng.choice(codes_all, x0.size, p=p)
    ).astype(np.int32)
    return Archetype(np.stack([x0, y0, x1, y1], axis=1), codes)


def _parcel_index(plan: Plan, arch: Archetype, res: float) -> np.ndarray:
    """Raster (H, W) int32 of the parcel each pixel of the dalle lies in, at `res`.

    Args:
        plan: The world's plan (dalle size).
        arch: The archetype's parcels.
        res: Pixel size, metres.

    Returns:
        The parcel index (row of ``arch.boxes``) of each pixel.
    """
    px = round(plan.dalle_m / res)
    geoms = shapely.box(*arch.boxes.T)
    shapes = zip(geoms, range(len(geoms)), strict=True)
    out: np.ndarray = rasterize(
        shapes,
        out_shape=(px, px),
        transform=from_origin(0.0, 0.0, res, -res),  # y grows downward, as the boxes
        dtype="int32",
    )
    return out


def render_archetype(plan: Plan, k: int, arch: Archetype) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (R, G, B, NIR) uint8 and heights (DTM, DSM) float32 of archetype `k`.

    Args:
        plan: The world's plan.
        k: The archetype's index (its noise seed).
        arch: Its parcels.

    Returns:
        ((4, px, px) uint8 in 1..255 (0 is the ortho's nodata), (2, h, h) float32 at 1 m).
    """
    rng = np.random.default_rng([plan.seed, plan.domain.department, 53, k])
    idx = _parcel_index(plan, arch, RES)
    base = np.array([COLOURS[int(c)] for c in arch.codes], dtype=np.int16).reshape(-1, 4)
    base = base + rng.integers(-12, 13, (len(arch.codes), 1))  # each parcel its own shade
    img = base[idx].transpose(2, 0, 1)
    img = img + rng.integers(-3, 4, img.shape, dtype=np.int16)
    ortho = np.clip(img, 1, 255).astype(np.uint8)
    hidx = _parcel_index(plan, arch, DEM_RES)
    h = hidx.shape[0]
    u = (np.arange(h) + 0.5) / h
    # the same relief at every edge (0 there), so dalles side by side meet without a step
    bump = np.outer(np.sin(np.pi * u), np.sin(np.pi * u)) * rng.uniform(2.0, 12.0)
    dtm = (60.0 + bump).astype(np.float32)
    above = np.array([HEIGHTS.get(int(c), 0.0) for c in arch.codes], dtype=np.float32)
    dsm = dtm + above[hidx]
    return ortho, np.stack([dtm, dsm])


def mosaic_vrt(
    size: tuple[int, int],
    origin: tuple[float, float],
    res: float,
    epsg: int,
    bands: tuple[int, ...],
    dtype: str,
    placements: list[tuple[str, int, int, int, int]],
    src_px: tuple[int, int],
    nodata: float | None = None,
    interp: tuple[str, ...] = (),
) -> str:
    """A GDAL VRT of `size` pixels placing source files at pixel offsets.

    Args:
        size: (width, height) of the VRT, pixels.
        origin: (left, top) of its grid, CRS units.
        res: Pixel size.
        epsg: The CRS's EPSG code.
        bands: The source bands, in the VRT's band order.
        dtype: GDAL data type name (``Byte``, ``UInt16``, ``Float32``).
        placements: (file relative to the VRT, x offset, y offset, width, height) of each
            source: its top-left ``width × height`` pixels go at the offset.
        src_px: (width, height) of every source file.
        nodata: The bands' nodata value, or None.
        interp: Colour interpretation per band (empty: none).

    Returns:
        The VRT XML, sources declared (size, type, block) so that GDAL opens none of them
        until their pixels are read.
    """
    sw, sh = src_px
    block = min(sw, 1024)
    srs = escape(CRS.from_epsg(epsg).to_wkt())
    left, top = origin
    parts = [
        f'<VRTDataset rasterXSize="{size[0]}" rasterYSize="{size[1]}"><SRS>{srs}</SRS>'
        f"<GeoTransform>{left!r}, {res!r}, 0, {top!r}, 0, {-res!r}</GeoTransform>"
    ]
    for i, b in enumerate(bands, 1):
        parts.append(f'<VRTRasterBand dataType="{dtype}" band="{i}">')
        if nodata is not None:
            parts.append(f"<NoDataValue>{nodata!r}</NoDataValue>")
        if interp:
            parts.append(f"<ColorInterp>{interp[i - 1]}</ColorInterp>")
        for file, x, y, w, h in placements:
            parts.append(
                f'<SimpleSource><SourceFilename relativeToVRT="1">{file}</SourceFilename>'
                f"<SourceBand>{b}</SourceBand>"
                f'<SourceProperties RasterXSize="{sw}" RasterYSize="{sh}" '
                f'DataType="{dtype}" BlockXSize="{block}" BlockYSize="{block}"/>'
                f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
                f'<DstRect xOff="{x}" yOff="{y}" xSize="{w}" ySize="{h}"/>'
                "</SimpleSource>"
            )
        parts.append("</VRTRasterBand>")
    parts.append("</VRTDataset>")
    return "".join(parts)


def vrt_xml(
    plan: Plan,
    sources: list[str],
    bands: tuple[int, ...],
    dtype: str,
    res: float,
    nodata: float | None,
    interp: tuple[str, ...] = (),
) -> str:
    """A GDAL VRT placing each dalle's archetype source file at the dalle's position.

    Args:
        plan: The world's plan (dalle grid, archetype of each dalle).
        sources: Per archetype, its file relative to the VRT.
        bands: The source bands, in the VRT's band order.
        dtype: GDAL data type name (``Byte``, ``Float32``).
        res: Pixel size, metres.
        nodata: The bands' nodata value, or None.
        interp: Colour interpretation per band (empty: none).

    Returns:
        The VRT XML (:func:`mosaic_vrt`): ``n × n`` sources per band, row-major from the
        top-left dalle.
    """
    px = round(plan.dalle_m / res)
    arch = plan.archetype_of()
    placements = [
        (sources[arch[r, c]], c * px, r * px, px, px) for r in range(plan.n) for c in range(plan.n)
    ]
    total = plan.n * px
    return mosaic_vrt(
        (total, total),
        (plan.left, plan.top),
        res,
        2154,
        bands,
        dtype,
        placements,
        (px, px),
        nodata,
        interp,
    )


def _label_rows(plan: Plan, archs: list[Archetype]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per row of dalles: the parcels' (k, 4) Lambert-93 boxes and their codes.

    Args:
        plan: The world's plan.
        archs: The archetypes' parcels.

    Yields:
        (boxes (k, 4) left, bottom, right, top; codes (k,) int32) of one row of dalles.
    """
    arch = plan.archetype_of()
    for r in range(plan.n):
        boxes, codes = [], []
        top = plan.top - r * plan.dalle_m
        for c in range(plan.n):
            a = archs[arch[r, c]]
            left = plan.left + c * plan.dalle_m
            b = a.boxes
            boxes.append(
                np.stack([left + b[:, 0], top - b[:, 3], left + b[:, 2], top - b[:, 1]], 1)
            )
            codes.append(a.codes)
        yield np.concatenate(boxes), np.concatenate(codes)


def write_labels(path: Path, plan: Plan, archs: list[Archetype]) -> int:
    """Write every dalle's parcels, translated to its position, as one GeoPackage layer.

    Streamed a row of dalles at a time (memory: one row) through one GDAL session (Arrow
    batches, pyarrow; the R-tree is built once at the end: about 2.4 times faster than
    appending row by row).

    Args:
        path: The GeoPackage (new), layer ``labels``, field ``code`` (int32).
        plan: The world's plan.
        archs: The archetypes' parcels.

    Returns:
        The number of polygons written.
    """
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_DATE})
    written = 0
    import pyarrow as pa  # type: ignore[import-untyped]

    wkb = pa.field("geometry", pa.binary(), metadata={"ARROW:extension:name": "geoarrow.wkb"})
    schema = pa.schema([pa.field("code", pa.int32()), wkb])

    def batches() -> Iterator[Any]:
        nonlocal written
        for bb, codes in _label_rows(plan, archs):
            geoms = shapely.to_wkb(shapely.box(*bb.T))
            written += len(codes)
            yield pa.record_batch([pa.array(codes), pa.array(geoms, pa.binary())], schema=schema)

    pyogrio.write_arrow(
        pa.RecordBatchReader.from_batches(schema, batches()),
        path,
        layer="labels",
        driver="GPKG",
        geometry_name="geometry",
        geometry_type="Polygon",
        crs="EPSG:2154",
    )
    return written


def write_dalle_index(path: Path, plan: Plan, sources: dict[str, list[str]]) -> None:
    """``dalles.gpkg``: one row per dalle and product (name, product, source, footprint).

    Args:
        path: The GeoPackage (new).
        plan: The world's plan.
        sources: Product (``RVB``, ``IRC``) -> per archetype, its file relative to ``ortho/``.
    """
    arch = plan.archetype_of().ravel()
    rows, cols = np.divmod(np.arange(plan.n * plan.n), plan.n)
    x0 = plan.left + cols * plan.dalle_m
    y1 = plan.top - rows * plan.dalle_m
    frames = []
    for product, files in sources.items():
        irc = product == "IRC"
        frames.append(
            gpd.GeoDataFrame(
                {
                    "nom": [
                        f"{plan.dalle_name(int(r), int(c), irc)}.jp2"
                        for r, c in zip(rows, cols, strict=True)
                    ],
                    "produit": product,
                    "source": [files[a] for a in arch],
                },
                geometry=shapely.box(x0, y1 - plan.dalle_m, x0 + plan.dalle_m, y1),
                crs="EPSG:2154",
            )
        )
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_DATE})
    gdf = gpd.GeoDataFrame(
        gpd.pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:2154"
    )
    pyogrio.write_dataframe(gdf, path, layer="dalles", driver="GPKG")


def write_sentinel2(root: Path, plan: Plan, archs: list[Archetype], n_dates: int = 4) -> int:
    """A local STAC catalogue of `n_dates` L2A scenes covering the département, scenes reused.

    Each date renders one 5 km block (500 × 500 px at 10 m) from an archetype's parcels
    tiled (class spectra of :mod:`flair_pipeline.synthetic.s2_spectra` at that day of
    year, no cloud), written as the 13 assets of :func:`~flair_pipeline.synthetic.
    sentinel2.write_scene` under ``blocks/``; each item's assets are VRTs repeating that
    block over the UTM grid around the département (350 m margin). Items are shaped as
    :mod:`flair_pipeline.synthetic.stac` writes them (hrefs to ``.vrt``).

    Args:
        root: The catalogue's folder (``raw/sentinel2``).
        plan: The world's plan.
        archs: The archetypes' parcels.
        n_dates: Acquisition dates.

    Returns:
        The number of items written.
    """
    from flair_pipeline.domains import utm_epsg
    from flair_pipeline.synthetic import sentinel2 as s2
    from flair_pipeline.synthetic.s2_spectra import object_spectra
    from flair_pipeline.synthetic.stac import make_item, mgrs_tile, write_catalog

    d = plan.domain
    x0, y0, x1, y1 = plan.bounds
    lon, lat = _lonlat((x0 + x1) / 2, (y0 + y1) / 2)
    epsg = utm_epsg(lon, lat)
    grid = s2.s2_grid(plan.bounds, 350.0, epsg)
    rng = np.random.default_rng([plan.seed, d.department, 54])
    dates = s2.acquisition_dates(rng, d.year, n_dates)
    tile = mgrs_tile(epsg, d.department)
    coll = root / s2.COLLECTION
    items = []
    for i, date in enumerate(dates):
        a = archs[i % len(archs)]
        idx10 = _parcel_index(plan, a, 10.0)
        reps = math.ceil(_BLOCK_PX / idx10.shape[0])
        idx = np.tile(idx10, (reps, reps))[:_BLOCK_PX, :_BLOCK_PX]
        n_obj = len(a.codes)
        doy = date.timetuple().tm_yday
        spectra = object_spectra(doy, a.codes, rng.random(n_obj), rng.random(n_obj), False)
        refl = spectra[idx].transpose(2, 0, 1)
        refl = refl + rng.normal(0.0, 0.004, refl.shape).astype(np.float32)
        half = _BLOCK_PX // 2
        r20 = refl[:, ::2, ::2]
        ndvi = (r20[6] - r20[2]) / np.maximum(r20[6] + r20[2], 1e-6)
        zeros = np.zeros((half, half), np.uint8)
        scl = np.where(ndvi > 0.3, 4, 5).astype(np.uint8)
        scene = s2.Scene(date, refl, zeros, zeros, scl)
        block = f"block-{i:02d}"
        facts = s2.write_scene(
            scene, s2.S2Grid(epsg, grid.left, grid.top, _BLOCK_PX, _BLOCK_PX), coll / block
        )
        sat = "A" if date.toordinal() % 2 else "B"
        folder = coll / f"S2{sat}_{tile}_{date:%Y%m%d}_0_L2A"
        folder.mkdir(parents=True, exist_ok=True)
        full: dict[str, dict[str, Any]] = {}
        for key, f in facts.items():
            res = int(f["res"])
            w, h = grid.width * 10 // res, grid.height * 10 // res
            bpx = _BLOCK_PX * 10 // res
            spectral = key not in ("cloud", "snow", "scl")
            places = [
                (f"../{block}/{key}.tif", x, y, min(bpx, w - x), min(bpx, h - y))
                for y in range(0, h, bpx)
                for x in range(0, w, bpx)
            ]
            (folder / f"{key}.vrt").write_text(
                mosaic_vrt(
                    (w, h),
                    (grid.left, grid.top),
                    float(res),
                    epsg,
                    (1,),
                    "UInt16" if spectral else "Byte",
                    places,
                    (bpx, bpx),
                    0.0 if spectral or key == "scl" else None,
                )
            )
            full[key] = {
                **f,
                "shape": (h, w),
                "transform": from_origin(grid.left, grid.top, res, res),
            }
        item = make_item(str(d), grid, date, full, folder, 0.0, 0.0, tile)
        for asset in item.assets.values():
            asset.href = str((folder / Path(asset.href).with_suffix(".vrt").name).resolve())
            asset.media_type = "application/xml"  # a GDAL VRT
        items.append(item)
    write_catalog(root, items)
    return len(items)


def _lonlat(x: float, y: float) -> tuple[float, float]:
    from pyproj import Transformer

    lon, lat = Transformer.from_crs("EPSG:2154", "EPSG:4326", always_xy=True).transform(x, y)
    return float(lon), float(lat)


def spec(plan: Plan) -> dict[str, Any]:
    """The domain.yaml of the département world.

    Args:
        plan: The world's plan.

    Returns:
        The ``domain.yaml`` mapping: the RVB and IRC VRT indexes, the DSM/DTM VRTs, the
        labels (field ``code``) and the acquisition date.
    """
    d = plan.domain
    stem = f"{d.department:02d}-{d.year}-LA93-0M20"
    return {
        "ortho": [
            {
                "name": "bd_ortho_rvb",
                "glob": f"ortho/{stem}-E080.vrt",
                "bands": {"R": 1, "G": 2, "B": 3},
            },
            {"name": "bd_ortho_irc", "glob": f"ortho/{stem}-IRC-E080.vrt", "bands": {"NIR": 1}},
        ],
        "dsm": {"glob": "dem/dsm.vrt"},
        "dtm": {"glob": "dem/dtm.vrt"},
        "labels": {"glob": "labels.gpkg", "field": "code"},
        "acquisition": {"date": f"{d.year}-06-15", "time": "11:00:00", "camera": "UCE-M3-f120-s06"},
    }


@dataclass
class DepartementSummary:
    """What was written, and how long each part took."""

    out: Path
    plan: Plan
    labels: int = 0
    s2_items: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    bytes_written: dict[str, int] = field(default_factory=dict)

    @property
    def area_km2(self) -> float:
        """The mosaic's area, km²."""
        return (self.plan.n * self.plan.dalle_m / 1000) ** 2


def _write_raster(path: Path, arr: np.ndarray, res: float, **opts: Any) -> None:
    profile = {
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": arr.shape[0],
        "dtype": arr.dtype,
        "crs": "EPSG:2154",
        "transform": from_origin(0.0, arr.shape[1] * res, res, res),
        **opts,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)


def write_domain(
    folder: Path,
    plan: Plan,
    labels_per_km2: float = LABELS_PER_KM2,
    progress: Callable[[str], None] | None = None,
) -> DepartementSummary:
    """Write the département domain's ortho, DEM, labels and domain.yaml into `folder` (new).

    Args:
        folder: The domain folder (``raw/domains/D049_2022``), created.
        plan: The world's plan.
        labels_per_km2: Label polygons per km².
        progress: Called with one line per part begun.

    Returns:
        The :class:`DepartementSummary` (polygons, seconds and bytes per part).
    """
    say = progress or (lambda line: None)
    summary = DepartementSummary(folder, plan)
    d = plan.domain
    stem = f"{d.department:02d}-{d.year}-LA93-0M20"
    for sub in ("ortho/sources", "dem/sources"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    say(f"{plan.archetypes} archetype dalles of {plan.dalle_px} px")
    archs = [make_archetype(plan, k, labels_per_km2) for k in range(plan.archetypes)]
    rvb: list[str] = []
    irc: list[str] = []
    dtm: list[str] = []
    dsm: list[str] = []
    for k, arch in enumerate(archs):
        ortho, heights = render_archetype(plan, k, arch)
        name = f"{stem}-ARCHETYPE{k:02d}"
        _write_raster(
            folder / "ortho/sources" / f"{name}-E080.jp2", ortho[:3], RES, nodata=0, **_JP2
        )
        _write_raster(
            folder / "ortho/sources" / f"{name}-IRC-E080.jp2",
            ortho[[3, 0, 1]],
            RES,
            nodata=0,
            **_JP2,
        )
        rvb.append(f"sources/{name}-E080.jp2")
        irc.append(f"sources/{name}-IRC-E080.jp2")
        for kind, arr, names in (("DTM", heights[0], dtm), ("DSM", heights[1], dsm)):
            fname = f"{kind}_ARCHETYPE{k:02d}.tif"
            _write_raster(
                folder / "dem/sources" / fname,
                arr[None],
                DEM_RES,
                driver="GTiff",
                compress="deflate",
                predictor=3,
                tiled=True,
            )
            names.append(f"sources/{fname}")
    summary.seconds["archetypes"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    say(f"indexes of {plan.n * plan.n} dalles")
    rgb_interp = ("Red", "Green", "Blue")
    (folder / "ortho" / f"{stem}-E080.vrt").write_text(
        vrt_xml(plan, rvb, (1, 2, 3), "Byte", RES, 0.0, rgb_interp)
    )
    (folder / "ortho" / f"{stem}-IRC-E080.vrt").write_text(
        vrt_xml(plan, irc, (1, 2, 3), "Byte", RES, 0.0)
    )
    (folder / "dem/dtm.vrt").write_text(vrt_xml(plan, dtm, (1,), "Float32", DEM_RES, None))
    (folder / "dem/dsm.vrt").write_text(vrt_xml(plan, dsm, (1,), "Float32", DEM_RES, None))
    write_dalle_index(folder / "ortho/dalles.gpkg", plan, {"RVB": rvb, "IRC": irc})
    (folder / "domain.yaml").write_text(yaml.safe_dump(spec(plan), sort_keys=False))
    summary.seconds["indexes"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    say(f"labels: about {labels_per_km2 * summary.area_km2:,.0f} polygons")
    summary.labels = write_labels(folder / "labels.gpkg", plan, archs)
    summary.seconds["labels"] = time.perf_counter() - t0
    for part in ("ortho", "dem", "labels.gpkg"):
        summary.bytes_written[part] = _du(folder / part)
    return summary


def _du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def generate_departement(
    out: str | Path,
    scale: float = 1.0,
    seed: int = 0,
    *,
    dalle_px: int = 5000,
    archetypes: int = 8,
    labels_per_km2: float = LABELS_PER_KM2,
    s2_dates: int = 4,
    progress: Callable[[str], None] | None = None,
) -> DepartementSummary:
    """Write the ``departement`` world under `out` (``domains/D049_2022``, ``sentinel2``).

    Everything is written in a temporary folder inside `out` and moved into place at the
    end: a failed run leaves nothing half written.

    Args:
        out: The raw root.
        scale: Share of the full 78 km × 78 km area (0.25: a quarter).
        seed: The world's seed.
        dalle_px: A dalle's side in pixels (5000: IGN's 1 km at 0.2 m).
        archetypes: Distinct dalles on disk.
        labels_per_km2: Label polygons per km².
        s2_dates: Sentinel-2 dates in the catalogue.
        progress: Called with one line per part begun.

    Returns:
        What was written (:class:`DepartementSummary`).

    Raises:
        FlairPipelineError: A bad scale, size or seed, or `out` holding another world's
            domains (its ``sentinel2/`` would be replaced).
        InputError: `out` cannot be written.
    """
    if seed < 0:
        raise FlairPipelineError(f"seed must be >= 0, got {seed}")
    plan = make_plan(scale, seed, dalle_px, archetypes)
    out = Path(out)
    others = sorted(
        p.name
        for p in (out / "domains").glob("*")
        if p.is_dir() and p.name != DOMAIN and not p.name.startswith(".")
    )
    if others:
        raise FlairPipelineError(
            f"{out}: holds another world's domains ({', '.join(others[:3])}…) whose "
            "sentinel2/ catalogue the departement world would replace; write it in its own "
            "raw root (--out data/raw_departement)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".synth-", dir=out))
    except OSError as exc:
        raise InputError(
            f"{out}: cannot write the synthetic world there ({exc.strerror})"
        ) from None
    try:
        summary = write_domain(tmp / "domains" / DOMAIN, plan, labels_per_km2, progress)
        t0 = time.perf_counter()
        if progress:
            progress(f"Sentinel-2: {s2_dates} dates over the département")
        archs = [make_archetype(plan, k, labels_per_km2) for k in range(plan.archetypes)]
        summary.s2_items = write_sentinel2(tmp / "sentinel2", plan, archs, s2_dates)
        summary.seconds["sentinel2"] = time.perf_counter() - t0
        summary.bytes_written["sentinel2"] = _du(tmp / "sentinel2")
        _replace(tmp / "domains" / DOMAIN, out / "domains" / DOMAIN)
        _replace(tmp / "sentinel2", out / "sentinel2")
        summary.out = out / "domains" / DOMAIN
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _replace(src: Path, dst: Path) -> None:
    """Move `src` to `dst`, replacing it; the old version is removed only after the move."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def format_summary(s: DepartementSummary) -> str:
    """One paragraph: size, dalles, polygons, seconds and bytes per part.

    Args:
        s: What :func:`generate_departement` returned.

    Returns:
        The text printed by ``flair-pipeline synth --scenario departement``.
    """
    p = s.plan
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in s.seconds.items())
    sizes = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in s.bytes_written.items())
    return (
        f"Département world {p.domain} in {s.out}: {s.area_km2:,.1f} km², {p.n} × {p.n} dalles "
        f"of {p.dalle_m:g} m ({p.dalle_px} px) per product from {p.archetypes} archetypes, "
        f"{s.labels:,} label polygons ({s.labels / s.area_km2:,.0f}/km²)\n"
        f"time: {parts}\ndisk: {sizes}"
    )
