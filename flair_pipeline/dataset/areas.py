"""Areas first: which parts of a domain's mosaic get patches, chosen before any pixel is read.

FLAIR samples areas of interest in each domain, then patches inside them (Garioud et al.,
FLAIR #1 datapaper: 916 areas over 50 domains). Here the candidate areas are the squares of
a lattice of ``sampling.zone_size_m`` (rounded down to whole patches) anchored at the
mosaic's top-left corner, so they are unions of patch cells of the patch lattice
(:mod:`~flair_pipeline.dataset.sampling`) and a patch's id never depends on the areas
chosen. Each area is scored from vectors alone: its class shares from the label polygons
clipped to its cells, and its coverage from the tile footprints of every ortho product
(the tiles' bounds, never their pixels). An area is *valid* when at least one of its cells
is covered by tiles and labels within ``sampling.max_nodata_fraction``.

Strategies (``sampling.area_strategy``) choose up to ``sampling.areas_per_domain`` valid
areas: ``grid`` the first in lattice order (rows from the top), ``random`` a seeded subset
(seed, département, year), ``balanced`` a greedy subset whose summed class shares move
toward FLAIR's (:data:`~flair_pipeline.nomenclature.FLAIR_SHARES`). When the budget is
None or not below the valid areas, every candidate area is kept: the whole mosaic is
sampled as before areas existed (a small mosaic keeps its bytes), and a budget above the
valid count is said in one decision line. An areas layer of the user
(``sampling.areas_layer``, any OGR vector in Lambert-93) replaces the strategy: the patch
cells lying inside its polygons are laid, whatever the budget. A zone is an area: the
patches kept are grouped by the area they lie in (FLAIR's ``Z<n>_<type>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from flair_pipeline.config import SamplingConfig
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.domains import DomainId
from flair_pipeline.errors import InputError
from flair_pipeline.nomenclature import FLAIR_SHARES
from flair_pipeline.reports import JSON

#: A cell lies inside a user's area when at most this share of it is outside (float dust).
_INSIDE = 1e-6


@dataclass(frozen=True)
class PatchLattice:
    """The patch cells of a mosaic, row-major from its top-left corner, and their areas.

    Attributes:
        rows: Lattice row of each cell (from the mosaic's top).
        cols: Lattice column of each cell (from its left).
        boxes: The cells, EPSG:2154 boxes of ``size_m``.
        size_m: A cell's side in metres.
        cells_per_area: An area's side in cells (``zone_size_m // size_m``, at least 1).
    """

    rows: np.ndarray
    cols: np.ndarray
    boxes: np.ndarray
    size_m: float
    cells_per_area: int

    @classmethod
    def of(cls, mosaic: Mosaic, cfg: SamplingConfig) -> PatchLattice:
        """The lattice of `mosaic`'s patch cells (whole cells only) for ``sampling``.

        Args:
            mosaic: The domain's ortho mosaic (its bounds and pixel size).
            cfg: The ``sampling`` section (``patch_size``, ``resolution``, ``zone_size_m``).

        Returns:
            The :class:`PatchLattice`.
        """
        res = mosaic.res or cfg.resolution
        size_m = cfg.patch_size * res
        x0, y0, x1, y1 = mosaic.bounds
        n_cols, n_rows = int((x1 - x0 + 1e-6) // size_m), int((y1 - y0 + 1e-6) // size_m)
        rows, cols = np.divmod(np.arange(n_rows * n_cols), max(n_cols, 1))
        left = x0 + cols * size_m
        top = y1 - rows * size_m
        boxes = shapely.box(left, top - size_m, left + size_m, top)
        return cls(rows, cols, boxes, size_m, max(1, int(cfg.zone_size_m // size_m)))

    @property
    def area_rows(self) -> np.ndarray:
        """Area row of each cell."""
        return self.rows // self.cells_per_area

    @property
    def area_cols(self) -> np.ndarray:
        """Area column of each cell."""
        return self.cols // self.cells_per_area


@dataclass(frozen=True)
class AreaChoice:
    """The areas a domain's patches are laid in, and how they were chosen.

    Attributes:
        strategy: ``grid``, ``random``, ``balanced`` or ``layer`` (the user's areas).
        budget: ``sampling.areas_per_domain`` (None: every area).
        seed: ``sampling.seed``.
        candidates: Candidate areas of the lattice.
        valid: Candidate areas with at least one cell covered by tiles and labels.
        chosen: (area row, area column) of each area kept, in lattice order.
        cells: bool per lattice cell: a patch candidate (inside a chosen area).
        whole: True when every candidate area is kept (the mosaic sampled whole).
        lines: Decision lines (a budget above the valid areas, an area off the mosaic).
        layer: The areas layer read, or None.
        bounds: (left, bottom, right, top) of each chosen area's cells, same order.
        scored: Candidate areas scored from the labels when a bounded pool was scored
            (:mod:`~flair_pipeline.dataset.area_pool`, a département-size delivery; then
            ``valid`` counts the valid areas among them), None when every area was.
    """

    strategy: str
    budget: int | None
    seed: int
    candidates: int
    valid: int
    chosen: tuple[tuple[int, int], ...]
    cells: np.ndarray
    whole: bool
    lines: tuple[str, ...] = ()
    layer: str | None = None
    bounds: tuple[tuple[float, float, float, float], ...] = ()
    scored: int | None = None

    def as_metadata(self) -> dict[str, JSON]:
        """How the areas were chosen and which, as plain JSON values.

        Returns:
            ``strategy``, ``budget`` (int or None), ``seed``, ``candidates``, ``valid`` and
            ``chosen`` (ints), ``whole`` (bool), ``layer`` (str or None), ``areas`` (the
            first 100 chosen areas as ``"<area row>_<area col>"``) and, when a pool was
            scored, ``scored`` (int).
        """
        return {
            "strategy": self.strategy,
            "budget": self.budget,
            "seed": self.seed,
            "candidates": self.candidates,
            "valid": self.valid,
            "chosen": len(self.chosen),
            "whole": self.whole,
            "layer": self.layer,
            "areas": [f"{r}_{c}" for r, c in self.chosen[:100]],
            **({} if self.scored is None else {"scored": self.scored}),
        }


def product_coverage(mosaic: Mosaic, boxes: np.ndarray) -> dict[str, np.ndarray]:
    """Share of each box covered by each ortho product's tile footprints (no pixel read).

    Tiles of one product are taken as not overlapping (one pixel grid); their share in a
    box is summed and capped at 1. An upper bound of the share of the box where the
    product has data (its pixels may still hold nodata or be masked).

    Args:
        mosaic: The domain's ortho mosaic (its readable tiles' bounds per product).
        boxes: EPSG:2154 boxes.

    Returns:
        Product name -> float64 (len(boxes),) in [0, 1].
    """
    out = {}
    bb = shapely.bounds(boxes)
    for name, tiles in mosaic.vrt.product_tiles.items():
        tb = np.asarray([t.bounds for t in tiles], float).reshape(-1, 4)
        covered = np.zeros(len(boxes))
        box_idx, tile_idx = shapely.STRtree(shapely.box(*tb.T)).query(boxes)
        if box_idx.size:  # both are axis-aligned rectangles: overlap from their bounds
            a, t = bb[box_idx], tb[tile_idx]
            w = np.minimum(a[:, 2], t[:, 2]) - np.maximum(a[:, 0], t[:, 0])
            h = np.minimum(a[:, 3], t[:, 3]) - np.maximum(a[:, 1], t[:, 1])
            np.add.at(covered, box_idx, np.clip(w, 0, None) * np.clip(h, 0, None))
        side = (bb[:, 2] - bb[:, 0]) * (bb[:, 3] - bb[:, 1])
        out[name] = np.minimum(covered / np.maximum(side, 1e-12), 1.0)
    return out


def footprint_coverage(mosaic: Mosaic, boxes: np.ndarray) -> np.ndarray:
    """Share of each box covered by the tile footprints of every ortho product (no pixel read).

    Args:
        mosaic: The domain's ortho mosaic.
        boxes: EPSG:2154 boxes.

    Returns:
        float64 (len(boxes),) in [0, 1]: the least covered product's share
        (:func:`product_coverage`).
    """
    out = np.ones(len(boxes))
    for covered in product_coverage(mosaic, boxes).values():
        out = np.minimum(out, covered)
    return out


def balanced_choice(areas: np.ndarray, n: int) -> np.ndarray:
    """Greedy choice of `n` rows of `areas` whose summed shares are closest to FLAIR's.

    Args:
        areas: (n, 13) class areas of the candidates (patches or areas).
        n: Rows wanted.

    Returns:
        The chosen row indices, sorted.
    """
    target = np.asarray(list(FLAIR_SHARES.values())) / 100.0
    shares = areas / np.maximum(areas.sum(1, keepdims=True), 1e-9)
    chosen: list[int] = []
    acc = np.zeros(areas.shape[1])
    left = np.ones(len(areas), bool)
    for _ in range(min(n, len(areas))):
        cand = acc[None, :] + shares
        dist = np.abs(cand / cand.sum(1, keepdims=True) - target[None, :]).sum(1)
        dist[~left] = np.inf
        best = int(np.argmin(dist))
        chosen.append(best)
        left[best] = False
        acc += shares[best]
    return np.sort(np.asarray(chosen, dtype=int))


def read_areas_layer(path: str | Path) -> gpd.GeoDataFrame:
    """A user's areas: the polygons of an OGR vector file in Lambert-93, indexed by fid.

    Args:
        path: Any OGR vector (GeoPackage, Shapefile with its .prj, GeoJSON, FlatGeobuf);
            its first layer with geometries is read (QGIS's ``layer_styles`` table never).

    Returns:
        The areas (polygonal geometries only), EPSG:2154.

    Raises:
        InputError: The file is missing or unreadable, has no layer with geometries, no
            CRS or another CRS than Lambert-93, or holds no polygon (each one line naming
            the file).
    """
    import pyogrio  # here, not at import: OGR only when a layer is given

    from flair_pipeline.geo.crs import is_lambert93

    path = Path(path)
    if not path.exists():
        raise InputError(f"areas layer {path} does not exist; fix sampling.areas_layer")
    try:
        spatial = [str(n) for n, g in pyogrio.list_layers(path) if g is not None]
        if not spatial:
            raise InputError(f"areas layer {path} has no layer with geometries; draw polygons")
        gdf = pyogrio.read_dataframe(path, layer=spatial[0], fid_as_index=True)
    except InputError:
        raise
    except Exception as exc:  # pyogrio raises several types for unreadable data
        raise InputError(f"areas layer {path} cannot be read as a vector layer: {exc}") from exc
    if gdf.crs is None:
        raise InputError(f"areas layer {path} has no CRS; expected EPSG:2154 (Lambert-93)")
    if not is_lambert93(gdf.crs):
        raise InputError(
            f"areas layer {path}: CRS {gdf.crs.to_string()}, expected EPSG:2154 (Lambert-93); "
            "reproject it (ogr2ogr -t_srs EPSG:2154)"
        )
    geoms = gdf.geometry.to_numpy()
    polygonal = ~shapely.is_missing(geoms) & np.isin(shapely.get_type_id(geoms), (3, 6))
    if not polygonal.any():
        raise InputError(f"areas layer {path} holds no polygon; draw the areas as polygons")
    out: gpd.GeoDataFrame = gdf[polygonal].set_crs(2154, allow_override=True)
    out.attrs["source"] = str(path)
    return out


def area_keys(lattice: PatchLattice) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The candidate areas of a lattice, in lattice order, and each cell's area.

    Args:
        lattice: The domain's patch lattice.

    Returns:
        ((area row, area column) of each area holding a cell, sorted; int index into that
        list of each cell).
    """
    ar, ac = lattice.area_rows, lattice.area_cols
    width = int(ac.max()) + 1 if len(ac) else 1
    uniq, key_of = np.unique(ar * width + ac, return_inverse=True)  # sorted: lattice order
    return [(int(f) // width, int(f) % width) for f in uniq.tolist()], key_of


def areas_bounds(
    lattice: PatchLattice, chosen: list[tuple[int, int]]
) -> tuple[tuple[float, float, float, float], ...]:
    """(left, bottom, right, top) of the cells of each chosen area (one pass over the cells).

    Args:
        lattice: The domain's patch lattice.
        chosen: (area row, area column) of each area, in lattice order.

    Returns:
        One bounds per area, same order.
    """
    if not chosen:
        return ()
    ar, ac = lattice.area_rows, lattice.area_cols
    width = int(ac.max()) + 1
    flat = ar * width + ac
    wanted = np.asarray([r * width + c for r, c in chosen])  # sorted: lattice order
    pos = np.minimum(np.searchsorted(wanted, flat), len(wanted) - 1)
    hit = wanted[pos] == flat
    xy = shapely.bounds(lattice.boxes)[hit]
    lo = np.full((len(wanted), 2), np.inf)
    hi = np.full((len(wanted), 2), -np.inf)
    np.minimum.at(lo, pos[hit], xy[:, :2])
    np.maximum.at(hi, pos[hit], xy[:, 2:])
    return tuple(
        (float(a), float(b), float(c), float(d))
        for (a, b), (c, d) in zip(lo.tolist(), hi.tolist(), strict=True)
    )


def _user_cells(
    lattice: PatchLattice, user: gpd.GeoDataFrame, domain: str
) -> tuple[np.ndarray, list[str]]:
    """Cells lying inside a user's areas, and a line per kind of area that lays none.

    Args:
        lattice: The domain's patch lattice.
        user: The areas (:func:`read_areas_layer`), ``attrs["source"]`` naming the file.
        domain: The domain id, for the lines.

    Returns:
        (bool per cell, the lines: areas off the mosaic, areas smaller than a cell).
    """
    source = user.attrs.get("source", "areas layer")
    geoms = shapely.make_valid(user.geometry.to_numpy())
    cell_idx, area_idx = shapely.STRtree(geoms).query(lattice.boxes, predicate="intersects")
    inside = np.zeros(len(lattice.boxes), bool)
    laid = np.zeros(len(geoms), bool)
    if cell_idx.size:
        share = shapely.area(shapely.intersection(lattice.boxes[cell_idx], geoms[area_idx]))
        ok = share >= (1 - _INSIDE) * lattice.size_m**2
        inside[cell_idx[ok]] = True
        laid[area_idx[ok]] = True
    touching = np.zeros(len(geoms), bool)
    touching[area_idx] = True
    lines = []
    fids = user.index.to_numpy()
    for what, sel in (
        ("off the mosaic", ~touching),
        ("on the mosaic but holding no whole patch cell", touching & ~laid),
    ):
        if sel.any():
            ids = ", ".join(str(f) for f in fids[sel][:10]) + (" …" if sel.sum() > 10 else "")
            lines.append(
                f"areas layer {source}: {int(sel.sum())} area(s) {what} of {domain} "
                f"(fid {ids}): no patch laid there"
            )
    return inside, lines


def choose_areas(
    domain: str,
    mosaic: Mosaic,
    lattice: PatchLattice,
    class_areas: np.ndarray,
    cfg: SamplingConfig,
    user: gpd.GeoDataFrame | None = None,
) -> AreaChoice:
    """Choose the areas of a domain where patches are laid, from vectors and footprints only.

    Args:
        domain: The domain id (``D033_2021``), seeding ``random``.
        mosaic: The domain's ortho mosaic (tile footprints; no pixel is read).
        lattice: Its patch lattice.
        class_areas: (cells, 13) area in m² of each merged class in each cell (labels).
        cfg: The ``sampling`` section (``area_strategy``, ``areas_per_domain``, ``seed``,
            ``max_nodata_fraction``).
        user: The user's areas (:func:`read_areas_layer`), or None for the strategy.

    Returns:
        The :class:`AreaChoice`.

    Raises:
        InputError: The user's areas lay no patch on this mosaic (none on it, or none
            holding a whole patch cell), naming the file.
    """
    ar, ac = lattice.area_rows, lattice.area_cols
    keys, key_of = area_keys(lattice)
    if user is not None:
        inside, said = _user_cells(lattice, user, domain)
        if not inside.any():
            raise InputError(
                f"{said[-1] if said else 'areas layer'}; none of its areas holds a whole "
                "patch cell of the mosaic: draw them over it, or unset sampling.areas_layer"
            )
        users = sorted(set(zip(ar[inside].tolist(), ac[inside].tolist(), strict=True)))
        return AreaChoice(
            "layer",
            None,
            cfg.seed,
            len(keys),
            len(keys),
            tuple(users),
            inside,
            False,
            tuple(said),
            str(user.attrs.get("source")),
            areas_bounds(lattice, users),
        )
    tol = cfg.max_nodata_fraction + 1e-9
    area2 = lattice.size_m**2
    cell_ok = (1.0 - footprint_coverage(mosaic, lattice.boxes) <= tol) & (
        1.0 - class_areas.sum(1) / area2 <= tol
    )
    valid_keys = np.zeros(len(keys), bool)
    valid_keys[key_of[cell_ok]] = True
    valid = np.flatnonzero(valid_keys)
    budget = cfg.areas_per_domain
    strategy = cfg.area_strategy
    lines: list[str] = []
    if budget is None or budget >= len(valid):
        if budget is not None and budget > len(valid):
            lines.append(
                f"{domain}: sampling.areas_per_domain {budget} > {len(valid)} valid area(s) of "
                f"{len(keys)} candidate(s): the whole mosaic is sampled"
            )
        cells = np.ones(len(lattice.boxes), bool)
        return AreaChoice(
            strategy,
            budget,
            cfg.seed,
            len(keys),
            len(valid),
            tuple(keys),
            cells,
            True,
            tuple(lines),
            bounds=areas_bounds(lattice, keys),
        )
    if strategy == "random":
        did = DomainId.parse(domain)
        rng = np.random.default_rng([cfg.seed, did.department, did.year])
        picked = np.sort(rng.permutation(valid)[:budget])
    elif strategy == "balanced":
        scores = np.zeros((len(keys), class_areas.shape[1]))
        np.add.at(scores, key_of[cell_ok], class_areas[cell_ok])
        picked = valid[balanced_choice(scores[valid], budget)]
    else:
        picked = valid[:budget]
    taken = np.zeros(len(keys), bool)
    taken[picked] = True
    kept = [keys[i] for i in picked.tolist()]
    return AreaChoice(
        strategy,
        budget,
        cfg.seed,
        len(keys),
        len(valid),
        tuple(kept),
        taken[key_of],
        False,
        bounds=areas_bounds(lattice, kept),
    )


def areas_frame(choice: AreaChoice) -> gpd.GeoDataFrame:
    """The chosen areas as polygons with how they were chosen (the grid's ``areas`` layer).

    Args:
        choice: The areas chosen.

    Returns:
        One row per chosen area, EPSG:2154: ``area`` (``"<row>_<col>"``), ``area_row``,
        ``area_col``, ``strategy``, ``budget`` (0: none), ``seed``, ``candidates``, ``valid``,
        ``layer`` ("" when none).
    """
    n = len(choice.chosen)
    return gpd.GeoDataFrame(
        {
            "area": [f"{r}_{c}" for r, c in choice.chosen],
            "area_row": np.asarray([r for r, _ in choice.chosen], "int32"),
            "area_col": np.asarray([c for _, c in choice.chosen], "int32"),
            "strategy": [choice.strategy] * n,
            "budget": np.full(n, choice.budget or 0, "int32"),
            "seed": np.full(n, choice.seed, "int64"),
            "candidates": np.full(n, choice.candidates, "int32"),
            "valid": np.full(n, choice.valid, "int32"),
            "layer": [choice.layer or ""] * n,
        },
        geometry=[shapely.box(*b) for b in choice.bounds],
        crs="EPSG:2154",
    )


def area_record(areas: gpd.GeoDataFrame) -> dict[str, JSON]:
    """The domain metadata's ``areas`` entry, from the grid's ``areas`` layer.

    Args:
        areas: The layer :func:`areas_frame` wrote (at least one row).

    Returns:
        ``strategy``, ``budget`` (None when none), ``seed``, ``candidates``, ``valid``,
        ``layer`` (None when none) and ``areas``: each chosen area's id and bounds.
    """
    first = areas.iloc[0]
    return {
        "strategy": str(first["strategy"]),
        "budget": int(first["budget"]) or None,
        "seed": int(first["seed"]),
        "candidates": int(first["candidates"]),
        "valid": int(first["valid"]),
        "layer": str(first["layer"]) or None,
        "areas": [
            {"area": str(a), "bounds": [round(float(v), 3) for v in g.bounds]}
            for a, g in zip(areas["area"], areas.geometry, strict=True)
        ],
    }
