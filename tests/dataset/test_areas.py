"""Areas first (dataset/areas.py): areas chosen from vectors and tile footprints, patches
laid inside them only, ids those of the whole grid; on real GeoTIFF tiles and GeoPackages."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from flair_pipeline.config import SamplingConfig, config_from_dict
from flair_pipeline.dataset.areas import read_areas_layer
from flair_pipeline.dataset.build import build_domain_patches
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.sampling import read_patch_grid, sample_patches
from flair_pipeline.errors import InputError
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.synthetic.world import WorldSummary

DOMAIN = "D033_2021"
CELL = 6.4  # 32 px at 0.2 m
#: 6 x 6 cells of 32 px; areas of 2 x 2 cells (12.8 m): 3 x 3 areas
BASE = {"patch_size": 32, "zone_size_m": 12.8}
WATER_AREA = (1, 2)  # the area planted with water (code 5), a rare class next to grass


def _tile(path: Path, x0: float, y1: float, width: int, height: int) -> None:
    rng = np.random.default_rng(len(path.name))
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=4,
        dtype="uint8",
        crs="EPSG:2154",
        nodata=0,
        transform=from_origin(x0, y1, 0.2, 0.2),
    ) as dst:
        dst.write(rng.integers(1, 255, (4, height, width), dtype=np.uint8))


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, gpd.GeoDataFrame]:
    """A mosaic of 3 x 3 areas at (0, 38.4): two area rows in tile a, the bottom row's two
    right areas in tile b, so area (2, 0) has no tile. Grass (code 10) everywhere but the
    right half of area (1, 2), water (code 5)."""
    folder = tmp_path_factory.mktemp("multi")
    _tile(folder / "a.tif", 0.0, 38.4, 192, 128)  # area rows 0-1
    _tile(folder / "b.tif", 12.8, 12.8, 128, 64)  # area row 2, areas 1 and 2
    grass = shapely.box(0, 0, 38.4, 38.4).difference(shapely.box(32.0, 12.8, 38.4, 25.6))
    water = shapely.box(32.0, 12.8, 38.4, 25.6)  # cells (2..3, 5): half of area (1, 2)
    labels = gpd.GeoDataFrame({"code": [10, 5]}, geometry=[grass, water], crs=2154)
    return folder, labels


def _sample(multi: tuple[Path, gpd.GeoDataFrame], user=None, **cfg: object):
    folder, labels = multi
    with Mosaic(folder) as m:
        return sample_patches(DOMAIN, m, labels, SamplingConfig(**{**BASE, **cfg}), user)


def _area(grid: gpd.GeoDataFrame) -> set[tuple[int, int]]:
    return set(zip((grid["row"] // 2).tolist(), (grid["col"] // 2).tolist(), strict=True))


def test_patches_lie_in_the_chosen_areas_with_the_whole_grids_ids(multi) -> None:
    whole, wr = _sample(multi, areas_per_domain=None)
    assert wr.areas.whole and wr.areas.candidates == 9 and wr.areas.valid == 8
    assert wr.candidates == 36 and len(whole) == 32  # area (2, 0): 4 cells without tile
    grid, report = _sample(multi, area_strategy="grid", areas_per_domain=3)
    # the first three valid areas in lattice order: the top row
    assert report.areas.chosen == ((0, 0), (0, 1), (0, 2)) and not report.areas.whole
    assert report.candidates == 12  # only their cells are read: 3 areas x 4 cells
    assert _area(grid) == {(0, 0), (0, 1), (0, 2)}
    same = whole[whole["row"] < 2].reset_index(drop=True)
    assert grid["patch_id"].tolist() == same["patch_id"].tolist()
    assert shapely.equals(grid.geometry.values, same.geometry.values).all()
    # each patch inside its area's box, by coordinates: area (r, c) spans 12.8 m cells
    for row in grid.itertuples():
        x0, y0, x1, y1 = row.geometry.bounds
        ar, ac = row.row // 2, row.col // 2
        assert 12.8 * ac - 1e-9 <= x0 and x1 <= 12.8 * (ac + 1) + 1e-9
        assert 38.4 - 12.8 * (ar + 1) - 1e-9 <= y0 and y1 <= 38.4 - 12.8 * ar + 1e-9
    # a zone is an area: one zone per chosen area
    assert grid.groupby("zone").apply(_area, include_groups=False).map(len).eq(1).all()
    assert grid["zone"].nunique() == 3


def test_random_is_seeded_and_balanced_picks_the_rare_class(multi) -> None:
    valid = {(r, c) for r in range(3) for c in range(3)} - {(2, 0)}
    runs = [
        _sample(multi, area_strategy="random", areas_per_domain=3, seed=s)[1] for s in (0, 0, 1)
    ]
    assert runs[0].areas.chosen == runs[1].areas.chosen  # same seed, same areas
    assert runs[0].areas.chosen != runs[2].areas.chosen  # another seed, others
    for r in runs:
        assert len(r.areas.chosen) == 3 and set(r.areas.chosen) <= valid
    # balanced, by hand (FLAIR shares t: grass 18.24 %, water 4.52 %): a grass area is at
    # L1 distance (1 - .1824) + (1 - .1824) = 1.635 from t; the half-water area at
    # (.5 - .1824) + (.5 - .0452) + (1 - .1824 - .0452) = 1.545: it is chosen first
    grid, report = _sample(multi, area_strategy="balanced", areas_per_domain=1)
    assert report.areas.chosen == (WATER_AREA,) and _area(grid) == {WATER_AREA}
    assert (grid["class_4"] > 0).sum() == 2  # its two water cells (merged class 4: water)


def test_a_budget_above_the_valid_areas_samples_the_whole_mosaic_and_says_so(multi) -> None:
    grid, report = _sample(multi, areas_per_domain=20)
    assert report.areas.whole and len(grid) == 32
    (line,) = report.areas.lines
    assert "areas_per_domain 20 > 8 valid area(s) of 9 candidate(s)" in line


def test_cells_without_tiles_are_rejected_unread(multi, tmp_path: Path) -> None:
    """Area (2, 0) has no tile: its 4 cells are rejected as nodata from the footprints, and
    only the 32 others are read at full resolution. A cell a tile covers in part, beyond
    the tolerance, is rejected unread too; within it, read. Planted bug (the footprint
    share taken as 1 for any cell a tile touches): the counts below fail."""
    whole, report = _sample(multi, areas_per_domain=None)
    assert report.candidates == 36 and report.read == 32
    assert report.rejected["nodata"] == 4 and len(whole) == 32
    # 2 x 2 cells; cell (1, 1) is 3/4 under tile a (24 of 32 px wide): rejected unread
    folder = tmp_path / "part"
    folder.mkdir()
    _tile(folder / "a.tif", 0.0, 12.8, 56, 64)  # cells (0, 0), (1, 0) whole; col 1: 24 px
    _tile(folder / "b.tif", 11.2, 12.8, 8, 32)  # the top of col 1: 8 px more, cell (0, 1)
    labels = gpd.GeoDataFrame({"code": [10]}, geometry=[shapely.box(0, 0, 12.8, 12.8)], crs=2154)
    with Mosaic(folder) as m:
        grid, rep = sample_patches(DOMAIN, m, labels, SamplingConfig(**BASE))
    assert rep.candidates == 4 and rep.read == 3
    assert rep.rejected["nodata"] == 1 and sorted(grid["patch_id"].str[-4:]) == [
        "0000",
        "0000",
        "0001",
    ]


def test_a_users_areas_layer(multi, tmp_path: Path) -> None:
    path = tmp_path / "areas.gpkg"
    inside = shapely.box(12.8, 12.8, 25.6, 25.6).buffer(0.5, join_style="mitre")  # area (1, 1)
    far = shapely.box(5000, 5000, 5100, 5100)  # off the mosaic
    gpd.GeoDataFrame({"name": ["a", "b"]}, geometry=[inside, far], crs=2154).to_file(path)
    grid, report = _sample(multi, read_areas_layer(path))
    assert report.areas.strategy == "layer" and report.areas.chosen == ((1, 1),)
    assert sorted(zip(grid["row"], grid["col"], strict=True)) == [(2, 2), (2, 3), (3, 2), (3, 3)]
    (line,) = report.areas.lines
    assert str(path) in line and "1 area(s) off the mosaic of D033_2021 (fid 2)" in line

    other = tmp_path / "areas_4326.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.box(1, 45, 2, 46)], crs=4326).to_file(other)
    with pytest.raises(InputError, match=r"areas_4326\.gpkg: CRS EPSG:4326, expected EPSG:2154"):
        read_areas_layer(other)

    only_far = tmp_path / "far.gpkg"
    gpd.GeoDataFrame(geometry=[far], crs=2154).to_file(only_far)
    with pytest.raises(InputError, match=r"far\.gpkg: 1 area\(s\) off the mosaic.*none of its"):
        _sample(multi, read_areas_layer(only_far))


def _build(world: WorldSummary, root: Path, **sampling: object) -> Path:
    cfg = config_from_dict({"sampling": {"patch_size": 64, "zone_size_m": 40, **sampling}})
    build_domain_patches(DomainContext.open(DOMAIN, RawLayout(world.out), DatasetLayout(root), cfg))
    return root


def test_a_domain_built_in_chosen_areas_writes_the_whole_builds_bytes(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """3 x 3 areas of 3 x 3 cells on the tiny domain (8 x 8 cells of 64 px); 2 chosen."""
    whole = _build(tiny_world, tmp_path / "whole", areas_per_domain=None)
    some = _build(tiny_world, tmp_path / "some", area_strategy="grid", areas_per_domain=2)
    grid = read_patch_grid(DatasetLayout(some).patch_grid(DOMAIN))
    assert set(zip(grid["row"] // 3, grid["col"] // 3, strict=True)) == {(0, 0), (0, 1)}
    # the chosen areas are recorded: the grid's `areas` layer and the domain's JSON
    layers = [n for n, _ in pyogrio.list_layers(DatasetLayout(some).patch_grid(DOMAIN))]
    assert layers == ["patches", "areas"]
    meta = json.loads(DatasetLayout(some).domain_metadata(DOMAIN).read_text())
    assert meta["areas"]["strategy"] == "grid" and meta["areas"]["budget"] == 2
    assert [a["area"] for a in meta["areas"]["areas"]] == ["0_0", "0_1"]
    assert "areas" not in json.loads(DatasetLayout(whole).domain_metadata(DOMAIN).read_text())
    # every IMG and MSK written is the whole build's file of the same id, byte for byte
    for kind in ("aerial", "labels"):
        files = sorted((some / kind / DOMAIN).rglob("*.tif"))
        assert len(files) == len(grid) == 18
        by_name = {p.name: p for p in (whole / kind / DOMAIN).rglob("*.tif")}
        for f in files:
            assert f.read_bytes() == by_name[f.name].read_bytes(), f.name


def test_the_grid_step_reads_the_areas_layer_named_by_the_config(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """``sampling.areas_layer`` relative to the config's folder, ``{domain}`` replaced: the
    patch_grid step lays the cells inside its polygon, warns of the one off the mosaic and
    records the layer in its report and in the grid's ``areas`` layer."""
    from flair_pipeline.config import resolve_roots
    from flair_pipeline.dataset.domain_steps import sample_domain_grid

    folder = tiny_world.out / "domains" / DOMAIN
    with Mosaic(folder / "ortho") as m:
        x0, _, _, y1 = m.bounds
    (tmp_path / "areas").mkdir()
    path = tmp_path / "areas" / f"{DOMAIN}.gpkg"
    inside = shapely.box(x0, y1 - 25.6, x0 + 25.6, y1)  # the top-left 2 x 2 cells of 12.8 m
    far = shapely.box(x0 - 9000, y1, x0 - 8000, y1 + 1000)
    gpd.GeoDataFrame(geometry=[inside, far], crs=2154).to_file(path)
    cfg = resolve_roots(
        config_from_dict(
            {
                "sampling": {
                    "patch_size": 64,
                    "zone_size_m": 40,
                    "areas_layer": "areas/{domain}.gpkg",
                }
            }
        ),
        tmp_path,
    )
    assert cfg.sampling.areas_layer == str(tmp_path / "areas" / "{domain}.gpkg")
    ctx = DomainContext.open(DOMAIN, RawLayout(tiny_world.out), DatasetLayout(tmp_path / "ds"), cfg)
    report = sample_domain_grid(ctx)
    assert report.areas["strategy"] == "layer" and report.areas["layer"] == str(path)
    assert report.patches == 4 and report.candidates == 4
    (line,) = [w for w in report.warnings if "off the mosaic" in w]
    assert line.startswith(f"areas layer {path}: 1 area(s) off the mosaic of {DOMAIN} (fid 2)")
    areas = gpd.read_file(report.path, layer="areas")
    assert areas["area"].tolist() == ["0_0"] and areas["strategy"].tolist() == ["layer"]
