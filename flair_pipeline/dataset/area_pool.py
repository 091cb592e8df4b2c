"""Areas of a département-size delivery: score a bounded pool of candidate areas, not the département.

Choosing areas on a small mosaic (:func:`~flair_pipeline.dataset.areas.choose_areas`)
scores every cell from the labels. On a département's delivery (thousands of dalles,
about 15 million OCS GE polygons over 6,000 km²) that is every polygon read, repaired and
intersected before one area is chosen. Here, when some ortho product has more than
:data:`~flair_pipeline.dataset.coarse_coverage.AUTO_OVERVIEW_TILES` tiles and a budget
(``sampling.areas_per_domain``) is set, the areas are taken in the strategy's order and
scored a batch at a time:

1. the candidate areas with at least one cell the tiles' footprints cover (no pixel, no
   label read) are ordered: lattice order for ``grid``; a permutation seeded by
   (``sampling.seed``, département, year) for ``random`` and ``balanced``;
2. the next :data:`POOL_FACTOR` × budget of them are scored exactly from the labels read
   by their extent (:func:`~flair_pipeline.dataset.area_scoring.streamed_class_areas`,
   the same floats as a whole-layer scoring), and an area is valid as on a small mosaic
   (one cell covered by tiles and labels within ``sampling.max_nodata_fraction``);
3. batches are scored until the budget's valid areas are found (or none are left);
   ``grid`` and ``random`` keep the first valid ones in their order, ``balanced`` chooses
   among the valid areas scored (:func:`~flair_pipeline.dataset.areas.balanced_choice`).

So the labels read follow the budget (about 8 × 18 areas of 0.9 km²), not the
département. ``balanced`` balances within a random pool of eight times the areas it
keeps, not among every area of the département: the pool, its factor and the areas
scored are a decision line of the grid step and in the grid's metadata (``scored``).
With fewer valid areas than the budget, every valid area found is kept and said.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from flair_pipeline.config import SamplingConfig
from flair_pipeline.dataset.areas import (
    AreaChoice,
    PatchLattice,
    area_keys,
    areas_bounds,
    balanced_choice,
    footprint_coverage,
)
from flair_pipeline.dataset.coarse_coverage import AUTO_OVERVIEW_TILES, largest_product
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.domains import DomainId
from flair_pipeline.nomenclature import N_CLASSES_MERGED

#: Areas scored per area wanted, a batch: 8 × 18 areas ≈ 130 km² of labels read for a
#: département of 6,000 km²; the balanced choice picks among the valid ones of the pool.
POOL_FACTOR = 8

#: Scores the given cells: (cells, 13) class areas in m² of a sub-lattice.
CellScorer = Callable[[PatchLattice], np.ndarray]


def pooled(mosaic: Mosaic, lattice: PatchLattice, cfg: SamplingConfig) -> bool:
    """Whether a domain's areas are chosen from a scored pool (a département-size delivery).

    Args:
        mosaic: The domain's ortho mosaic (its products' tile counts).
        lattice: Its patch lattice.
        cfg: The ``sampling`` section (``areas_per_domain``, ``areas_layer``).

    Returns:
        True when some product has more than ``AUTO_OVERVIEW_TILES`` tiles, a budget is
        set, no areas layer is given and the candidate areas outnumber one pool.
    """
    budget = cfg.areas_per_domain
    if budget is None or cfg.areas_layer is not None:
        return False
    if largest_product(mosaic)[1] <= AUTO_OVERVIEW_TILES:
        return False
    return len(area_keys(lattice)[0]) > POOL_FACTOR * budget


def sub_lattice(lattice: PatchLattice, cells: np.ndarray) -> PatchLattice:
    """The cells `cells` of `lattice`, as a lattice of their own (same rows, columns, areas).

    Args:
        lattice: A patch lattice.
        cells: Indices of its cells, ascending.

    Returns:
        The :class:`PatchLattice` of those cells.
    """
    return PatchLattice(
        lattice.rows[cells],
        lattice.cols[cells],
        lattice.boxes[cells],
        lattice.size_m,
        lattice.cells_per_area,
    )


def choose_pooled(
    domain: str,
    mosaic: Mosaic,
    lattice: PatchLattice,
    score: CellScorer,
    cfg: SamplingConfig,
) -> tuple[AreaChoice, np.ndarray]:
    """Choose a département's areas from batches of scored areas (module doc).

    Args:
        domain: The domain id (``D049_2022``), seeding the order.
        mosaic: The domain's ortho mosaic (tile footprints; no pixel is read).
        lattice: Its patch lattice.
        score: Scores a sub-lattice's cells from the labels (read by their extent).
        cfg: The ``sampling`` section (``area_strategy``, ``areas_per_domain``, ``seed``,
            ``max_nodata_fraction``); ``areas_per_domain`` must be set.

    Returns:
        (the :class:`~flair_pipeline.dataset.areas.AreaChoice`, with ``scored`` and a
        decision line; float64 (lattice cells, 13) class areas in m², exact for the cells
        of the areas scored, 0 elsewhere).

    Raises:
        ValueError: ``sampling.areas_per_domain`` is None (use ``choose_areas``).
    """
    budget = cfg.areas_per_domain
    if budget is None:
        raise ValueError("choose_pooled needs sampling.areas_per_domain")
    keys, key_of = area_keys(lattice)
    tol = cfg.max_nodata_fraction + 1e-9
    area2 = lattice.size_m**2
    foot_ok = 1.0 - footprint_coverage(mosaic, lattice.boxes) <= tol
    has_foot = np.zeros(len(keys), bool)
    has_foot[key_of[foot_ok]] = True
    candidates = np.flatnonzero(has_foot)
    strategy = cfg.area_strategy
    if strategy == "grid":
        order = candidates
    else:
        did = DomainId.parse(domain)
        order = np.random.default_rng([cfg.seed, did.department, did.year]).permutation(candidates)
    class_areas = np.zeros((len(lattice.boxes), N_CLASSES_MERGED))
    cell_ok = np.zeros(len(lattice.boxes), bool)
    valid: list[int] = []
    scored = 0
    batch = POOL_FACTOR * budget
    while scored < len(order) and len(valid) < budget:
        take = order[scored : scored + batch]
        scored += len(take)
        cells = np.flatnonzero(np.isin(key_of, take))
        class_areas[cells] = score(sub_lattice(lattice, cells))
        ok = foot_ok[cells] & (1.0 - class_areas[cells].sum(1) / area2 <= tol)
        cell_ok[cells] = ok
        good = set(key_of[cells[ok]].tolist())
        valid += [int(a) for a in take.tolist() if a in good]  # in the strategy's order
    product, tiles = largest_product(mosaic)
    lines = [
        f"{domain}: département-size delivery (ortho product {product} "
        f"has {tiles} tiles > {AUTO_OVERVIEW_TILES}): {scored} of "
        f"{len(keys)} candidate areas scored from the labels read by their extent, in "
        f"batches of {POOL_FACTOR} x sampling.areas_per_domain ({strategy} order"
        f"{'' if strategy == 'grid' else ', seeded'}), {len(valid)} valid"
    ]
    if len(valid) <= budget:
        picked = np.asarray(valid, int)
        if len(valid) < budget:
            lines.append(
                f"{domain}: sampling.areas_per_domain {budget} > {len(valid)} valid area(s) "
                f"of {len(keys)} candidate(s): the {len(valid)} valid area(s) are built"
            )
    elif strategy == "balanced":
        pool = np.asarray(valid, int)
        per_area = np.zeros((len(keys), class_areas.shape[1]))
        np.add.at(per_area, key_of[cell_ok], class_areas[cell_ok])  # as choose_areas
        picked = pool[balanced_choice(per_area[pool], budget)]
    else:
        picked = np.asarray(valid[:budget], int)
    picked = np.sort(picked)  # lattice order
    kept = [keys[i] for i in picked.tolist()]
    taken = np.zeros(len(keys), bool)
    taken[picked] = True
    choice = AreaChoice(
        strategy,
        budget,
        cfg.seed,
        len(keys),
        len(valid),
        tuple(kept),
        taken[key_of],
        False,
        tuple(lines),
        bounds=areas_bounds(lattice, kept),
        scored=scored,
    )
    return choice, class_areas
