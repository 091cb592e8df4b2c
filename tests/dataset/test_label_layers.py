"""Label files of several layers: the named layer, the only one, ``labels``, or refused.

GeoPackages are written here with pyogrio the way users and QGIS leave them: an older
vintage appended before the new one, QGIS's ``layer_styles`` table next to the labels.
Expected MSK pixels come from rasterio's own ``rasterize`` of the polygons of the layer
that should be read (or, for pixel-aligned boxes, by hand), never from the code under test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
import yaml
from affine import Affine
from rasterio.features import rasterize

from flair_pipeline.config import config_from_dict
from flair_pipeline.dataset.build import build_domain_patches
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.rasterize import LabelIndex, rasterize_like, read_labels
from flair_pipeline.errors import InputError
from flair_pipeline.geo.label_layers import DEFAULT_LAYER, choose_label_layer
from flair_pipeline.io import write_geotiff
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.sources.domain_spec import resolve
from flair_pipeline.synthetic.world import WorldSummary

X0, Y0, RES = 650_000.0, 6_860_000.0, 0.2
GRID = Affine(RES, 0.0, X0, 0.0, -RES, Y0)
DOMAIN = "D033_2021"
SAMPLING = {"patch_size": 64, "max_patches_per_domain": 4, "zone_size_m": 60}


def _box(c0: int, r0: int, c1: int, r1: int) -> shapely.Polygon:
    return shapely.box(X0 + c0 * RES, Y0 - r1 * RES, X0 + c1 * RES, Y0 - r0 * RES)


def _layer(path: Path, layer: str, boxes: list, codes: list[int]) -> None:
    gdf = gpd.GeoDataFrame({"code": codes}, geometry=boxes, crs="EPSG:2154")
    gdf.to_file(path, layer=layer, driver="GPKG", engine="pyogrio")


def _styles(path: Path) -> None:
    """QGIS's ``layer_styles``: an attribute table (no geometry) in the same GeoPackage."""
    table = pd.DataFrame({"f_table_name": ["labels"], "styleName": ["flair"], "styleQML": ["<x/>"]})
    pyogrio.write_dataframe(table, path, layer="layer_styles", driver="GPKG")


@pytest.fixture
def two_vintages(tmp_path: Path) -> Path:
    """labels_2019 (left half code 3) written first, then labels_2021 (right half code 9)."""
    path = tmp_path / "labels.gpkg"
    _layer(path, "labels_2019", [_box(0, 0, 2, 4)], [3])
    _layer(path, "labels_2021", [_box(2, 0, 4, 4)], [9])
    return path


def test_two_label_layers_without_a_name_are_refused_in_one_line(two_vintages: Path) -> None:
    with pytest.raises(InputError) as err:
        read_labels(two_vintages)
    msg = str(err.value)
    assert "\n" not in msg and str(two_vintages) in msg
    assert "labels_2019 (Polygon)" in msg and "labels_2021 (Polygon)" in msg
    assert "`layer:` under `labels:` in domain.yaml" in msg and '"labels_layer"' in msg


def test_the_named_layer_is_burnt(two_vintages: Path, tmp_path: Path) -> None:
    m = LabelIndex.from_file(two_vintages, "labels_2021").mask(GRID, (4, 4))
    expected = np.zeros((4, 4), np.uint8)
    expected[:, 2:4] = 9  # by hand: the right half only, nothing of labels_2019
    np.testing.assert_array_equal(m, expected)
    assert read_labels(two_vintages, "labels_2019")["code"].tolist() == [3]
    like = write_geotiff(tmp_path / "img.tif", np.zeros((4, 4), np.uint8), GRID, "EPSG:2154")
    out = rasterize_like(two_vintages, like, tmp_path / "msk.tif", layer="labels_2021")
    with rasterio.open(out) as src:
        np.testing.assert_array_equal(src.read(1), expected)


def test_labels_is_the_default_among_several_and_the_choice_is_said(tmp_path: Path) -> None:
    path = tmp_path / "labels.gpkg"
    _layer(path, "labels_2019", [_box(0, 0, 4, 4)], [3])  # written first: OGR's default
    _layer(path, DEFAULT_LAYER, [_box(0, 0, 4, 2)], [11])
    gdf = read_labels(path)
    assert gdf.attrs["layer"] == "labels" and gdf["code"].tolist() == [11]
    line = gdf.attrs["layer_decision"]
    assert "\n" not in line and str(path) in line and "'labels', the default name" in line
    assert "labels_2019" in line
    m = LabelIndex(gdf).mask(GRID, (4, 4))
    np.testing.assert_array_equal(m, np.repeat([[11], [11], [0], [0]], 4, axis=1))


def test_a_layer_styles_table_is_not_a_label_layer(tmp_path: Path) -> None:
    path = tmp_path / "OCCUPATION_SOL.gpkg"
    _layer(path, "occupation_sol", [_box(0, 0, 4, 4)], [6])
    _styles(path)
    gdf = read_labels(path)
    assert gdf.attrs["layer"] == "occupation_sol" and gdf.attrs["layer_decision"] is None
    assert gdf["code"].tolist() == [6]
    # the styles table written *first* is not read either
    first = tmp_path / "styles_first.gpkg"
    _styles(first)
    _layer(first, "zones", [_box(0, 0, 4, 4)], [7])
    assert read_labels(first)["code"].tolist() == [7]
    with pytest.raises(InputError, match=r"layer 'layer_styles' is a table without geometry"):
        read_labels(first, "layer_styles")


def test_a_missing_layer_or_no_polygons_or_a_layer_for_a_raster_is_one_line(
    two_vintages: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError) as err:
        read_labels(two_vintages, "labels_2020")
    assert "has no layer 'labels_2020'" in str(err.value) and "labels_2019" in str(err.value)
    only_styles = tmp_path / "styles.gpkg"
    _styles(only_styles)
    with pytest.raises(InputError, match=r"no layer with geometries.*layer_styles \(table"):
        choose_label_layer(only_styles)
    raster = write_geotiff(tmp_path / "labels.tif", np.ones((2, 2), np.uint8), GRID, "EPSG:2154")
    assert choose_label_layer(raster).name is None
    with pytest.raises(InputError, match=r"is a raster, it has no layers"):
        read_labels(raster, "labels")


# --- a whole domain ------------------------------------------------------------------------


def _permuted(labels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Another vintage: same polygons, every code moved to the next one (19 -> 1)."""
    return labels.assign(code=labels["code"] % 19 + 1)


def _copy_domain(world: WorldSummary, tmp_path: Path, layers: list[str]) -> Path:
    """The tiny world's domain, its labels.gpkg rewritten as `layers` in that order: the
    one called ``vintage_2021`` or ``labels`` holds the true labels, any other the
    permuted ones."""
    folder = tmp_path / "raw" / "domains" / DOMAIN
    shutil.copytree(world.out / "domains" / DOMAIN, folder)
    true = gpd.read_file(world.out / "domains" / DOMAIN / "labels.gpkg", layer="labels")
    (folder / "labels.gpkg").unlink()
    for name in layers:
        gdf = true if name in ("vintage_2021", "labels") else _permuted(true)
        gdf.to_file(folder / "labels.gpkg", layer=name, driver="GPKG", engine="pyogrio")
    return folder


def _check_masks(dataset: DatasetLayout, true: gpd.GeoDataFrame) -> int:
    """Every MSK equals rasterio's burn of the true labels on its own grid; their count."""
    msks = sorted(dataset.root.rglob("MSK_*.tif"))
    wrong = _permuted(true)
    for msk in msks:
        with rasterio.open(msk) as src:
            got, transform, shape = src.read(1), src.transform, (src.height, src.width)
        want = rasterize(zip(true.geometry, true["code"], strict=True), shape, transform=transform)
        np.testing.assert_array_equal(got, want)
        bad = rasterize(zip(wrong.geometry, wrong["code"], strict=True), shape, transform=transform)
        assert (got != bad).any()  # the planted wrong layer would show
    return len(msks)


def test_a_domain_with_two_layers_is_refused_then_built_from_its_named_layer(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    folder = _copy_domain(tiny_world, tmp_path, ["labels_2019", "vintage_2021"])
    raw, cfg = RawLayout(tmp_path / "raw"), config_from_dict({"sampling": SAMPLING})
    with pytest.raises(InputError) as err:
        build_domain_patches(
            DomainContext.open(DOMAIN, raw, DatasetLayout(tmp_path / "refused"), cfg)
        )
    assert "labels_2019 (" in str(err.value) and "vintage_2021 (" in str(err.value)
    assert not (tmp_path / "refused" / "labels").exists()

    # the raw layout names it in domain.json
    info = json.loads((folder / "domain.json").read_text())
    (folder / "domain.json").write_text(json.dumps({**info, "labels_layer": "vintage_2021"}))
    assert resolve(folder).labels_layer == "vintage_2021"
    dataset = DatasetLayout(tmp_path / "dataset")
    report = build_domain_patches(DomainContext.open(DOMAIN, raw, dataset, cfg))
    true = gpd.read_file(folder / "labels.gpkg", layer="vintage_2021")
    assert _check_masks(dataset, true) == report.masks.written > 0
    record = json.loads(dataset.sources_record(DOMAIN).read_text())
    assert record["labels_layer"] == "vintage_2021" and record["decisions"] == []

    # domain.yaml names it under labels:, and may not contradict domain.json
    spec = {
        "ortho": [
            {"name": "rgbn", "glob": "ortho/*.tif", "bands": {"R": 1, "G": 2, "B": 3, "NIR": 4}}
        ],
        "dsm": {"glob": "dsm.tif"},
        "dtm": {"glob": "dtm.tif"},
        "labels": {"glob": "labels.gpkg", "layer": "labels_2019"},
    }
    (folder / "domain.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(InputError, match=r"labels.layer 'labels_2019' differs from"):
        resolve(folder)
    (folder / "domain.json").write_text(json.dumps(info))
    assert resolve(folder).labels_layer == "labels_2019"


def test_a_domain_reads_labels_by_default_and_records_why(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    _copy_domain(tiny_world, tmp_path, ["labels_2019", "labels"])
    raw, cfg = RawLayout(tmp_path / "raw"), config_from_dict({"sampling": SAMPLING})
    dataset = DatasetLayout(tmp_path / "dataset")
    report = build_domain_patches(DomainContext.open(DOMAIN, raw, dataset, cfg))
    true = gpd.read_file(raw.domain(DOMAIN) / "labels.gpkg", layer="labels")
    assert _check_masks(dataset, true) > 0
    record = json.loads(dataset.sources_record(DOMAIN).read_text())
    assert record["labels_layer"] == "labels"
    (line,) = record["decisions"]
    assert "'labels', the default name, not labels_2019" in line
    assert line in report.sources.warnings and line in report.masks.decisions
    meta = json.loads(dataset.domain_metadata(DOMAIN).read_text())
    assert line in meta["decisions"]
