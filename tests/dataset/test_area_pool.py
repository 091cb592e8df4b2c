"""Areas of a département-size delivery from a bounded pool (dataset/area_pool.py) and its
label codes checked without geometries (dataset/label_attributes.py).

The world is the ``departement`` scenario at 11 x 11 dalles (121 a product: above the
100 tiles that mark a département's delivery), dalles of 250 px (50 m), areas of one dalle
(5 x 5 cells of 10 m). Expected values come from a plain shapely loop and from the seeded
permutation recomputed here, never from the code under test.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from flair_pipeline.config import SamplingConfig, config_from_dict
from flair_pipeline.dataset.area_pool import POOL_FACTOR, choose_pooled, pooled
from flair_pipeline.dataset.areas import PatchLattice
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.domain_steps import sample_domain_grid
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.sources_record import record_domain_sources
from flair_pipeline.domains import DomainId
from flair_pipeline.errors import InputError
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.nomenclature import merge_to_13
from flair_pipeline.sources.domain_spec import resolve
from flair_pipeline.synthetic.departement import generate_departement

DOMAIN = "D049_2022"
N, PX = 11, 250  # 121 dalles of 50 m a product
SCALE = (N * PX * 0.2 / 78_000) ** 2
SAMPLING = {"patch_size": 50, "zone_size_m": 50.0, "areas_per_domain": 2}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("dept-pool")
    s = generate_departement(raw, SCALE, 0, dalle_px=PX, archetypes=3, s2_dates=1)
    assert s.plan.n == N
    return raw


def _labels(raw: Path) -> Path:
    return raw / "domains" / DOMAIN / "labels.gpkg"


def _by_hand(labels: Path, boxes: np.ndarray) -> np.ndarray:
    """(boxes, 13) class areas: every polygon against every box, a plain loop."""
    gdf = pyogrio.read_dataframe(labels)
    merged = merge_to_13(gdf["code"].to_numpy())
    out = np.zeros((len(boxes), 13))
    geoms = gdf.geometry.to_numpy()
    for i, b in enumerate(boxes):
        near = shapely.intersects(geoms, b)
        for g, k in zip(geoms[near], merged[near], strict=True):
            out[i, k] += shapely.area(shapely.intersection(g, b))
    return out


def _scorer(raw: Path, asked: list[int]) -> Callable[[PatchLattice], np.ndarray]:
    def score(sub: PatchLattice) -> np.ndarray:
        asked.append(len(sub.boxes))
        return _by_hand(_labels(raw), sub.boxes)

    return score


@pytest.mark.parametrize("strategy", ["balanced", "grid"])
def test_a_pool_of_areas_is_scored_not_the_departement(world: Path, strategy: str) -> None:
    """121 candidate areas, budget 2: one batch of 8 x 2 = 16 areas is scored (16 x 25
    cells), in the strategy's order: the seeded permutation for balanced, lattice order for
    grid; the chosen areas lie in it and their class areas are the shapely loop's.
    Planted: the permutation unseeded (other areas scored); batches of the budget alone."""
    cfg = SamplingConfig(**SAMPLING, area_strategy=strategy)
    asked: list[int] = []
    with Mosaic(resolve(world / "domains" / DOMAIN).ortho, resolution=0.2) as m:
        lattice = PatchLattice.of(m, cfg)
        assert pooled(m, lattice, cfg)
        choice, scores = choose_pooled(DOMAIN, m, lattice, _scorer(world, asked), cfg)
    assert choice.candidates == N * N and choice.scored == POOL_FACTOR * 2 == 16
    assert asked == [16 * 25] and len(choice.chosen) == 2
    if strategy == "grid":
        pool = list(range(16))
    else:
        did = DomainId.parse(DOMAIN)
        pool = np.random.default_rng([0, did.department, did.year]).permutation(N * N)[:16]
    pool_keys = {(int(a) // N, int(a) % N) for a in pool}
    area_of = list(zip((lattice.rows // 5).tolist(), (lattice.cols // 5).tolist(), strict=True))
    scored_cells = np.flatnonzero(scores.sum(1) > 0)
    assert {area_of[c] for c in scored_cells} == pool_keys
    assert set(choice.chosen) <= pool_keys
    if strategy == "grid":
        assert choice.chosen == ((0, 0), (0, 1))
    chosen = np.flatnonzero(choice.cells)
    np.testing.assert_allclose(scores[chosen], _by_hand(_labels(world), lattice.boxes[chosen]))
    assert any("16 of 121 candidate areas scored" in line for line in choice.lines)


def _poisoned(world: Path, tmp_path: Path, areas: list[tuple[int, int]]) -> Path:
    """A copy of the world whose labels gain a code-99 square in the middle of each area."""
    raw = tmp_path / "raw"
    shutil.copytree(world, raw)
    plan_left, _, _, plan_top = pyogrio.read_info(_labels(raw))["total_bounds"]
    rows = []
    for r, c in areas:
        x, y = plan_left + c * 50 + 20, plan_top - r * 50 - 30
        rows.append(shapely.box(x, y, x + 10, y + 10))
    bad = gpd.GeoDataFrame({"code": [99] * len(rows)}, geometry=rows, crs="EPSG:2154")
    pyogrio.write_dataframe(bad, _labels(raw), layer="labels", append=True)
    return raw


def _ctx(raw: Path, tmp_path: Path) -> DomainContext:
    cfg = config_from_dict({"sampling": {**SAMPLING, "area_strategy": "balanced"}})
    return DomainContext.open(DOMAIN, RawLayout(raw), DatasetLayout(tmp_path / "ds"), cfg)


def test_labels_outside_the_pool_are_never_read(world: Path, tmp_path: Path) -> None:
    """A code-99 polygon in every area outside the pool: the grid step, which reads the
    labels by the pool's extent, never meets one and chooses the clean world's areas.
    Planted: every area scored (the streamed scoring of the whole lattice): refused."""
    did = DomainId.parse(DOMAIN)
    pool = set(np.random.default_rng([0, did.department, did.year]).permutation(N * N)[:16])
    outside = [(a // N, a % N) for a in range(N * N) if a not in pool]
    clean = sample_domain_grid(_ctx(world, tmp_path / "clean"))
    raw = _poisoned(world, tmp_path, outside)
    report = sample_domain_grid(_ctx(raw, tmp_path))
    assert report.areas == clean.areas and report.areas["scored"] == 16
    assert report.patches == clean.patches == 2 * 25


def test_a_departements_label_codes_are_checked_without_geometries(
    world: Path, tmp_path: Path
) -> None:
    """The sources step counts the features over the mosaic (here all of them: pyogrio's
    count) with repaired geometries not checked (None); a code 99 anywhere is still refused
    in one line naming its fid. Planted: the fast check accepting any code."""
    report = record_domain_sources(_ctx(world, tmp_path / "clean"))
    assert report.label_polygons == pyogrio.read_info(_labels(world))["features"]
    assert report.repaired_geometries is None
    raw = _poisoned(world, tmp_path, [(N - 1, N - 1)])
    fid = pyogrio.read_info(_labels(raw))["features"]  # the last one appended
    with pytest.raises(InputError, match=rf"`code` must be an integer 1..19; 1 feature.*{fid}"):
        record_domain_sources(_ctx(raw, tmp_path))
