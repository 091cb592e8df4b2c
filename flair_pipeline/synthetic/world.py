"""The embedded default: a deterministic synthetic "mini-France" of raw inputs.

`generate_world` writes, for each domain of a scenario, what IGN delivers (docs/inputs.md): an
R,G,B,NIR orthophoto mosaic in several 0.2 m GeoTIFF tiles, DSM and DTM, vector labels
(labels.gpkg, column `code`), domain.json; a Sentinel-2 L2A archive with its STAC
catalog; RPG parcels (``rpg/``) and a Sentinel-1 RTC archive (``sentinel1/``, VV and VH in
both orbit directions, ``synthetic/sentinel1.py``) with its STAC catalog. Same scenario and seed give byte-identical files. Everything is written in a
temporary folder inside `out` and moved into place at the end, so a failed run leaves
nothing half written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import pystac
import shapely
from affine import Affine
from rasterio.transform import from_origin

from flair_pipeline.domains import DomainId, department_centre_l93, utm_epsg
from flair_pipeline.errors import FlairPipelineError, InputError
from flair_pipeline.io import write_geotiff
from flair_pipeline.nomenclature import CODES
from flair_pipeline.synthetic import sentinel1 as s1
from flair_pipeline.synthetic import sentinel2 as s2
from flair_pipeline.synthetic.aerial import (
    Radiometry,
    object_appearance,
    render_elevation,
    render_ortho,
)
from flair_pipeline.synthetic.landcover import LandCover, generate_landcover
from flair_pipeline.synthetic.rpg import declarations, write_level1_table, write_rpg
from flair_pipeline.synthetic.stac import make_item, mgrs_tile, write_catalog

RES = 0.2  # aerial pixel size, metres
DSM_RES = 1.0  # surface models, metres
#: GDAL writes this instead of "now" in GeoPackage metadata, so files are reproducible.
FIXED_DATE = "2000-01-01T00:00:00.000Z"
CAMERAS = ("UCE-M3-f120-s06", "UCE-M3-f100-s06", "UCE-M5-f120-s07", "CAMERA#020")


@dataclass(frozen=True)
class Scenario:
    """A world size: which domains, how big each is, how many Sentinel-2 dates."""

    name: str
    domains: tuple[str, ...]
    size_m: float  # side of each domain's aerial mosaic
    tile_px: int  # side of a mosaic tile
    s2_margin_m: float  # Sentinel-2 coverage beyond the mosaic (super-areas are wider)
    dates: tuple[int, int]  # bounds on acquisition dates per domain
    nodata_corner_p: float  # chance that a domain's mosaic misses a corner


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        # train, validation, test: one each; seconds
        Scenario("tiny", ("D033_2021", "D004_2021", "D036_2020"), 102.4, 256, 250.0, (20, 26), 0.0),
        # two of each split; about a minute. 512 m (25 patches of 512 px per domain): at
        # 409.6 m a mosaic spans only 4-5 landscape cells, and seed 0 left the training
        # split with 2 % agricultural land, too little to learn the class the demo's
        # U-Net vs U-T&T comparison is about (tests/sources/test_synthetic.py checks it)
        Scenario(
            "demo",
            ("D033_2021", "D013_2020", "D014_2020", "D067_2021", "D036_2020", "D069_2020"),
            512.0,
            1280,
            350.0,
            (20, 114),
            0.35,
        ),
        # several km²: throughput measurements; all 19 codes occur
        Scenario(
            "bench",
            (
                "D033_2021",
                "D013_2020",
                "D074_2020",
                "D051_2019",
                "D004_2021",
                "D014_2020",
                "D036_2020",
                "D069_2020",
            ),
            1024.0,
            1024,
            350.0,
            (20, 114),
            0.35,
        ),
    )
}


@dataclass
class DomainSummary:
    """What was generated for one domain."""

    domain: str
    split: str
    bounds: tuple[float, float, float, float]
    tiles: int
    class_area_m2: dict[int, float]
    dates: int
    cloudy_dates: int

    @property
    def area_km2(self) -> float:
        """The domain's extent, km²."""
        x0, y0, x1, y1 = self.bounds
        return (x1 - x0) * (y1 - y0) / 1e6


@dataclass
class WorldSummary:
    """What `generate_world` wrote."""

    out: Path
    scenario: str
    seed: int
    domains: list[DomainSummary] = field(default_factory=list)
    bytes_written: int = 0

    @property
    def area_km2(self) -> float:
        """Extent of all domains together, km²."""
        return sum(d.area_km2 for d in self.domains)

    def class_shares(self) -> dict[int, float]:
        """Percent of labelled area per code over all domains.

        Returns:
            Code (1..19) -> percent.
        """
        total: dict[int, float] = dict.fromkeys(CODES, 0.0)
        for d in self.domains:
            for c, a in d.class_area_m2.items():
                total[c] += a
        s = sum(total.values()) or 1.0
        return {c: 100.0 * a / s for c, a in total.items()}


def domain_bounds(domain: DomainId, size_m: float, seed: int) -> tuple[float, float, float, float]:
    """A plausible EPSG:2154 extent inside the domain's département, snapped to 100 m.

    Args:
        domain: The domain.
        size_m: Side of the square mosaic, metres.
        seed: The world's seed.

    Returns:
        (left, bottom, right, top), EPSG:2154 m, within ±15 km of the département's centre.
    """
    rng = np.random.default_rng([seed, domain.department, domain.year, 0])
    cx, cy = department_centre_l93(domain.department)
    x0 = np.floor((cx + rng.uniform(-15_000, 15_000)) / 100) * 100
    y0 = np.floor((cy + rng.uniform(-15_000, 15_000)) / 100) * 100
    return (float(x0), float(y0), float(x0 + size_m), float(y0 + size_m))


def domain_landcover(
    domain: DomainId, scenario: Scenario, seed: int
) -> tuple[LandCover, tuple[float, float, float, float], s2.S2Grid]:
    """A domain's land cover, its mosaic extent and its Sentinel-2 grid.

    The land cover spans the whole Sentinel-2 grid (wider than the mosaic), because
    super-areas reach beyond the flown patches; labels are clipped to the mosaic.

    Args:
        domain: The domain.
        scenario: Its scenario (mosaic size, S2 margin).
        seed: The world's seed.

    Returns:
        (land cover, mosaic bounds in EPSG:2154 m, S2 grid in the local UTM zone).
    """
    bounds = domain_bounds(domain, scenario.size_m, seed)
    lon_lat = _lonlat((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
    grid = s2.s2_grid(bounds, scenario.s2_margin_m, utm_epsg(*lon_lat))
    return generate_landcover(domain, s2.landcover_bounds_for(grid), seed), bounds, grid


def split_class_shares(scenario: Scenario, seed: int) -> dict[str, np.ndarray]:
    """Per official split, the share of each code (index 0..19) in the domains' mosaics.

    Computed from the land-cover polygons alone (no rendering, seconds), so a scenario can
    be checked for what its splits contain before generating it: a comparison of models
    on a class means nothing if the training split barely holds that class.

    Args:
        scenario: The scenario.
        seed: The world's seed.

    Returns:
        Split name -> float64 (20,) shares summing to 1, indexed by code.
    """
    area: dict[str, np.ndarray] = {}
    for name in scenario.domains:
        domain = DomainId.parse(name)
        lc, bounds, _ = domain_landcover(domain, scenario, seed)
        extent = shapely.box(*bounds)
        clipped = shapely.area(shapely.intersection(np.asarray(lc.geoms, dtype=object), extent))
        per_code = np.bincount(np.asarray(lc.codes), weights=clipped, minlength=20)
        split = str(domain.official_split)
        area[split] = area.get(split, np.zeros(20)) + per_code
    return {split: a / a.sum() for split, a in area.items()}


def _write_tif(
    path: Path,
    arr: np.ndarray,
    transform: Affine,
    descriptions: tuple[str, ...] | None = None,
    **opts: Any,
) -> None:
    """A raw input as IGN-like GeoTIFF: Lambert-93, 256 px tiles, DEFLATE, band names.

    Four-band arrays are named red, green, blue, nir unless `descriptions` says otherwise.
    """
    if descriptions is None and (arr.ndim == 3 and arr.shape[0] == 4):
        descriptions = ("red", "green", "blue", "nir")
    write_geotiff(path, arr, transform, "EPSG:2154", descriptions=descriptions, tiled=True, **opts)


def _nodata_mask(
    rng: np.random.Generator, p: float
) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """A corner of the mosaic left unflown (pixels = 0), as at a département's edge.

    Args:
        rng: The domain's generator.
        p: Probability that the domain has such a corner.

    Returns:
        None, or a function of (u, v) coordinates in 0..1 returning the bool mask of the
        unflown corner.
    """
    if rng.random() >= p:
        return None
    cut = rng.uniform(0.2, 0.35)
    flip_u, flip_v = rng.random() < 0.5, rng.random() < 0.5

    def mask(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        u = 1 - u if flip_u else u
        v = 1 - v if flip_v else v
        unflown: np.ndarray = (u[None, :] + v[:, None]) < cut
        return unflown

    return mask


def generate_domain(
    domain_id: str, scenario: Scenario, seed: int, raw: Path
) -> tuple[DomainSummary, list[pystac.Item], list[pystac.Item]]:
    """Write one domain's raw inputs under `raw`, its S2 and S1 scenes; return summary, items.

    Args:
        domain_id: Domain id.
        scenario: The scenario.
        seed: The world's seed.
        raw: The raw root.

    Returns:
        The domain's summary, its Sentinel-2 scenes' and its Sentinel-1 passes' STAC items.
    """
    domain = DomainId.parse(domain_id)
    rng = np.random.default_rng([seed, domain.department, domain.year, 2])
    lc, bounds, grid = domain_landcover(domain, scenario, seed)
    tree = shapely.STRtree(lc.geoms)
    dseed = int(np.random.default_rng([seed, domain.department, domain.year, 3]).integers(2**31))
    app = object_appearance(lc, dseed, RES)

    folder = raw / "domains" / domain_id
    (folder / "ortho").mkdir(parents=True)
    _write_labels(folder / "labels.gpkg", lc, bounds)
    class_area = _class_areas(folder / "labels.gpkg")

    radiometry = Radiometry.draw(rng)
    shift = tuple(rng.uniform(-0.5, 0.5, 2).tolist())
    unflown = _nodata_mask(rng, scenario.nodata_corner_p)
    total_px = round(scenario.size_m / RES)
    tile_m = scenario.tile_px * RES
    n_tiles = int(np.ceil(total_px / scenario.tile_px))
    for ty in range(n_tiles):
        for tx in range(n_tiles):
            tb = (
                bounds[0] + tx * tile_m,
                bounds[3] - (ty + 1) * tile_m,
                bounds[0] + (tx + 1) * tile_m,
                bounds[3] - ty * tile_m,
            )
            img = render_ortho(
                lc, tree, app, tb, (bounds[0], bounds[3]), RES, radiometry, dseed, shift
            )
            if unflown is not None:
                c = (tx * scenario.tile_px + np.arange(scenario.tile_px) + 0.5) / total_px
                r = (ty * scenario.tile_px + np.arange(scenario.tile_px) + 0.5) / total_px
                img[:, unflown(c, r)] = 0
            name = f"{domain.department:02d}-{domain.year}-{int(tb[0]):07d}-{int(tb[3]):07d}-LA93-0M20.tif"
            _write_tif(
                folder / "ortho" / name,
                img,
                from_origin(tb[0], tb[3], RES, RES),
                nodata=0,
                predictor=2,
                photometric="RGB",
                alpha="UNSPECIFIED",
            )

    dsm, dtm = render_elevation(lc, tree, app, bounds, DSM_RES, dseed, domain.is_mountain)
    t_dsm = from_origin(bounds[0], bounds[3], DSM_RES, DSM_RES)
    _write_tif(folder / "dsm.tif", dsm, t_dsm, predictor=3, descriptions=("dsm",))
    _write_tif(folder / "dtm.tif", dtm, t_dsm, predictor=3, descriptions=("dtm",))

    flight = dt.date(domain.year, 4, 15) + dt.timedelta(days=int(rng.integers(0, 170)))
    meta = {
        "domain": domain_id,
        "department": domain.department,
        "year": domain.year,
        "date": flight.isoformat(),
        "time": f"{int(rng.integers(9, 15)):02d}:{int(rng.integers(0, 60)):02d}:00",
        "camera": CAMERAS[int(rng.integers(len(CAMERAS)))],
        "crs": "EPSG:2154",
        "resolution_m": RES,
        "bounds": list(bounds),
        "bands": ["red", "green", "blue", "nir"],
        "nodata": 0,
        "surface_models": {"dsm": "dsm.tif", "dtm": "dtm.tif", "resolution_m": DSM_RES},
        "source": f"flair_pipeline synthetic world (scenario {scenario.name}, seed {seed})",
    }
    (folder / "domain.json").write_text(json.dumps(meta, indent=2) + "\n")

    P = s2.fraction_matrix(lc, grid)
    items, cloudy = _sentinel2(domain, grid, lc, P, scenario, seed, dseed, raw / "sentinel2")
    write_rpg(raw / "rpg", domain, lc.geoms, lc.codes, bounds, seed)  # own random stream
    s1_items = _sentinel1(domain, grid, lc, P, bounds, seed, raw / "sentinel1")  # own stream
    summary = DomainSummary(
        domain=domain_id,
        split=(domain.official_split or "unassigned").__str__(),
        bounds=bounds,
        tiles=n_tiles * n_tiles,
        class_area_m2=class_area,
        dates=len(items),
        cloudy_dates=cloudy,
    )
    return summary, items, s1_items


def _lonlat(x: float, y: float) -> tuple[float, float]:
    from pyproj import Transformer

    lon, lat = Transformer.from_crs("EPSG:2154", "EPSG:4326", always_xy=True).transform(x, y)
    return float(lon), float(lat)


def _write_labels(path: Path, lc: LandCover, bounds: tuple[float, float, float, float]) -> None:
    """Labels clipped to the mosaic: IGN labels cover exactly the flown area."""
    extent = shapely.box(*bounds)
    geoms = np.asarray(lc.geoms, dtype=object)
    codes = np.asarray(lc.codes)
    hit = shapely.STRtree(geoms).query(extent, predicate="intersects")
    hit.sort()
    clipped = shapely.intersection(geoms[hit], extent)
    gdf = gpd.GeoDataFrame({"code": codes[hit].astype("int32")}, geometry=clipped, crs="EPSG:2154")
    gdf = gdf.explode(index_parts=False)
    gdf = gdf[gdf.geom_type == "Polygon"].reset_index(drop=True)
    gdf = gdf[gdf.area > 1e-4].reset_index(drop=True)
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_DATE})
    gdf.to_file(path, layer="labels", driver="GPKG", engine="pyogrio")


def _class_areas(path: Path) -> dict[int, float]:
    gdf = gpd.read_file(path)
    areas = gdf.geometry.area.groupby(gdf["code"]).sum()
    return {int(c): float(a) for c, a in zip(areas.index, areas.to_numpy(), strict=True)}


def _sentinel2(
    domain: DomainId,
    grid: s2.S2Grid,
    lc: LandCover,
    P: Any,
    scenario: Scenario,
    seed: int,
    dseed: int,
    root: Path,
) -> tuple[list[pystac.Item], int]:
    rng = np.random.default_rng([seed, domain.department, domain.year, 4])
    n = s2.n_dates(rng, *scenario.dates)
    dates = s2.acquisition_dates(rng, domain.year, n)
    a = lc.arrays()
    objects = {
        k: np.concatenate([[v], a[k]]) for k, v in (("code", 10), ("phase", 0.5), ("variant", 0.5))
    }
    objects["code"] = objects["code"].astype(np.uint8)
    south = domain.department in {4, 6, 7, 13, 26, 30, 34, 66, 84}
    tile = mgrs_tile(grid.epsg, domain.department)
    items, cloudy = [], 0
    for date in dates:
        scene = s2.render_scene(date, P, objects, grid, dseed, domain, south, rng)
        cc = float((scene.cloud > 35).mean() * 100)
        sc = float((scene.snow > 50).mean() * 100)
        cloudy += cc > 10
        sat = "A" if date.toordinal() % 2 else "B"
        folder = root / s2.COLLECTION / f"S2{sat}_{tile}_{date:%Y%m%d}_0_L2A"
        facts = s2.write_scene(scene, grid, folder)
        items.append(make_item(str(domain), grid, date, facts, folder, cc, sc, tile))
    return items, cloudy


def _sentinel1(
    domain: DomainId,
    grid: s2.S2Grid,
    lc: LandCover,
    P: Any,
    bounds: tuple[float, float, float, float],
    seed: int,
    root: Path,
) -> list[pystac.Item]:
    """Write the domain's Sentinel-1 passes (issue 25), crops as its RPG declares them.

    Args:
        domain: The domain.
        grid: Its 10 m UTM grid (the Sentinel-2 scenes').
        lc: Its land cover.
        P: Its pixel-by-object fraction matrix.
        bounds: The mosaic's bounds (the RPG's extent).
        seed: The world's seed.
        root: ``<raw>/sentinel1``.

    Returns:
        The passes' STAC items.
    """
    rng = np.random.default_rng([seed, domain.department, domain.year, 9])
    declared = {i: c[0] for i, c, _ in declarations(domain, lc.geoms, lc.codes, bounds, seed)}
    a = lc.arrays()
    crop = s1.object_crops(a["code"], declared, rng)
    objects = {
        "code": np.concatenate([[10], a["code"]]).astype(np.uint8),
        "phase": np.concatenate([[0.5], a["phase"]]),
        "crop": np.concatenate([[-1], crop]).astype(np.int16),
    }
    return s1.generate(domain, grid, P, objects, rng, root)


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


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def generate_world(
    out: str | Path,
    scenario: str = "demo",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> WorldSummary:
    """Write the synthetic raw inputs of `scenario` under `out` (the raw layout of docs/inputs.md).

    Args:
        out: The raw root written.
        scenario: A name of ``SCENARIOS``.
        seed: The world's seed (>= 0).
        progress: Called with one line per domain written.

    Returns:
        What was written: domains, area, class areas, dates, bytes.

    Raises:
        FlairPipelineError: Unknown scenario or negative seed.
        InputError: `out` cannot be written.
    """
    if scenario not in SCENARIOS:
        raise FlairPipelineError(
            f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}"
        )
    if seed < 0:
        raise FlairPipelineError(f"seed must be >= 0, got {seed}")
    sc = SCENARIOS[scenario]
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".synth-", dir=out))
    except OSError as exc:
        raise InputError(
            f"{out}: cannot write the synthetic world there ({exc.strerror})"
        ) from None
    summary = WorldSummary(out=out, scenario=scenario, seed=seed)
    try:
        items, s1_items = [], []
        for domain_id in sc.domains:
            if progress:
                progress(domain_id)
            d, its, s1_its = generate_domain(domain_id, sc, seed, tmp)
            summary.domains.append(d)
            items.extend(its)
            s1_items.extend(s1_its)
        write_catalog(tmp / "sentinel2", items)
        # the land-cover world's bytes, as before the RPG parcels and the Sentinel-1
        # archive (issue 25) were added
        summary.bytes_written = _du(tmp) - _du(tmp / "rpg") - _du(tmp / "sentinel1")
        write_level1_table(tmp / "rpg")
        s1.write_catalog(tmp / "sentinel1", s1_items)
        for domain_id in sc.domains:
            _replace(tmp / "domains" / domain_id, out / "domains" / domain_id)
        _replace(tmp / "sentinel2", out / "sentinel2")
        _replace(tmp / "rpg", out / "rpg")
        _replace(tmp / "sentinel1", out / "sentinel1")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def format_summary(s: WorldSummary) -> str:
    """A human-readable summary: domains, area, class shares, dates per domain.

    Args:
        s: A world's summary.

    Returns:
        Multi-line text.
    """
    from flair_pipeline.nomenclature import BY_CODE

    lines = [
        f"Synthetic world '{s.scenario}' (seed {s.seed}) in {s.out}: {len(s.domains)} domains, "
        f"{s.area_km2:.2f} km² of 0.2 m imagery, {s.bytes_written / 1e6:.1f} MB",
        "",
        f"{'domain':<11} {'split':<11} {'km²':>6} {'tiles':>5} {'S2 dates':>8} {'cloudy':>6}",
    ]
    for d in s.domains:
        lines.append(
            f"{d.domain:<11} {d.split:<11} {d.area_km2:6.3f} {d.tiles:5d} "
            f"{d.dates:8d} {d.cloudy_dates:6d}"
        )
    lines += ["", "class shares (% of labelled area):"]
    for code, share in s.class_shares().items():
        lines.append(f"  {code:2d} {BY_CODE[code].name:<22} {share:6.2f}")
    return "\n".join(lines)
