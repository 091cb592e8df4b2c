"""The synthetic world: layout, formats, plausibility, determinism, bad input."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
import shapely

from flair_pipeline.domains import DomainId
from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.synthetic.sentinel2 import BOA_OFFSET, SPECTRAL_ASSETS
from flair_pipeline.synthetic.world import (
    SCENARIOS,
    WorldSummary,
    generate_world,
    split_class_shares,
)

ASSETS = {k for k, _, _ in SPECTRAL_ASSETS} | {"cloud", "snow", "scl"}


def _domains(world: WorldSummary) -> list[Path]:
    return [world.out / "domains" / d.domain for d in world.domains]


def test_tiny_covers_the_three_splits(tiny_world: WorldSummary) -> None:
    assert len(tiny_world.domains) >= 3
    assert {d.split for d in tiny_world.domains} == {"train", "validation", "test"}
    for name in ("demo", "bench"):
        sc = SCENARIOS[name]
        assert len(sc.domains) >= 6
        splits = {str(DomainId.parse(d).official_split) for d in sc.domains}
        assert splits == {"train", "validation", "test"}


def test_demo_trains_on_both_grass_and_crops() -> None:
    """The demo compares U-Net and U-T&T on agricultural land (11) vs herbaceous vegetation
    (10): its training split must hold enough of both for either model to learn them
    (at 409.6 m per domain, seed 0 left only 2 % agricultural land in the training split)."""
    shares = split_class_shares(SCENARIOS["demo"], 0)
    for split in ("train", "test"):
        assert shares[split][10] > 0.10 and shares[split][11] > 0.10, (split, shares[split])
    old = split_class_shares(dataclasses.replace(SCENARIOS["demo"], size_m=409.6), 0)
    assert old["train"][11] < 0.03  # the world the weak first result was trained on


def test_split_class_shares_match_the_written_labels(tiny_world: WorldSummary) -> None:
    shares = split_class_shares(SCENARIOS["tiny"], 0)
    for d in tiny_world.domains:  # one domain per split in `tiny`
        labels = gpd.read_file(tiny_world.out / "domains" / d.domain / "labels.gpkg")
        area = labels.geometry.area.groupby(labels["code"]).sum()
        expected = np.zeros(20)
        expected[area.index.to_numpy()] = area.to_numpy() / area.sum()
        np.testing.assert_allclose(shares[d.split], expected, atol=1e-6)


def test_layout(tiny_world: WorldSummary) -> None:
    for folder in _domains(tiny_world):
        assert {p.name for p in folder.iterdir()} == {
            "ortho",
            "dsm.tif",
            "dtm.tif",
            "labels.gpkg",
            "domain.json",
        }
        assert len(list((folder / "ortho").glob("*.tif"))) >= 2
    assert (tiny_world.out / "sentinel2" / "catalog.json").is_file()
    assert (tiny_world.out / "sentinel1" / "catalog.json").is_file()
    assert not list(tiny_world.out.glob(".synth-*")), "temporary folder left behind"


def test_ortho_tiles_form_a_seamless_rgbn_mosaic(tiny_world: WorldSummary) -> None:
    for folder in _domains(tiny_world):
        meta = json.loads((folder / "domain.json").read_text())
        x0, y0, x1, y1 = meta["bounds"]
        covered = 0.0
        for tile in sorted((folder / "ortho").glob("*.tif")):
            with rasterio.open(tile) as src:
                assert src.crs.to_epsg() == 2154
                assert src.res == pytest.approx((0.2, 0.2))
                assert src.count == 4 and src.dtypes == ("uint8",) * 4
                assert src.descriptions == ("red", "green", "blue", "nir")
                assert src.nodata == 0
                b = src.bounds
                assert x0 <= b.left < b.right <= x1 and y0 <= b.bottom < b.top <= y1
                covered += (b.right - b.left) * (b.top - b.bottom)
                img = src.read()
                assert img.std() > 5  # textured, not flat
        assert covered == pytest.approx((x1 - x0) * (y1 - y0))


def test_tiles_are_seamless_across_tile_edges(tiny_world: WorldSummary) -> None:
    # the column on either side of a vertical tile edge must be as alike as two neighbouring
    # columns inside a tile (no jump in texture or brightness at the seam)
    folder = _domains(tiny_world)[0]
    tiles = sorted((folder / "ortho").glob("*.tif"))
    with rasterio.open(tiles[0]) as a, rasterio.open(tiles[2]) as b:
        assert a.bounds.right == pytest.approx(b.bounds.left) and a.bounds.top == b.bounds.top
        left, right = a.read()[:, :, -1].astype(float), b.read()[:, :, 0].astype(float)
        inner = np.abs(a.read()[:, :, -2].astype(float) - left).mean()
    assert np.abs(left - right).mean() < 2.5 * inner + 2


def test_labels_tile_the_mosaic_with_valid_codes(tiny_world: WorldSummary) -> None:
    for folder in _domains(tiny_world):
        gdf = gpd.read_file(folder / "labels.gpkg")
        meta = json.loads((folder / "domain.json").read_text())
        extent = shapely.box(*meta["bounds"])
        assert gdf.crs.to_epsg() == 2154
        assert gdf["code"].dtype.kind == "i"
        assert gdf["code"].between(1, 19).all()
        assert gdf.geometry.is_valid.all()
        # no gaps: the union is the extent; no overlaps: areas add up to the extent's
        assert shapely.union_all(gdf.geometry.values).area == pytest.approx(extent.area, rel=1e-6)
        assert gdf.geometry.area.sum() == pytest.approx(extent.area, rel=1e-6)


def test_surface_models(tiny_world: WorldSummary) -> None:
    for folder in _domains(tiny_world):
        with rasterio.open(folder / "dsm.tif") as dsm, rasterio.open(folder / "dtm.tif") as dtm:
            assert dsm.crs.to_epsg() == dtm.crs.to_epsg() == 2154
            assert dsm.dtypes[0] == "float32" and dsm.res == dtm.res
            s, t = dsm.read(1), dtm.read(1)
            transform = dsm.transform
        assert (s >= t - 1e-3).all()
        gdf = gpd.read_file(folder / "labels.gpkg")
        height = s - t
        for code, lo, hi in ((1, 3.0, 30.0), (6, 5.0, 40.0), (7, 5.0, 40.0), (8, 0.0, 5.0)):
            polys = gdf[gdf.code == code].geometry.buffer(-1.5)
            polys = polys[~polys.is_empty & (polys.area > 4)]
            if polys.empty:
                continue
            mask = rasterio.features.geometry_mask(polys, s.shape, transform, invert=True)
            med = float(np.median(height[mask]))
            assert lo <= med <= hi, (folder.name, code, med)


def test_domain_json(tiny_world: WorldSummary) -> None:
    for folder in _domains(tiny_world):
        meta = json.loads((folder / "domain.json").read_text())
        d = DomainId.parse(folder.name)
        assert meta["domain"] == folder.name and meta["year"] == d.year
        assert meta["date"].startswith(str(d.year)) and len(meta["time"]) == 8
        assert meta["camera"]


def test_sentinel2_catalog_like_earth_search(tiny_world: WorldSummary) -> None:
    cat = pystac.Catalog.from_file(str(tiny_world.out / "sentinel2" / "catalog.json"))
    items = list(cat.get_items(recursive=True))
    per_domain: dict[str, int] = {}
    for it in items:
        per_domain[it.properties["flair:domain"]] = (
            per_domain.get(it.properties["flair:domain"], 0) + 1
        )
        assert it.collection_id == "sentinel-2-c1-l2a"
        assert set(it.assets) == ASSETS
    assert set(per_domain) == {d.domain for d in tiny_world.domains}
    assert all(20 <= n <= 114 for n in per_domain.values())

    it = items[0]
    epsg = int(it.properties["proj:code"].split(":")[1])
    assert 32630 <= epsg <= 32632
    for key, band, res in SPECTRAL_ASSETS:
        asset = it.assets[key]
        assert asset.extra_fields["raster:bands"][0]["offset"] == -0.1
        with rasterio.open(asset.get_absolute_href()) as src:
            assert src.crs.to_epsg() == epsg and src.res == (res, res)
            assert src.dtypes[0] == "uint16"
            assert list(src.shape) == asset.extra_fields["proj:shape"]
            refl = (src.read(1).astype(float) - BOA_OFFSET) / 10000
            assert -0.05 < np.median(refl) < 1.0, band
    for key in ("cloud", "snow"):
        with rasterio.open(it.assets[key].get_absolute_href()) as src:
            assert src.res == (20, 20) and src.dtypes[0] == "uint8"
            assert src.read().max() <= 100


def test_clouds_brighten_and_are_flagged(tiny_world: WorldSummary) -> None:
    cat = pystac.Catalog.from_file(str(tiny_world.out / "sentinel2" / "catalog.json"))
    bright, dim = [], []
    for it in cat.get_items(recursive=True):
        with rasterio.open(it.assets["cloud"].get_absolute_href()) as c:
            cloud = c.read(1)
        with rasterio.open(it.assets["rededge1"].get_absolute_href()) as b:
            blue = b.read(1).astype(float)
        bright += blue[cloud > 80].tolist()
        dim += blue[cloud == 0].tolist()
    assert bright and dim
    assert np.median(bright) > np.median(dim) + 1500


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_bytes(tiny_world: WorldSummary, tmp_path: Path) -> None:
    again = generate_world(tmp_path / "raw", "tiny", 0)
    assert _digest(again.out) == _digest(tiny_world.out)


def test_other_seed_gives_another_world(tiny_world: WorldSummary, tmp_path: Path) -> None:
    other = generate_world(tmp_path / "raw", "tiny", 1)
    a, b = _digest(other.out), _digest(tiny_world.out)
    differing = [k for k in a if k.endswith(".gpkg") and a.get(k) != b.get(k)]
    assert differing and a != b


def test_unknown_scenario_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FlairPipelineError, match=r"unknown scenario 'huge'.*tiny, demo, bench"):
        generate_world(tmp_path / "out", "huge", 0)
    assert not (tmp_path / "out").exists()


def test_unwritable_out_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FlairPipelineError, match="cannot write"):
        generate_world(blocker / "raw", "tiny", 0)


def test_failure_midway_leaves_previous_output_intact(
    tiny_world: WorldSummary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "raw"
    generate_world(out, "tiny", 0)
    before = _digest(out)
    from flair_pipeline.synthetic import world as synthetic

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(synthetic, "write_catalog", boom)
    with pytest.raises(OSError, match="disk full"):
        generate_world(out, "tiny", 5)
    assert _digest(out) == before
    assert not list(out.glob(".synth-*"))


def test_nir_is_not_taken_for_alpha(tiny_world: WorldSummary) -> None:
    tile = next((_domains(tiny_world)[0] / "ortho").glob("*.tif"))
    with rasterio.open(tile) as src:
        assert src.colorinterp[3] != rasterio.enums.ColorInterp.alpha


def test_rpg_parcels_lie_on_farmland(tiny_world: WorldSummary) -> None:
    """The synthetic RPG (issue 25): one GeoPackage per domain, parcels over the land-cover
    labels' vineyards, herbaceous, agricultural or plowed land only, every code in its table."""
    import csv

    import geopandas as gpd

    rpg = tiny_world.out / "rpg"
    with (rpg / "lpis_level1.csv").open() as fh:
        table = {r["code_cultu"]: int(r["class"]) for r in csv.DictReader(fh)}
    assert set(table.values()) <= set(range(22))
    total = 0
    for d in tiny_world.domains:
        parcels = gpd.read_file(rpg / f"{d.domain}.gpkg", layer="rpg")
        labels = gpd.read_file(tiny_world.out / "domains" / d.domain / "labels.gpkg")
        assert parcels.crs.to_epsg() == 2154 and set(parcels["CODE_CULTU"]) <= set(table)
        points = gpd.GeoDataFrame(geometry=parcels.representative_point(), crs=parcels.crs)
        under = gpd.sjoin(points, labels, predicate="within")
        assert len(under) == len(parcels) and set(under["code"]) <= {9, 10, 11, 12}
        total += len(parcels)
    assert total > 0
