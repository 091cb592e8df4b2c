"""Real Dagster runs of the dataset assets on the tiny world (tmp instance, real files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import rasterio
import yaml

from flair_pipeline.definitions import defs
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.layout import DatasetLayout
from flair_pipeline.orchestration.run import materialize
from flair_pipeline.synthetic.world import WorldSummary

PATCH = 64
DATASET = "group:sources or group:dataset"


def _params(tmp: Path, raw: Path, dataset: Path, **sampling) -> PipelineConfigResource:
    p = tmp / "params.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": str(raw), "dataset": str(dataset)},
                "sampling": {"patch_size": PATCH, **sampling},
            }
        )
    )
    return PipelineConfigResource(config_path=str(p))


@pytest.fixture(scope="module")
def built(tiny_world: WorldSummary, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("built")
    flair = _params(tmp, tiny_world.out, tmp / "dataset")
    with dg.instance_for_test() as instance:
        summary = materialize(DATASET, (), flair, instance=instance)
        yield tmp / "dataset", instance, summary, flair


def test_definitions_load() -> None:
    graph = defs.resolve_asset_graph()
    names = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "domain_sources",
        "patch_grid",
        "aerial_patches",
        "label_masks",
        "dataset_metadata",
        "split_assignment",
    } <= names
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and node.group_name in (
            "sources",
            "dataset",
            "sentinel2",
            "sentinel1",
            "training",
            "evaluation",
        )


def test_every_domain_is_built_with_matching_img_msk(built, tiny_world: WorldSummary) -> None:
    root, instance, summary, _ = built
    assert all(ok for _, _, ok in summary.runs)
    assert set(instance.get_dynamic_partitions("domains")) == {d.domain for d in tiny_world.domains}
    imgs = sorted((root / "aerial").rglob("IMG_*.tif"))
    msks = sorted((root / "labels").rglob("MSK_*.tif"))
    assert len(imgs) == len(msks) == 3 * (512 // PATCH) ** 2
    for img in imgs:
        msk = Path(str(img).replace("/aerial/", "/labels/").replace("/img/IMG_", "/msk/MSK_"))
        with rasterio.open(img) as a, rasterio.open(msk) as b:
            assert (a.count, a.dtypes[0], a.crs.to_epsg()) == (5, "uint8", 2154)
            assert a.descriptions == ("red", "green", "blue", "nir", "elevation")
            assert a.res == pytest.approx((0.2, 0.2))
            assert (a.transform, a.shape, a.crs) == (b.transform, b.shape, b.crs)
            m = b.read(1)
            assert m.min() >= 1 and m.max() <= 19


def test_layout_matches_flair_release(built) -> None:
    root = built[0]
    img = next((root / "aerial").rglob("IMG_*.tif"))
    domain, zone, kind = img.parts[-4], img.parts[-3], img.parts[-2]
    assert kind == "img" and domain.startswith("D0") and zone.startswith("Z")
    assert (root / "metadata" / "splits.csv").is_file()


def test_masks_agree_with_labels_and_image_with_sources(built, tiny_world: WorldSummary) -> None:
    from flair_pipeline.dataset.rasterize import LabelIndex

    root = built[0]
    img = sorted((root / "aerial" / "D033_2021").rglob("IMG_*.tif"))[10]
    msk = Path(str(img).replace("/aerial/", "/labels/").replace("/img/IMG_", "/msk/MSK_"))
    raw = tiny_world.out / "domains" / "D033_2021"
    with rasterio.open(img) as a, rasterio.open(msk) as b:
        bounds, transform, rgbn, elev, m = a.bounds, a.transform, a.read()[:4], a.read(5), b.read(1)
    index = LabelIndex.from_file(raw / "labels.gpkg")
    assert np.array_equal(m, index.mask(transform, m.shape))
    # the RGBN bands are the mosaic's pixels, unchanged
    from flair_pipeline.dataset.mosaic import Mosaic

    with Mosaic(raw / "ortho") as mosaic:
        px, _ = mosaic.read(tuple(bounds))
    assert np.array_equal(rgbn, px)
    # elevation = (DSM - DTM) * 5, clipped: check at the patch centre against the DSM/DTM
    with rasterio.open(raw / "dsm.tif") as s, rasterio.open(raw / "dtm.tif") as t:
        x, y = (bounds.left + bounds.right) / 2, (bounds.bottom + bounds.top) / 2
        h = next(s.sample([(x, y)]))[0] - next(t.sample([(x, y)]))[0]
    centre = elev[PATCH // 2 - 3 : PATCH // 2 + 3, PATCH // 2 - 3 : PATCH // 2 + 3]
    assert abs(float(np.median(centre)) - min(255.0, h * 5)) < 12


def test_splits_and_metadata(built, tiny_world: WorldSummary) -> None:
    root = built[0]
    layout = DatasetLayout(root)
    rows = layout.splits.read_text().splitlines()
    assert rows[0] == "domain,split,rule"
    assert {
        "D033_2021,train,official",
        "D004_2021,validation,official",
        "D036_2020,test,official",
    } == set(rows[1:])
    meta = json.loads(layout.aerial_metadata.read_text())
    assert len(meta) == 3 * (512 // PATCH) ** 2
    entry = next(iter(meta.values()))
    for k in (
        "domain",
        "zone",
        "patch_centroid_x",
        "patch_centroid_y",
        "patch_centroid_z",
        "camera",
        "date",
        "time",
    ):
        assert k in entry


def test_metadata_and_checks_in_the_instance(built) -> None:
    _, instance, _, _ = built
    ev = instance.get_latest_materialization_event(dg.AssetKey("dataset_metadata"))
    md = ev.asset_materialization.metadata
    assert md["patches"].value == (512 // PATCH) ** 2
    assert "data:image/png;base64," in md["class_chart"].value
    assert "data:image/png;base64," in md["preview"].value
    assert "| class" in md["class_shares"].value
    for asset, check in (
        ("patch_grid", "has_patches"),
        ("aerial_patches", "img_format"),
        ("label_masks", "msk_codes"),
        ("dataset_metadata", "img_msk_pairs"),
        ("split_assignment", "no_split_leakage"),
    ):
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(asset), check), limit=5
        )
        assert records and all(r.status.value == "SUCCEEDED" for r in records), (asset, check)


def _digest(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.tif"))}


def test_build_order_does_not_change_ids_or_bytes(
    built, tiny_world: WorldSummary, tmp_path: Path
) -> None:
    flair = _params(tmp_path, tiny_world.out, tmp_path / "dataset")
    with dg.instance_for_test() as instance:
        materialize(DATASET, ("D036_2020", "D004_2021", "D033_2021"), flair, instance=instance)
    assert _digest(tmp_path / "dataset") == _digest(built[0])


def _copy_domain(tiny_world: WorldSummary, dst: Path, domain: str = "D033_2021") -> Path:
    shutil.copytree(tiny_world.out / "domains" / domain, dst / "domains" / domain)
    return dst / "domains" / domain


def test_corrupt_tile_skips_only_its_patches(tiny_world: WorldSummary, tmp_path: Path) -> None:
    folder = _copy_domain(tiny_world, tmp_path / "raw")
    tile = sorted((folder / "ortho").glob("*.tif"))[0]
    data = tile.read_bytes()
    tile.write_bytes(data[: len(data) // 2])  # an interrupted download
    flair = _params(tmp_path, tmp_path / "raw", tmp_path / "dataset")
    with dg.instance_for_test() as instance:
        materialize(DATASET, ("D033_2021",), flair, instance=instance)
        ev = instance.get_latest_materialization_event(dg.AssetKey("patch_grid"))
        md = ev.asset_materialization.metadata
    skipped = md["skipped_patches"].value
    assert skipped and all(tile.name in s for s in skipped)
    built = len(list((tmp_path / "dataset" / "aerial").rglob("IMG_*.tif")))
    assert 0 < built == (512 // PATCH) ** 2 - len(skipped)


def test_bad_label_codes_are_listed(tiny_world: WorldSummary, tmp_path: Path) -> None:
    import geopandas as gpd

    folder = _copy_domain(tiny_world, tmp_path / "raw")
    gdf = gpd.read_file(folder / "labels.gpkg")
    gdf.loc[2, "code"] = 0
    gdf.loc[5, "code"] = 42
    gdf.to_file(folder / "labels.gpkg", layer="labels", driver="GPKG")
    flair = _params(tmp_path, tmp_path / "raw", tmp_path / "dataset")
    with dg.instance_for_test() as instance, pytest.raises(FlairPipelineError) as e:
        materialize("key:domain_sources", ("D033_2021",), flair, instance=instance)
    msg = str(e.value)
    assert "labels.gpkg" in msg and "code 0" in msg and "code 42" in msg


def test_missing_input_is_named(tiny_world: WorldSummary, tmp_path: Path) -> None:
    folder = _copy_domain(tiny_world, tmp_path / "raw")
    (folder / "dsm.tif").unlink()
    flair = _params(tmp_path, tmp_path / "raw", tmp_path / "dataset")
    with dg.instance_for_test() as instance, pytest.raises(FlairPipelineError, match=r"dsm\.tif"):
        materialize(DATASET, ("D033_2021",), flair, instance=instance)
    assert not (tmp_path / "dataset" / "aerial").exists()


def test_unknown_partition_id_is_rejected(tiny_world: WorldSummary, tmp_path: Path) -> None:
    flair = _params(tmp_path, tiny_world.out, tmp_path / "dataset")
    with (
        dg.instance_for_test() as instance,
        pytest.raises(FlairPipelineError, match="not a domain id"),
    ):
        materialize(DATASET, ("france",), flair, instance=instance)


def test_crop_labels_from_the_synthetic_rpg(built, tiny_world: WorldSummary) -> None:
    """Every patch has a CROP on its MSK's grid; level 1 = parcels by pixel centre (issue 25).

    Expected pixels: shapely's contains_xy of each patch's pixel centres in the synthetic
    RPG's parcels, through the synthetic table read from its CSV; independent of the
    rasterizer. The check crop_codes passed in the instance.
    """
    import geopandas as gpd
    import pandas as pd
    import shapely

    root, instance, _, _ = built
    raw = tiny_world.out / "rpg"
    table = pd.read_csv(raw / "lpis_level1.csv", dtype={"code_cultu": str})
    cls = dict(zip(table["code_cultu"], table["class"], strict=True))
    crops = sorted((root / "crop_labels").rglob("CROP_*.tif"))
    assert len(crops) == 3 * (512 // PATCH) ** 2
    seen: set[int] = set()
    for crop in crops[:: len(crops) // 6]:  # 6 patches over the 3 domains
        domain = crop.relative_to(root / "crop_labels").parts[0]
        parcels = gpd.read_file(raw / f"{domain}.gpkg")
        msk = Path(
            str(crop).replace("/crop_labels/", "/labels/").replace("/crop/CROP_", "/msk/MSK_")
        )
        with rasterio.open(crop) as c, rasterio.open(msk) as m:
            assert (c.count, c.dtypes[0], c.nodata) == (3, "uint8", 255)
            assert (c.transform, c.shape, c.crs) == (m.transform, m.shape, m.crs)
            got, t = c.read(), c.transform
        cols, rows = np.meshgrid(np.arange(PATCH) + 0.5, np.arange(PATCH) + 0.5)
        xs, ys = t.c + cols * t.a, t.f + rows * t.e
        expected = np.full((PATCH, PATCH), 22, np.uint8)
        for geom, code in zip(parcels.geometry, parcels["CODE_CULTU"], strict=True):
            inside = shapely.contains_xy(geom, xs, ys)
            expected[inside] = cls[code]  # later parcel wins, as the file orders them
        np.testing.assert_array_equal(got[0], expected)
        assert (got[1:] == 255).all()  # no level-2/3 table in the synthetic world
    # every declared crop of the world shows somewhere (its patches tile the mosaic)
    declared = {22}
    for gpkg in raw.glob("*.gpkg"):
        declared |= {int(cls[c]) for c in gpd.read_file(gpkg)["CODE_CULTU"]}
    for crop in crops:
        with rasterio.open(crop) as c:
            seen |= set(np.unique(c.read(1)).tolist())
    assert seen == declared and len(declared) > 2
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("crop_labels"), "crop_codes"), limit=5
    )
    assert records and all(r.status.value == "SUCCEEDED" for r in records)
