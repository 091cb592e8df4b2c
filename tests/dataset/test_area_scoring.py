"""Area scoring streamed from the label layer one block of areas at a time
(dataset/area_scoring.py): the class areas of every cell equal a plain per-cell loop and,
bit for bit, a whole-layer scoring; the areas chosen are the same; a block holds a part of
the layer. On a real GeoTIFF tile and a real GeoPackage."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from flair_pipeline.config import SamplingConfig, config_from_dict
from flair_pipeline.dataset.area_scoring import cell_class_areas, streamed_class_areas
from flair_pipeline.dataset.areas import PatchLattice
from flair_pipeline.dataset.build import build_domain_patches
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.rasterize import read_labels
from flair_pipeline.dataset.sampling import sample_patches
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.nomenclature import merge_to_13
from flair_pipeline.synthetic.world import WorldSummary

DOMAIN = "D033_2021"
#: 16 x 16 cells of 32 px (6.4 m); areas of 2 x 2 cells: 8 x 8 areas on 102.4 m
CFG = {"patch_size": 32, "zone_size_m": 12.8}
SIDE = 102.4


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One tile over the whole mosaic; labels: grass under everything, then 120 random
    rectangles of 8 classes, many crossing area and block edges (some the whole mosaic)."""
    folder = tmp_path_factory.mktemp("scoring")
    with rasterio.open(
        folder / "tile.tif",
        "w",
        driver="GTiff",
        width=512,
        height=512,
        count=4,
        dtype="uint8",
        crs="EPSG:2154",
        nodata=0,
        transform=from_origin(0.0, SIDE, 0.2, 0.2),
    ) as dst:
        dst.write(np.full((4, 512, 512), 7, np.uint8))
    rng = np.random.default_rng(27)
    x0, y0 = rng.uniform(-5, SIDE, (2, 120))
    w, h = rng.uniform(0.5, 40, (2, 120))
    codes = [10, *rng.choice([1, 2, 5, 6, 7, 8, 11, 18], 120).tolist()]
    geoms = [shapely.box(0, 0, SIDE, SIDE), *list(shapely.box(x0, y0, x0 + w, y0 + h))]
    path = folder / "labels.gpkg"
    gpd.GeoDataFrame({"code": codes}, geometry=geoms, crs=2154).to_file(path, layer="labels")
    return folder, path


def _lattice(folder: Path) -> PatchLattice:
    with Mosaic(folder) as m:
        return PatchLattice.of(m, SamplingConfig(**CFG))


def test_streamed_scoring_equals_a_per_cell_loop_and_the_whole_layer(world) -> None:
    folder, path = world
    lattice = _lattice(folder)
    assert len(lattice.boxes) == 256 and lattice.cells_per_area == 2
    labels = read_labels(path)
    # independent: one cell at a time, one polygon at a time, plain shapely
    codes = merge_to_13(labels["code"].to_numpy(), source="test")
    expected = np.zeros((256, 13))
    for i, cell in enumerate(lattice.boxes):
        for code, geom in zip(codes, labels.geometry, strict=True):
            expected[i, code] += cell.intersection(geom).area
    assert (expected.sum(1) >= 6.4 * 6.4 - 1e-9).all()  # grass under every cell (+ overlaps)
    whole = cell_class_areas(labels, lattice.boxes)
    np.testing.assert_allclose(whole, expected, rtol=1e-12, atol=1e-9)
    for block in (1, 3, 100):  # 64 blocks, 9 (3 x 3 areas, uneven at the edge), one block
        streamed, stats = streamed_class_areas(lattice, path, block_areas=block)
        np.testing.assert_array_equal(streamed, whole)  # bit for bit: summed in fid order
        assert stats.blocks == {1: 64, 3: 9, 100: 1}[block]
        if block < 100:  # edge polygons are read by each block they meet, held one block
            assert stats.features_read > len(labels) > stats.peak_features


def test_streamed_scoring_chooses_the_same_areas_and_patches(world) -> None:
    folder, path = world
    labels = read_labels(path)
    scores, _ = streamed_class_areas(_lattice(folder), path, block_areas=2)
    for strategy in ("balanced", "random", "grid"):
        cfg = SamplingConfig(**CFG, area_strategy=strategy, areas_per_domain=5)
        with Mosaic(folder) as m:
            old, old_report = sample_patches(DOMAIN, m, labels, cfg)
            new, new_report = sample_patches(DOMAIN, m, None, cfg, class_areas=scores)
        assert new_report.areas.chosen == old_report.areas.chosen
        assert len(new_report.areas.chosen) == 5
        assert new.to_wkb().equals(old.to_wkb())  # same patches, ids, zones, class shares


def test_a_whole_build_never_holds_the_mosaics_labels_and_writes_the_same_bytes(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """The tiny domain (8 x 8 cells of 64 px) with zones of one cell: blocks of 4 x 4 zones,
    4 blocks. A build whose context read the labels over the mosaic first (the whole-extent
    path) and a streamed one write the same files, byte for byte, and count the same
    polygons; the streamed build never keeps the mosaic's labels."""
    cfg = config_from_dict({"sampling": {"patch_size": 64, "zone_size_m": 12.8}})
    raw = RawLayout(tiny_world.out)
    old = DomainContext.open(DOMAIN, raw, DatasetLayout(tmp_path / "old"), cfg)
    expected = len(old.labels)  # read over the mosaic's extent, kept by the context
    old_report = build_domain_patches(old)
    new = DomainContext.open(DOMAIN, raw, DatasetLayout(tmp_path / "new"), cfg)
    new_report = build_domain_patches(new)
    assert "labels" not in new.__dict__  # streamed: checked and scored block by block
    assert new_report.sources.label_polygons == old_report.sources.label_polygons == expected
    assert new_report.grid.areas == old_report.grid.areas
    old_files = [p for p in (tmp_path / "old").rglob("*") if p.is_file()]
    files = sorted(p.relative_to(tmp_path / "old") for p in old_files if ".locks" not in p.parts)
    assert len([f for f in files if f.suffix == ".tif"]) == 2 * new_report.grid.patches > 0
    for rel in files:
        assert (tmp_path / "new" / rel).read_bytes() == (tmp_path / "old" / rel).read_bytes(), rel
