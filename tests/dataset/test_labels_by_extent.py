"""Labels read by extent (issue 27, "read only what is kept"): a domain's build reads the
label features over its mosaic, a step run alone those over its patches; features far
outside are never loaded, and the masks are those of a read of everything."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
import shapely

from flair_pipeline.config import config_from_dict
from flair_pipeline.dataset import domain_steps
from flair_pipeline.dataset.build import build_domain_patches
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.rasterize import LabelIndex, read_labels
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.synthetic.world import WorldSummary

DOMAIN = "D033_2021"
#: tiny domain: 8 x 8 cells of 64 px (12.8 m); areas of 3 x 3 cells; one area kept: (0, 0)
CFG = {"patch_size": 64, "zone_size_m": 40, "area_strategy": "grid", "areas_per_domain": 1}


def _mosaic_box(folder: Path) -> shapely.Polygon:
    """The union of the ortho tiles' bounds, read with rasterio."""
    bounds = []
    for tif in sorted((folder / "ortho").glob("*.tif")):
        with rasterio.open(tif) as src:
            bounds.append(tuple(src.bounds))
    b = np.asarray(bounds)
    return shapely.box(b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())


def test_features_outside_are_never_loaded_and_masks_equal_a_full_read(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """Appended to the domain's label layer: 50 km away, a self-intersecting polygon (a
    read would repair it: attrs["repaired"] 1) and a feature of code 99 (a read would refuse
    the file); inside the mosaic, in area (2, 2), not kept, a small building (code 1).
    Planted bugs: `DomainContext.labels` without `within` (the build fails on code 99);
    `kept_labels` reading the mosaic's extent (8 features read, not those of the patches)."""
    pristine = tiny_world.out / "domains" / DOMAIN
    folder = tmp_path / "raw" / "domains" / DOMAIN
    shutil.copytree(pristine, folder)
    path = folder / "labels.gpkg"
    mosaic = _mosaic_box(folder)
    _, _, x1, y1 = mosaic.bounds
    far = x1 + 50_000.0
    bowtie = shapely.Polygon([(far, y1), (far + 10, y1 + 10), (far + 10, y1), (far, y1 + 10)])
    assert not bowtie.is_valid
    building = shapely.box(x1 - 10, mosaic.bounds[1] + 2, x1 - 2, mosaic.bounds[1] + 10)
    extra = gpd.GeoDataFrame(
        {"code": [10, 99, 1]},
        geometry=[bowtie, shapely.box(far, y1 - 30, far + 20, y1 - 10), building],
        crs=2154,
    )
    extra.to_file(path, layer="labels", mode="a", engine="pyogrio")
    everything = gpd.read_file(path)  # geopandas, no check: what the file holds
    assert len(everything) == 10

    raw, dataset = RawLayout(tmp_path / "raw"), DatasetLayout(tmp_path / "dataset")
    cfg = config_from_dict({"sampling": CFG})
    ctx = DomainContext.open(DOMAIN, raw, dataset, cfg)
    report = build_domain_patches(ctx)  # reading code 99 would refuse the file
    assert report.grid.areas["areas"] == ["0_0"] and report.masks.written == 9
    on_mosaic = int(everything.intersects(mosaic).sum())
    assert on_mosaic == 8  # the 7 of the world and the building
    assert ctx.labels.attrs["features_read"] == on_mosaic
    assert ctx.labels.attrs["repaired"] == 0  # the bowtie was never read

    # every MSK equals the mask of a read of everything (the pristine file, whole)
    index = LabelIndex(read_labels(pristine / "labels.gpkg"))
    msks = sorted((tmp_path / "dataset" / "labels" / DOMAIN).rglob("MSK_*.tif"))
    assert len(msks) == 9
    for msk in msks:
        with rasterio.open(msk) as src:
            want = index.mask(src.transform, src.shape, src.crs)
            assert np.array_equal(src.read(1), want), msk.name
    before = {p.name: p.read_bytes() for p in msks}

    # the label_masks step alone (its own context) reads the features its patches touch
    alone = DomainContext.open(DOMAIN, raw, dataset, cfg)
    domain_steps.build_domain_masks(alone)
    grid = gpd.read_file(dataset.patch_grid(DOMAIN), layer="patches")
    on_patches = int(everything.intersects(grid.geometry.union_all()).sum())
    # fewer than over the mosaic: the building (area (2, 2), not kept) and world polygons
    # away from area (0, 0)
    assert not building.intersects(grid.geometry.union_all()) and on_patches < on_mosaic - 1
    assert "labels" not in alone.__dict__  # the mosaic-wide read never happened
    assert alone.kept_labels.attrs["features_read"] == on_patches
    after = {p.name: p.read_bytes() for p in (dataset.root / "labels" / DOMAIN).rglob("MSK_*")}
    assert after == before


def test_an_extent_in_lambert93_reads_a_layer_in_another_crs(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """The extent is reprojected to the layer's CRS (EPSG:3946 here) before the read: the
    same features come back as from the Lambert-93 file."""
    folder = tiny_world.out / "domains" / DOMAIN
    labels = pyogrio.read_dataframe(folder / "labels.gpkg", fid_as_index=True)
    labels.to_crs("EPSG:3946").to_file(tmp_path / "cc46.gpkg", driver="GPKG")
    x0, y0, _, _ = labels.total_bounds
    corner = shapely.box(x0, y0, x0 + 20, y0 + 20)
    want = labels[labels.intersects(corner)]  # geopandas on the Lambert-93 file
    assert 0 < len(want) < len(labels)
    got = read_labels(tmp_path / "cc46.gpkg", within=corner)
    assert got.attrs["features_read"] == len(want)
    assert sorted(got.index) == sorted(want.index)  # the same fids (copied in order)
