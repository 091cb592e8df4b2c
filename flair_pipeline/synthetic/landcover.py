"""Synthetic land cover: polygons that tile an area with a plausible French landscape.

The area is cut into landscape cells (Voronoi), each cell is given a landscape type
(urban, agricultural, forest, vineyard, water, natural) and subdivided the way such land is:
street blocks into lots with buildings, gardens and pools; farmland into parcels; forests
into stands. A river may cross everything. Every subdivision is an exact split or a
difference, so the polygons tile the area without gaps or overlaps, as IGN's labels do.

Each polygon carries its FLAIR code plus the per-object attributes the renderers need
(orientation for rows and furrows, heights, crop calendar), so that aerial, elevation and
Sentinel-2 renderings of one object agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.ops import split

from flair_pipeline.domains import DomainId

LANDSCAPES = ("urban", "agricultural", "forest", "vineyard", "water", "natural")
#: Base share of landscape cells; chosen so class shares land near FLAIR's (FLAIR #1 datapaper, Garioud et al. 2022).
BASE_LANDSCAPE_WEIGHTS = np.array([0.27, 0.36, 0.25, 0.04, 0.04, 0.04])
#: Départements with much vineyard (Bordeaux, Languedoc, Provence, Champagne, Burgundy…).
VINE_DEPARTMENTS = frozenset({7, 13, 21, 26, 30, 33, 34, 51, 66, 69, 71, 84})


@dataclass
class LandCover:
    """Polygons and their per-object attributes, in EPSG:2154 metres."""

    geoms: list[Polygon] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    angle: list[float] = field(default_factory=list)  # radians, object's long axis
    height: list[float] = field(default_factory=list)  # metres above ground
    variant: list[float] = field(default_factory=list)  # 0..1, per-object appearance draw
    phase: list[float] = field(default_factory=list)  # 0..1, crop calendar / timing draw

    def add(
        self, geom: BaseGeometry, code: int, rng: np.random.Generator, angle: float | None = None
    ) -> None:
        """Add a (multi)polygon, exploded into parts, with freshly drawn attributes."""
        for part in _parts(geom):
            self.geoms.append(part)
            self.codes.append(code)
            self.angle.append(_orientation(part) if angle is None else angle)
            self.height.append(_draw_height(code, rng))
            self.variant.append(float(rng.random()))
            self.phase.append(float(rng.random()))

    def __len__(self) -> int:
        return len(self.geoms)

    def arrays(self) -> dict[str, np.ndarray]:
        """Attributes as numpy arrays, index i for polygon i.

        Returns:
            ``code`` uint8, ``angle``, ``height``, ``variant``, ``phase`` float32, each (n,).
        """
        return {
            "code": np.asarray(self.codes, dtype=np.uint8),
            "angle": np.asarray(self.angle, dtype=np.float32),
            "height": np.asarray(self.height, dtype=np.float32),
            "variant": np.asarray(self.variant, dtype=np.float32),
            "phase": np.asarray(self.phase, dtype=np.float32),
        }


def _parts(geom: BaseGeometry | None) -> list[Polygon]:
    if geom is None or geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom] if geom.area > 1e-6 else []
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon) and g.area > 1e-6]


def _orientation(poly: Polygon) -> float:
    rect = poly.minimum_rotated_rectangle
    assert isinstance(rect, Polygon), f"degenerate polygon {poly.wkt[:60]}"
    coords = np.asarray(rect.exterior.coords) if isinstance(rect, Polygon) else None
    if coords is None or len(coords) < 4:
        return 0.0
    e1, e2 = coords[1] - coords[0], coords[2] - coords[1]
    edge = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    return float(math.atan2(edge[1], edge[0]))


_HEIGHTS = {  # code -> (min, max) metres: trees over 5 m, brushwood under 5 m
    1: (4.0, 18.0),
    6: (14.0, 30.0),
    7: (9.0, 25.0),
    16: (10.0, 26.0),  # mixed forest
    8: (0.5, 4.0),
    17: (1.0, 4.5),  # ligneous
    9: (1.2, 1.9),
    18: (2.5, 5.0),
    19: (0.0, 3.0),
}


def _draw_height(code: int, rng: np.random.Generator) -> float:
    lo, hi = _HEIGHTS.get(code, (0.0, 0.0))
    return float(rng.uniform(lo, hi)) if hi > 0 else 0.0


def _split_once(poly: BaseGeometry, rng: np.random.Generator) -> list[BaseGeometry]:
    """Cut a polygon across its long axis at 35-65 % with a little angular jitter.

    Args:
        poly: The polygon cut.
        rng: The domain's generator.

    Returns:
        The pieces, or `poly` alone when the cut leaves fewer than two.
    """
    rect = poly.minimum_rotated_rectangle
    assert isinstance(rect, Polygon), f"degenerate polygon {poly.wkt[:60]}"
    coords = np.asarray(rect.exterior.coords)
    e1, e2 = coords[1] - coords[0], coords[2] - coords[1]
    long_edge = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    length = float(np.hypot(*long_edge))
    u = long_edge / max(length, 1e-9)
    t = rng.uniform(0.35, 0.65)
    # the cut passes through a point along the long axis, across it
    centre = np.asarray(rect.centroid.coords[0])
    p = centre + u * (t - 0.5) * length
    jitter = rng.normal(0.0, 0.08)
    n = np.array([-u[1], u[0]])
    n = n * math.cos(jitter) + u * math.sin(jitter)
    reach = length * 2 + 10
    line = LineString([p - n * reach, p + n * reach])
    pieces: list[BaseGeometry] = [g for g in split(poly, line).geoms if isinstance(g, Polygon)]
    return pieces if len(pieces) >= 2 else [poly]


def subdivide(
    poly: BaseGeometry, min_size: float, max_size: float, rng: np.random.Generator
) -> list[BaseGeometry]:
    """Recursively split until pieces are between about min_size and max_size across.

    Args:
        poly: The polygon split (EPSG:2154 m).
        min_size: Pieces below this many metres across are not split further.
        max_size: Pieces above this many metres across are always split.
        rng: The domain's generator.

    Returns:
        The pieces, tiling `poly`.
    """
    out: list[BaseGeometry] = []
    stack = [poly]
    while stack:
        p = stack.pop()
        rect = p.minimum_rotated_rectangle
        c = np.asarray(rect.exterior.coords) if isinstance(rect, Polygon) else None
        longest = 0.0 if c is None else max(np.hypot(*(c[1] - c[0])), np.hypot(*(c[2] - c[1])))
        target = rng.uniform(min_size, max_size)
        if longest <= target or longest < 2 * min_size:
            out.append(p)
            continue
        pieces = _split_once(p, rng)
        if len(pieces) == 1:
            out.append(p)
        else:
            stack.extend(pieces)
    return out


def _choice(rng: np.random.Generator, table: dict[int, float]) -> int:
    codes = list(table)
    w = np.asarray([table[c] for c in codes], dtype=float)
    return int(codes[rng.choice(len(codes), p=w / w.sum())])


def _mitre_shrink(poly: BaseGeometry, d: float) -> BaseGeometry:
    return poly.buffer(-d, join_style="mitre")


def _urban_cell(cell: BaseGeometry, lc: LandCover, rng: np.random.Generator, south: bool) -> None:
    blocks = subdivide(cell, 45.0, 110.0, rng)
    road_half = rng.uniform(3.5, 6.0)
    interiors = []
    for b in blocks:
        inner = _mitre_shrink(b, road_half)
        interiors.extend(_parts(inner))
    roads = cell.difference(shapely.union_all(interiors)) if interiors else cell
    lc.add(roads, 3, rng)
    pool_p = 0.35 if south else 0.12
    for inner in interiors:
        kind = _choice(rng, {0: 0.60, 1: 0.14, 2: 0.12, 3: 0.08, 4: 0.035, 5: 0.025})
        if kind == 0:  # residential: lots with a house, a garden, sometimes a pool
            for lot in subdivide(inner, 12.0, 28.0, rng):
                house = _mitre_shrink(lot, rng.uniform(2.0, 5.0))
                house = house if house.area > 20 else Polygon()
                garden = lot.difference(house) if not house.is_empty else lot
                lc.add(house, 1, rng)
                pool: BaseGeometry = Polygon()
                if not garden.is_empty and rng.random() < pool_p and garden.area > 60:
                    c = garden.representative_point()
                    w, h = rng.uniform(2.5, 4.5), rng.uniform(5.0, 9.0)
                    pool = shapely.affinity.rotate(
                        box(c.x - w / 2, c.y - h / 2, c.x + w / 2, c.y + h / 2),
                        rng.uniform(0, 180),
                    ).intersection(garden)
                    garden = garden.difference(pool)
                    lc.add(pool, 13, rng)
                lc.add(garden, 2 if rng.random() < 0.55 else 10, rng)
        elif kind == 1:  # dense centre: terraced buildings on paved courtyards
            for lot in subdivide(inner, 10.0, 24.0, rng):
                house = _mitre_shrink(lot, rng.uniform(0.6, 1.8))
                lc.add(house, 1, rng)
                lc.add(lot.difference(house), 3, rng)
        elif kind == 2:  # commercial: a large hall and its car park
            hall = _mitre_shrink(inner, rng.uniform(8.0, 15.0))
            lc.add(hall, 1, rng)
            rest = inner.difference(hall)
            lc.add(rest, 3, rng)
        elif kind == 3:  # park: trees and lawns
            for part in subdivide(inner, 20.0, 50.0, rng):
                lc.add(part, _choice(rng, {7: 0.5, 10: 0.35, 2: 0.15}), rng)
        elif kind == 4:  # construction site, depot, cemetery: "other"
            lc.add(inner, 19, rng)
        else:  # sports ground, gravel
            lc.add(inner, 2, rng)


_AGRI = {11: 0.43, 10: 0.28, 12: 0.14, 4: 0.045, 8: 0.04, 17: 0.03, 18: 0.025}
_FOREST = {7: 0.45, 6: 0.18, 16: 0.10, 8: 0.12, 15: 0.06, 17: 0.05, 10: 0.04}


def _agricultural_cell(cell: BaseGeometry, lc: LandCover, rng: np.random.Generator) -> None:
    for parcel in subdivide(cell, 50.0, 170.0, rng):
        code = _choice(rng, _AGRI)
        if code == 18 and parcel.area > 5000:  # greenhouses come in rows beside a yard
            for k, strip in enumerate(subdivide(parcel, 15.0, 35.0, rng)):
                lc.add(strip, 18 if k % 3 else 4, rng)
            continue
        lc.add(parcel, code, rng)


def _vineyard_cell(cell: BaseGeometry, lc: LandCover, rng: np.random.Generator) -> None:
    for parcel in subdivide(cell, 35.0, 100.0, rng):
        lc.add(parcel, _choice(rng, {9: 0.78, 10: 0.12, 4: 0.05, 8: 0.05}), rng)


def _forest_cell(cell: BaseGeometry, lc: LandCover, rng: np.random.Generator) -> None:
    for stand in subdivide(cell, 50.0, 180.0, rng):
        lc.add(stand, _choice(rng, _FOREST), rng)


def _water_cell(cell: BaseGeometry, lc: LandCover, rng: np.random.Generator) -> None:
    c = cell.centroid
    r = math.sqrt(cell.area / math.pi) * rng.uniform(0.35, 0.6)
    angles = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    radii = r * (1 + 0.25 * np.sin(angles * rng.integers(2, 5) + rng.uniform(0, 6)))
    lake: BaseGeometry = Polygon(np.c_[c.x + radii * np.cos(angles), c.y + radii * np.sin(angles)])
    lake = lake.intersection(_mitre_shrink(cell, 3.0))
    lc.add(lake, 5, rng)
    rest = cell.difference(lake) if not lake.is_empty else cell
    for part in _parts(rest):
        for piece in subdivide(part, 40.0, 120.0, rng):
            lc.add(piece, _choice(rng, {10: 0.4, 8: 0.3, 7: 0.3}), rng)


def _natural_cell(
    cell: BaseGeometry, lc: LandCover, rng: np.random.Generator, mountain: bool
) -> None:
    table = {8: 0.35, 4: 0.2, 10: 0.25, 17: 0.2}
    if mountain:
        table = {14: 0.35, 4: 0.3, 8: 0.2, 10: 0.15}
    for piece in subdivide(cell, 40.0, 140.0, rng):
        lc.add(piece, _choice(rng, table), rng)


def _river(bounds: tuple[float, float, float, float], rng: np.random.Generator) -> Polygon:
    x0, y0, x1, y1 = bounds
    w, h = x1 - x0, y1 - y0
    horizontal = rng.random() < 0.5
    t = np.linspace(-0.1, 1.1, 80)
    wave = 0.25 * math.sin(rng.uniform(0, 6)) + 0.12 * np.sin(
        t * rng.uniform(4, 9) + rng.uniform(0, 6)
    )
    if horizontal:
        pts = np.c_[x0 + t * w, y0 + (0.5 + wave) * h]
    else:
        pts = np.c_[x0 + (0.5 + wave) * w, y0 + t * h]
    return LineString(pts).buffer(rng.uniform(4.0, 11.0), cap_style="flat")


def landscape_weights(domain: DomainId, rng: np.random.Generator) -> np.ndarray:
    """Per-domain shares of landscape types: the base mix, perturbed and regionalised.

    Args:
        domain: The domain (département and mountain flag regionalise the mix).
        rng: The domain's generator.

    Returns:
        Shares (summing to 1) of the landscape types, in ``BASE_LANDSCAPE_WEIGHTS`` order.
    """
    w = BASE_LANDSCAPE_WEIGHTS.copy()
    if domain.department in VINE_DEPARTMENTS:
        w[3] *= 2.5
    if domain.is_mountain:
        w[5] *= 2.0
        w[2] *= 1.3
    w = rng.dirichlet(w / w.sum() * 60.0)
    return w


def generate_landcover(
    domain: DomainId, bounds: tuple[float, float, float, float], seed: int
) -> LandCover:
    """Polygons tiling `bounds` (EPSG:2154) for `domain`, deterministic in (domain, seed).

    Args:
        domain: The domain.
        bounds: (left, bottom, right, top), EPSG:2154 m.
        seed: The world's seed.

    Returns:
        Polygons tiling `bounds`, each with its FLAIR code and attributes.
    """
    rng = np.random.default_rng([seed, domain.department, domain.year, 1])
    x0, y0, x1, y1 = bounds
    area = (x1 - x0) * (y1 - y0)
    extent = box(*bounds)
    n_cells = max(4, round(area / rng.uniform(30_000.0, 45_000.0)))
    pts = shapely.MultiPoint(np.c_[rng.uniform(x0, x1, n_cells), rng.uniform(y0, y1, n_cells)])
    cells = [c.intersection(extent) for c in shapely.voronoi_polygons(pts, extend_to=extent).geoms]
    weights = landscape_weights(domain, rng)
    south = domain.department in {4, 6, 13, 30, 34, 66, 83, 84, 26, 7}
    lc = LandCover()
    kinds = rng.choice(len(LANDSCAPES), size=len(cells), p=weights)
    for cell, k in zip(cells, kinds, strict=True):
        if cell.is_empty:
            continue
        name = LANDSCAPES[k]
        if name == "urban":
            _urban_cell(cell, lc, rng, south)
        elif name == "agricultural":
            _agricultural_cell(cell, lc, rng)
        elif name == "forest":
            _forest_cell(cell, lc, rng)
        elif name == "vineyard":
            _vineyard_cell(cell, lc, rng)
        elif name == "water":
            _water_cell(cell, lc, rng)
        else:
            _natural_cell(cell, lc, rng, domain.is_mountain)
    if rng.random() < 0.75:
        lc = _cut_river(lc, _river(bounds, rng).intersection(extent), rng)
    return lc


def _cut_river(lc: LandCover, river: BaseGeometry, rng: np.random.Generator) -> LandCover:
    """Carve a river through the polygons, keeping the tiling exact.

    Args:
        lc: The land cover.
        river: The river's polygon.
        rng: The domain's generator.

    Returns:
        A new land cover: the polygons minus the river, plus the river as water.
    """
    tree = shapely.STRtree(lc.geoms)
    hit = set(tree.query(river, predicate="intersects").tolist())
    out = LandCover()
    for i, g in enumerate(lc.geoms):
        geom = g.difference(river) if i in hit else g
        for part in _parts(geom):
            out.geoms.append(part)
            out.codes.append(lc.codes[i])
            out.angle.append(lc.angle[i])
            out.height.append(lc.height[i])
            out.variant.append(lc.variant[i])
            out.phase.append(lc.phase[i])
    out.add(river, 5, rng)
    return out
