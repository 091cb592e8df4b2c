"""A synthetic Sentinel-1 RTC archive: VV and VH scenes per domain, date and orbit, with STAC.

Scenes are stored as Planetary Computer's ``sentinel-1-rtc`` items are: one float32
GeoTIFF per polarisation (assets ``vv`` and ``vh``), γ0 terrain-flattened backscatter in
linear power, nodata -32768 declared in ``raster:bands``, on the domain's 10 m UTM grid
(the Sentinel-2 scenes' grid, ``synthetic/sentinel2.py``). Both orbit directions are
acquired, each on its own relative orbit every 12 days (one satellite's repeat cycle):
descending passes in the early morning, ascending in the evening, as over France.

Backscatter comes from ``synthetic/s1_backscatter.py`` (per class and season, crops per
their RPG declaration), is mixed in linear power over each 10 m pixel's objects, and
carries multiplicative speckle (gamma-distributed, the equivalent number of looks PC
declares, 4.4) from the domain's own random stream. Clouds do not exist for radar: the
cloudy Sentinel-2 dates of the same world are clear here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import scipy.sparse as sp
import shapely
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

from flair_pipeline.domains import DomainId
from flair_pipeline.io import write_geotiff
from flair_pipeline.synthetic import s1_backscatter as bs
from flair_pipeline.synthetic import stac
from flair_pipeline.synthetic.sentinel2 import S2Grid

COLLECTION = "sentinel-1-rtc"
NODATA = -32768.0
ENL = 4.4  # sar:looks_equivalent_number of PC's RTC items
REPEAT_DAYS = 12
#: Backscatter the archive holds, declared in every item (``s1:backscatter``, ``s1:units``).
BACKSCATTER = "gamma0_terrain_flattened"
UNITS = "linear"
POLARIZATIONS = ("VV", "VH")
#: Typical pass times over France (UTC): descending at dawn, ascending at dusk.
PASS_TIME = {"descending": (5, 50), "ascending": (17, 35)}
EXTENSIONS = [
    "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
    "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]
_DESCRIPTION = (
    "Terrain-corrected gamma naught values of signal transmitted with vertical polarization "
    "and received with {} polarization with radiometric terrain correction applied."
)


@dataclass(frozen=True)
class Pass:
    """One acquisition: date, orbit direction, relative and absolute orbit."""

    date: dt.datetime
    orbit_state: str  # "ascending" or "descending"
    relative_orbit: int
    absolute_orbit: int
    frame: int  # distinguishes the domains' products of one pass (the département)

    @property
    def item_id(self) -> str:
        """The product id PC's RTC items carry (``S1A_IW_GRDH_1SDV_<start>_<stop>_…_rtc``)."""
        stop = self.date + dt.timedelta(seconds=25)
        take = (self.absolute_orbit * 997 + self.frame) % 0xFFFFFF
        return (
            f"S1A_IW_GRDH_1SDV_{self.date:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}_"
            f"{self.absolute_orbit:06d}_{take:06X}_rtc"
        )


def passes(rng: np.random.Generator, year: int, frame: int) -> list[Pass]:
    """Every 12 days through `year`, in both orbit directions, on two relative orbits.

    Args:
        rng: The domain's Sentinel-1 generator.
        year: The year.
        frame: The domain's département (part of its products' ids).

    Returns:
        The passes, sorted by date.
    """
    out = []
    first = dt.datetime(year, 1, 1)
    for state, rel_lo in (("ascending", 1), ("descending", 88)):
        rel = rel_lo + int(rng.integers(0, 87))
        start = int(rng.integers(0, REPEAT_DAYS))
        hh, mm = PASS_TIME[state]
        for day in range(start, 365, REPEAT_DAYS):
            date = first + dt.timedelta(
                days=day, hours=hh, minutes=mm, seconds=int(rng.integers(60))
            )
            cycles = (date - dt.datetime(2014, 4, 7)).days // REPEAT_DAYS
            out.append(Pass(date, state, rel, 72 + rel + 175 * cycles, frame))
    return sorted(out, key=lambda p: p.date)


def object_crops(
    codes: np.ndarray, declared: dict[int, str], rng: np.random.Generator
) -> np.ndarray:
    """Index into ``CROP_CODES`` per object: its RPG crop, or a drawn one for undeclared fields.

    Args:
        codes: FLAIR code per land-cover polygon.
        declared: Polygon index -> RPG ``CODE_CULTU`` (arable declarations only).
        rng: The domain's Sentinel-1 generator.

    Returns:
        int16 (n,): -1 for objects that are not crops.
    """
    crop = np.full(codes.size, -1, np.int16)
    draws = rng.integers(0, len(bs.CROP_CODES), codes.size)
    fields = np.isin(codes, (11, 12))
    crop[fields] = draws[fields]
    for i, name in declared.items():
        if name in bs.CROPS:
            crop[i] = bs.CROP_CODES.index(name)
    return crop


def render_pass(
    p: Pass,
    P: sp.csr_matrix,
    objects: dict[str, np.ndarray],
    grid: S2Grid,
    orbit_db: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render one pass: (2, H, W) float32 linear γ0, VV then VH, with speckle.

    Args:
        p: The pass.
        P: Pixel-by-object fraction matrix (``sentinel2.fraction_matrix``).
        objects: Per-object ``code``, ``phase``, ``crop`` (index 0: no object).
        grid: The 10 m UTM grid.
        orbit_db: The relative orbit's incidence-angle term, dB.
        rng: The domain's Sentinel-1 generator.

    Returns:
        float32 (2, H, W) backscatter, linear power, positive everywhere.
    """
    doy = p.date.timetuple().tm_yday
    winter = doy < 90 or doy > 300
    wet = rng.uniform(0.0, bs.SOIL_WET_DB) * (
        1.0 if rng.random() < (0.6 if winter else 0.25) else 0.2
    )
    wind = rng.uniform(0.0, 5.0)
    vv, vh = bs.object_db(doy, objects["code"], objects["phase"], objects["crop"], wet, wind)
    out = np.empty((2, grid.height, grid.width), np.float32)
    for k, db in enumerate((vv, vh)):
        mean = P @ bs.to_linear(db + orbit_db).astype(np.float32)
        speckle = rng.gamma(ENL, 1.0 / ENL, mean.size).astype(np.float32)
        out[k] = (mean * speckle).reshape(grid.height, grid.width)
    return np.maximum(out, np.float32(1e-6))


def write_pass(bands: np.ndarray, grid: S2Grid, folder: Path) -> dict[str, Path]:
    """Write a pass's ``vv.tif`` and ``vh.tif`` (float32, nodata -32768) in `folder`.

    Args:
        bands: (2, H, W) float32 linear backscatter, VV then VH.
        grid: Its UTM grid.
        folder: Where the GeoTIFFs go.

    Returns:
        Asset key -> file written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tr = from_origin(grid.left, grid.top, 10, 10)
    out = {}
    for k, pol in enumerate(POLARIZATIONS):
        path = folder / f"{pol.lower()}.tif"
        write_geotiff(
            path,
            bands[k],
            tr,
            f"EPSG:{grid.epsg}",
            nodata=NODATA,
            descriptions=(pol,),
            tiled=False,
            predictor=3,
        )
        out[pol.lower()] = path
    return out


def make_item(domain: str, grid: S2Grid, p: Pass, files: dict[str, Path]) -> pystac.Item:
    """One RTC item shaped like Planetary Computer's ``sentinel-1-rtc`` items.

    Args:
        domain: Domain id, stored as ``flair:domain``.
        grid: The scene's UTM grid.
        p: The pass.
        files: Asset key (``vv``, ``vh``) -> GeoTIFF.

    Returns:
        The item (footprint in WGS84, sar/sat/proj/raster extensions), not yet in a catalog.
    """
    to_wgs = Transformer.from_crs(f"EPSG:{grid.epsg}", "EPSG:4326", always_xy=True)
    foot = shapely.transform(
        box(*grid.bounds).segmentize(200.0),
        lambda xy: np.c_[to_wgs.transform(xy[:, 0], xy[:, 1])],
    )
    props: dict[str, Any] = {
        "platform": "SENTINEL-1A",
        "constellation": "Sentinel-1",
        "sar:frequency_band": "C",
        "sar:center_frequency": 5.405,
        "sar:observation_direction": "right",
        "sar:instrument_mode": "IW",
        "sar:polarizations": list(POLARIZATIONS),
        "sar:product_type": "GRD",
        "sar:resolution_range": 20,
        "sar:resolution_azimuth": 22,
        "sar:pixel_spacing_range": 10,
        "sar:pixel_spacing_azimuth": 10,
        "sar:looks_range": 5,
        "sar:looks_azimuth": 1,
        "sar:looks_equivalent_number": ENL,
        "sat:orbit_state": p.orbit_state,
        "sat:relative_orbit": p.relative_orbit,
        "sat:absolute_orbit": p.absolute_orbit,
        "sat:platform_international_designator": "2014-016A",
        "s1:instrument_configuration_ID": "7",
        "s1:processing_level": "1",
        "s1:product_timeliness": "Fast-24h",
        "s1:resolution": "high",
        "s1:backscatter": BACKSCATTER,
        "s1:units": UNITS,
        "proj:code": f"EPSG:{grid.epsg}",
        "proj:shape": [grid.height, grid.width],
        "proj:transform": list(from_origin(grid.left, grid.top, 10, 10))[:6],
        "proj:bbox": list(grid.bounds),
        "flair:domain": domain,
    }
    item = pystac.Item(
        id=p.item_id,
        geometry=mapping(foot),
        bbox=list(foot.bounds),
        datetime=p.date.replace(tzinfo=dt.UTC),
        properties=props,
        stac_extensions=list(EXTENSIONS),
        collection=COLLECTION,
    )
    for key, path in files.items():
        item.add_asset(
            key,
            pystac.Asset(
                href=str(path.resolve()),
                media_type=pystac.MediaType.GEOTIFF,
                roles=["data"],
                title=f"{key.upper()}: vertical transmit, {'vertical' if key == 'vv' else 'horizontal'} receive",
                description=_DESCRIPTION.format("vertical" if key == "vv" else "horizontal"),
                extra_fields={
                    "raster:bands": [
                        {"nodata": NODATA, "data_type": "float32", "spatial_resolution": 10.0}
                    ]
                },
            ),
        )
    return item


def write_catalog(root: Path, items: list[pystac.Item]) -> Path:
    """Save a self-contained catalog at `root` holding the ``sentinel-1-rtc`` collection.

    Args:
        root: Folder of the catalog (``<raw>/sentinel1``).
        items: The passes' items.

    Returns:
        Path of ``catalog.json``.
    """
    return stac.write_catalog(
        root,
        items,
        catalog_id="flair-synthetic-sentinel1",
        catalog_description="Synthetic Sentinel-1 RTC archive of the flair_pipeline embedded world.",
        collection_id=COLLECTION,
        collection_description="Sentinel-1 RTC scenes (synthetic): γ0 terrain-flattened, "
        "linear power.",
    )


def generate(
    domain: DomainId,
    grid: S2Grid,
    P: sp.csr_matrix,
    objects: dict[str, np.ndarray],
    rng: np.random.Generator,
    root: Path,
) -> list[pystac.Item]:
    """Render and write every pass of one domain under `root`; return their items.

    Args:
        domain: The domain (its year is the series').
        grid: The domain's 10 m UTM grid.
        P: Its pixel-by-object fraction matrix.
        objects: Per-object ``code``, ``phase``, ``crop`` (index 0: no object).
        rng: The domain's Sentinel-1 generator.
        root: ``<raw>/sentinel1``.

    Returns:
        One item per pass.
    """
    plan = passes(rng, domain.year, domain.department)
    orbit_db = {s: float(rng.uniform(-0.8, 0.8)) for s in ("ascending", "descending")}
    items = []
    for p in plan:
        bands = render_pass(p, P, objects, grid, orbit_db[p.orbit_state], rng)
        files = write_pass(bands, grid, root / COLLECTION / p.item_id)
        items.append(make_item(str(domain), grid, p, files))
    return items
