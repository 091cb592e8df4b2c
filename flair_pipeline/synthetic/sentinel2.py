"""A synthetic Sentinel-2 L2A archive: scenes per domain and date, and their STAC catalog.

Scenes are stored as Earth Search's ``sentinel-2-c1-l2a`` items are: one GeoTIFF per asset
(blue, green, red, rededge1-3, nir, nir08, swir16, swir22, cloud, snow, scl), in the
domain's UTM zone, at native 10 m or 20 m, as uint16 digital numbers with the L2A offset of
processing baseline >= 04.00 declared (reflectance = DN * 0.0001 - 0.1). A provider that
reads Earth Search reads this archive unchanged.

Reflectance is rendered on a 2 m sub-grid of object indices and aggregated to 10 m with a
sparse pixel-by-object fraction matrix, so mixed pixels mix their objects' spectra.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import shapely
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

from flair_pipeline.domains import DomainId
from flair_pipeline.io import write_geotiff
from flair_pipeline.synthetic import noise
from flair_pipeline.synthetic.aerial import rasterize_ids
from flair_pipeline.synthetic.landcover import LandCover
from flair_pipeline.synthetic.s2_spectra import CLOUD, ENDMEMBERS, object_spectra

COLLECTION = "sentinel-2-c1-l2a"
#: (asset key, band name, resolution m) as in Earth Search's sentinel-2-c1-l2a.
SPECTRAL_ASSETS = (
    ("blue", "B02", 10),
    ("green", "B03", 10),
    ("red", "B04", 10),
    ("rededge1", "B05", 20),
    ("rededge2", "B06", 20),
    ("rededge3", "B07", 20),
    ("nir", "B08", 10),
    ("nir08", "B8A", 20),
    ("swir16", "B11", 20),
    ("swir22", "B12", 20),
)
MASK_ASSETS = (("cloud", 20), ("snow", 20), ("scl", 20))
BOA_OFFSET = 1000  # DN added to reflectance * 10000 (processing baseline >= 04.00)
SUB = 5  # 2 m sub-pixels per 10 m pixel side


@dataclass(frozen=True)
class S2Grid:
    """The 10 m UTM grid a domain's scenes cover (20 m assets use every other line)."""

    epsg: int
    left: float
    top: float
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of the 10 m grid in its UTM CRS, metres."""
        return (self.left, self.top - 10 * self.height, self.left + 10 * self.width, self.top)


def s2_grid(aerial_bounds: tuple[float, float, float, float], margin: float, epsg: int) -> S2Grid:
    """UTM grid around an aerial extent plus `margin` metres, snapped to 20 m.

    Args:
        aerial_bounds: (left, bottom, right, top), EPSG:2154 m.
        margin: Metres added on every side.
        epsg: The UTM zone's EPSG code.

    Returns:
        The 10 m grid in that zone.
    """
    x0, y0, x1, y1 = aerial_bounds
    ux0, uy0, ux1, uy1 = transform_bounds(
        "EPSG:2154", f"EPSG:{epsg}", x0 - margin, y0 - margin, x1 + margin, y1 + margin
    )
    left, bottom = np.floor(ux0 / 20) * 20, np.floor(uy0 / 20) * 20
    right, top = np.ceil(ux1 / 20) * 20, np.ceil(uy1 / 20) * 20
    return S2Grid(epsg, float(left), float(top), int((right - left) / 10), int((top - bottom) / 10))


def landcover_bounds_for(grid: S2Grid) -> tuple[float, float, float, float]:
    """EPSG:2154 bounds that cover the whole UTM grid (so every S2 pixel has land cover).

    Args:
        grid: A UTM grid.

    Returns:
        (left, bottom, right, top) in EPSG:2154 m, 20 m beyond the grid's reprojected edges.
    """
    b = transform_bounds(f"EPSG:{grid.epsg}", "EPSG:2154", *grid.bounds, densify_pts=21)
    return (b[0] - 20, b[1] - 20, b[2] + 20, b[3] + 20)


def fraction_matrix(lc: LandCover, grid: S2Grid) -> sp.csr_matrix:
    """Sparse (pixels10, objects + 1): share of each 10 m pixel covered by each object.

    Args:
        lc: The land cover (EPSG:2154).
        grid: The 10 m UTM grid.

    Returns:
        float32 CSR (H·W, n + 1); column 0 is no object.
    """
    tr = Transformer.from_crs("EPSG:2154", f"EPSG:{grid.epsg}", always_xy=True)
    utm = shapely.transform(
        np.asarray(lc.geoms, dtype=object), lambda xy: np.c_[tr.transform(xy[:, 0], xy[:, 1])]
    )
    shadow = LandCover(geoms=list(utm))
    ids = rasterize_ids(shadow, shapely.STRtree(shadow.geoms), grid.bounds, 10.0 / SUB)
    h, w = ids.shape
    pix = (np.arange(h)[:, None] // SUB) * grid.width + (np.arange(w)[None, :] // SUB)
    data = np.full(ids.size, 1.0 / SUB**2, np.float32)
    m = sp.coo_matrix(
        (data, (pix.ravel(), ids.ravel())), shape=(grid.width * grid.height, len(lc) + 1)
    )
    return m.tocsr()


def acquisition_dates(rng: np.random.Generator, year: int, n: int) -> list[dt.datetime]:
    """`n` distinct dates of `year` on two interleaved 5-day revisit cycles, ~10:30 UTC.

    Args:
        rng: The domain's generator.
        year: The year.
        n: Dates wanted (fewer if the cycles have fewer).

    Returns:
        The dates, sorted.
    """
    first = dt.datetime(year, 1, 1, 10, 30)
    a, b = rng.integers(0, 5, 2)
    days = sorted({int(a) + 5 * k for k in range(73)} | {int(b) + 2 + 5 * k for k in range(73)})
    days = [d for d in days if d < 365]
    pick = np.sort(rng.choice(len(days), size=min(n, len(days)), replace=False))
    return [first + dt.timedelta(days=days[i], minutes=int(rng.integers(0, 40))) for i in pick]


def n_dates(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Dates per domain: FLAIR has 20-114 (mean 55); `lo`/`hi` narrow it for small worlds.

    Args:
        rng: The domain's generator.
        lo: Fewest dates.
        hi: Most dates.

    Returns:
        A gamma draw (mean 55) clipped to `lo`..`hi`.
    """
    return int(np.clip(round(rng.gamma(6.0, 55.0 / 6.0)), lo, hi))


def _cover_field(seed: int, cols: np.ndarray, rows: np.ndarray, cover: float) -> np.ndarray:
    """Probability 0..100 of a blotchy field covering about `cover` of the grid.

    Args:
        seed: Noise seed.
        cols: 20 m column indices.
        rows: 20 m row indices.
        cover: Share of the grid to cover, 0..1.

    Returns:
        float32 (rows, cols) probabilities 0..100.
    """
    if cover <= 0:
        return np.zeros((rows.size, cols.size), np.float32)
    f = noise.fractal(seed, cols, rows, 25.0, octaves=3)
    thr = np.quantile(f, 1.0 - cover)
    p = 100.0 / (1.0 + np.exp(-(f - thr) / 0.03))
    return np.where(p < 4, 0, p).astype(np.float32)


def _up(a: np.ndarray) -> np.ndarray:
    return a.repeat(2, axis=-2).repeat(2, axis=-1)


def _down(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[-2] // 2, a.shape[-1] // 2
    out: np.ndarray = (
        a[..., : 2 * h, : 2 * w].reshape(*a.shape[:-2], h, 2, w, 2).mean(axis=(-3, -1))
    )
    return out


@dataclass
class Scene:
    """One rendered acquisition: arrays ready to write."""

    date: dt.datetime
    reflectance: np.ndarray  # (10, H, W) float32 at 10 m
    cloud: np.ndarray  # (H/2, W/2) uint8 0..100
    snow: np.ndarray
    scl: np.ndarray


def render_scene(
    date: dt.datetime,
    P: sp.csr_matrix,
    objects: dict[str, np.ndarray],
    grid: S2Grid,
    seed: int,
    domain: DomainId,
    south: bool,
    rng: np.random.Generator,
) -> Scene:
    """Render one date: phenology, then snow, then clouds on top, plus Sen2Cor-like masks.

    Args:
        date: Acquisition time.
        P: Pixel-by-object fraction matrix (:func:`fraction_matrix`).
        objects: Per-object ``code``, ``phase``, ``variant`` (index 0: no object).
        grid: The 10 m UTM grid.
        seed: The domain's noise seed.
        domain: The domain (mountain domains get more snow).
        south: Whether the domain is in the south.
        rng: The domain's generator.

    Returns:
        Reflectance (10, H, W) float32, cloud and snow probabilities (H/2, W/2) uint8 and
        the SCL classes at 20 m.
    """
    doy = date.timetuple().tm_yday
    spectra = object_spectra(doy, objects["code"], objects["phase"], objects["variant"], south)
    refl = (P @ spectra).T.reshape(10, grid.height, grid.width)
    refl += rng.normal(0.0, 0.004, refl.shape).astype(np.float32)
    cols20, rows20 = np.arange(grid.width // 2), np.arange(grid.height // 2)
    dseed = seed * 1000 + doy
    winter = doy < 75 or doy > 335
    snow_cover = 0.0
    if winter and rng.random() < (0.6 if domain.is_mountain else 0.08):
        snow_cover = rng.uniform(0.3, 1.0) if domain.is_mountain else rng.uniform(0.05, 0.5)
    snow = _cover_field(dseed + 1, cols20, rows20, snow_cover)
    water = P @ (objects["code"] == 5).astype(np.float32)
    snowy_class = (
        P @ (objects["code"] == 14).astype(np.float32) * (100.0 if doy < 90 or doy > 320 else 0)
    )
    snow = np.maximum(
        snow * (1 - _down(water.reshape(grid.height, grid.width))),
        _down(snowy_class.reshape(grid.height, grid.width)),
    )
    a = _up(snow / 100.0)[None]
    refl = refl * (1 - a) + ENDMEMBERS["snow"][:, None, None] * a
    draw = rng.random()
    cover = 0.0 if draw < 0.45 else rng.uniform(0.05, 0.6) if draw < 0.75 else rng.uniform(0.6, 1.0)
    cloud = _cover_field(dseed + 2, cols20, rows20, cover)
    a = _up(np.clip(cloud / 90.0, 0, 1))[None]
    brightness = rng.uniform(0.85, 1.1)
    refl = refl * (1 - a) + (CLOUD * brightness)[:, None, None] * a
    r20 = _down(refl)
    ndvi = (r20[6] - r20[2]) / np.maximum(r20[6] + r20[2], 1e-6)
    scl = np.where(ndvi > 0.3, 4, 5).astype(np.uint8)
    scl[_down(water.reshape(grid.height, grid.width)) > 0.5] = 6
    scl[snow > 50] = 11
    scl[cloud > 35] = 8
    scl[cloud > 65] = 9
    return Scene(date, refl, cloud.round().astype(np.uint8), snow.round().astype(np.uint8), scl)


def write_scene(scene: Scene, grid: S2Grid, folder: Path) -> dict[str, dict[str, Any]]:
    """Write a scene's 13 assets as GeoTIFFs in `folder`; return per-asset STAC facts.

    Args:
        scene: The rendered scene.
        grid: Its UTM grid.
        folder: Where the GeoTIFFs go.

    Returns:
        Asset key -> band name, resolution (m), shape and transform of its file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    t10 = from_origin(grid.left, grid.top, 10, 10)
    t20 = from_origin(grid.left, grid.top, 20, 20)
    facts: dict[str, dict[str, Any]] = {}
    dn = np.clip(np.round(scene.reflectance * 10000) + BOA_OFFSET, 1, 65535).astype(np.uint16)
    for i, (key, band, res) in enumerate(SPECTRAL_ASSETS):
        arr = (
            dn[i]
            if res == 10
            else np.clip(np.round(_down(dn[i].astype(np.float32))), 1, 65535).astype(np.uint16)
        )
        tr = t10 if res == 10 else t20
        write_geotiff(folder / f"{key}.tif", arr, tr, f"EPSG:{grid.epsg}", nodata=0, tiled=False)
        facts[key] = {"band": band, "res": res, "shape": arr.shape, "transform": tr}
    for key, arr in (("cloud", scene.cloud), ("snow", scene.snow), ("scl", scene.scl)):
        nodata = None if key != "scl" else 0
        write_geotiff(
            folder / f"{key}.tif", arr, t20, f"EPSG:{grid.epsg}", nodata=nodata, tiled=False
        )
        facts[key] = {"band": key, "res": 20, "shape": arr.shape, "transform": t20}
    return facts
