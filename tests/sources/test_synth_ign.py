"""The ign flavour: the same domain as IGN delivers it builds the same patches.

A tiny-world domain is rewritten as BD ORTHO RVB + IRC JPEG 2000 tiles, RGE ALTI .asc
DTM tiles without CRS, a LiDAR HD-like DSM on a half-pixel grid and OCS GE-like labels
with their mapping table, then built through ``domain.yaml``; the plain build of the same
domain is the reference.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import rasterio
import yaml
from fsspec.implementations.local import LocalFileSystem

from flair_pipeline.config import SamplingConfig
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.patch_writers import build_aerial_patches, build_label_masks
from flair_pipeline.dataset.rasterize import read_labels
from flair_pipeline.dataset.sampling import sample_patches
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.errors import InputError
from flair_pipeline.layout import DatasetLayout
from flair_pipeline.orchestration.run import materialize
from flair_pipeline.sources.domain_inputs import scan_domain
from flair_pipeline.sources.domain_spec import resolve
from flair_pipeline.synthetic.ign import OCSGE_PAIRS, convert_world, to_ign
from flair_pipeline.synthetic.world import WorldSummary

PATCH = 64
DOMAIN = "D033_2021"


@pytest.fixture(scope="module")
def both(tiny_world: WorldSummary, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("ign")
    plain = tiny_world.out / "domains" / DOMAIN
    ign = tmp / "raw" / "domains" / DOMAIN
    to_ign(plain, ign)
    built = {}
    for name, folder in (("plain", plain), ("ign", ign)):
        inputs = resolve(folder)
        labels = read_labels(inputs.labels, mapping=inputs.mapping)
        with Mosaic(inputs.ortho) as m:
            grid, _ = sample_patches(DOMAIN, m, labels, SamplingConfig(patch_size=PATCH))
        layout = DatasetLayout(tmp / name)
        a = build_aerial_patches(grid, inputs.ortho, inputs.dsm, inputs.dtm, layout, PATCH, 5.0)
        b = build_label_masks(grid, inputs.labels, layout, PATCH, 0.2, mapping=inputs.mapping)
        built[name] = (grid, layout, a, b)
    return built, ign, tmp


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_ign_flavour_is_written_as_delivered(both) -> None:
    _, ign, _ = both
    names = sorted(p.name for p in (ign / "ortho").iterdir() if p.suffix == ".jp2")
    assert names and sum("-IRC-" in n for n in names) == len(names) // 2
    asc = sorted((ign / "rge_alti").glob("*.asc"))
    assert len(asc) == 2
    with rasterio.open(asc[0]) as src:
        assert src.crs is None
    (dsm,) = (ign / "lidar_hd").glob("*.tif")
    with rasterio.open(dsm) as src:
        assert src.nodata == -9999
        assert ((src.transform.c / 0.5) % 1) == pytest.approx(0.5)  # half a pixel off
    assert not (ign / "domain.json").exists()


def test_same_patches_as_the_plain_flavour(both) -> None:
    built, _, _ = both
    (g0, l0, a0, b0), (g1, l1, a1, b1) = built["plain"], built["ign"]
    assert list(g0["patch_id"]) == list(g1["patch_id"]) and len(g0) > 0
    assert a0.written == a1.written == len(g0) and b0.written == b1.written == len(g0)
    worst = []
    for row in g0.itertuples():
        i0, i1 = (
            _read(l0.img(DOMAIN, row.zone, row.patch_id)),
            _read(l1.img(DOMAIN, row.zone, row.patch_id)),
        )
        assert np.array_equal(i0[:4], i1[:4]), row.patch_id  # lossless JP2, same bands
        m0, m1 = (
            _read(l0.msk(DOMAIN, row.zone, row.patch_id)),
            _read(l1.msk(DOMAIN, row.zone, row.patch_id)),
        )
        assert np.array_equal(m0, m1), row.patch_id  # OCS GE pairs mapped back exactly
        worst.append(np.abs(i0[4].astype(int) - i1[4].astype(int)))
    diff = np.concatenate([w.ravel() for w in worst])
    # the documented resampling: the DSM went 1 m -> 0.5 m half-pixel (bilinear) once
    assert np.median(diff) == 0 and np.percentile(diff, 99) <= 6


def test_unmapped_values_are_listed_with_their_area(both, tmp_path: Path) -> None:
    _, ign, _ = both
    copy = tmp_path / DOMAIN
    shutil.copytree(ign, copy)
    table = copy / "ocsge" / "ocsge_to_flair.csv"
    rows = list(csv.DictReader(table.open()))
    drop = OCSGE_PAIRS[10]
    kept = [r for r in rows if (r["code_cs"], r["code_us"]) != drop]
    with table.open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["code_cs", "code_us", "flair"])
        w.writeheader()
        w.writerows(kept)
    inputs = resolve(copy)
    import geopandas as gpd

    gdf = gpd.read_file(inputs.labels)
    area = gdf[(gdf.code_cs == drop[0]) & (gdf.code_us == drop[1])].area.sum()
    assert area > 0
    with pytest.raises(InputError) as e:
        read_labels(inputs.labels, mapping=inputs.mapping)
    assert f"{drop[0]} / {drop[1]} ({area:,.0f} m²)" in str(e.value)


def test_bad_spec_and_empty_glob_are_named(both, tmp_path: Path) -> None:
    _, ign, _ = both
    copy = tmp_path / DOMAIN
    shutil.copytree(ign, copy)
    spec = yaml.safe_load((copy / "domain.yaml").read_text())
    spec["dtm"]["glob"] = "rge_alti/*.ASC"  # case never matters
    (copy / "domain.yaml").write_text(yaml.safe_dump(spec))
    assert len(resolve(copy).dtm.files) == 2
    spec["dsm"]["glob"] = "lidar/*.tif"
    (copy / "domain.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(InputError, match=r"domain\.yaml: dsm glob 'lidar/\*\.tif' matches no file"):
        resolve(copy)
    spec["dsm"] = {"glob": "lidar_hd/*.tif", "resolution": 1}
    (copy / "domain.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(InputError, match=r"domain\.yaml: dsm\.resolution: Extra inputs"):
        resolve(copy)


def test_sensor_sees_and_dagster_builds_the_ign_domain(both, tmp_path: Path) -> None:
    built, ign, root = both
    raw = root / "raw"
    scan = scan_domain(LocalFileSystem(), str(raw), DOMAIN)
    names = {Path(f).relative_to(ign).as_posix() for f in scan.files}
    assert scan.complete and "domain.yaml" in names
    assert {p.relative_to(ign).as_posix() for p in ign.rglob("*") if p.is_file()} == names
    p = tmp_path / "params.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": str(raw), "dataset": str(tmp_path / "ds")},
                "sampling": {
                    "patch_size": PATCH,
                    "strategy": "random",
                    "max_patches_per_domain": 4,
                },
            }
        )
    )
    with dg.instance_for_test() as instance:
        materialize(
            "group:sources or group:dataset",
            (DOMAIN,),
            PipelineConfigResource(config_path=str(p)),
            instance=instance,
        )
    imgs = sorted((tmp_path / "ds" / "aerial").rglob("IMG_*.tif"))
    assert len(imgs) == 4  # a few patches keep the test fast; the build path is the point
    ids = {p.stem.removeprefix("IMG_") for p in imgs}
    assert ids <= set(built["ign"][0]["patch_id"])
    meta = yaml.safe_load((tmp_path / "ds" / "metadata" / "domains" / f"{DOMAIN}.json").read_text())
    first = next(iter(meta["patches"].values()))
    assert first["date"] and first["camera"]  # from the spec's acquisition facts
    # every input is Lambert-93 (the .asc by the spec's crs): the one decision is the JPEG 2000
    # decoding threads (issue 27)
    [line] = meta["decisions"]
    assert line.startswith("ortho: ") and "JPEG 2000 tile(s)" in line
    assert "sampling.jp2_decode_threads auto" in line


def test_convert_world_rewrites_every_domain(tiny_world: WorldSummary, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(tiny_world.out / "domains", raw / "domains")
    done = convert_world(raw)
    assert done == sorted(d.domain for d in tiny_world.domains)
    for d in done:
        folder = raw / "domains" / d
        assert (folder / "domain.yaml").is_file() and not (folder / "domain.json").exists()
        assert resolve(folder).info["camera"]
    assert not [p for p in (raw / "domains").iterdir() if p.name.startswith(".")]


def test_a_uint16_product_with_a_rescale_builds_the_plain_pixels(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """The plain ortho delivered as uint16 (values x 10, nodata 0 kept) with `rescale:
    [0, 2550]` in domain.yaml, built by Dagster: IMG bands R, G, B, NIR are the plain
    tiles' pixels (rasterio's merge of them), the missing corner's nodata is 0, never a
    scaled value, and the decision is in metadata/domains/<domain>.json."""
    from rasterio.merge import merge
    from rasterio.windows import from_bounds

    plain = tiny_world.out / "domains" / DOMAIN
    raw = tmp_path / "raw"
    folder = raw / "domains" / DOMAIN
    shutil.copytree(plain, folder)
    for tile in sorted((folder / "ortho").glob("*.tif")):
        with rasterio.open(tile) as src:
            arr, profile = src.read(), src.profile
        assert profile["nodata"] == 0
        profile.update(dtype="uint16")
        with rasterio.open(tile, "w", **profile) as dst:
            dst.write(arr.astype(np.uint16) * 10)
    bands = {"R": 1, "G": 2, "B": 3, "NIR": 4}
    spec = {
        "ortho": [{"name": "rgbn16", "glob": "ortho/*.tif", "bands": bands, "rescale": [0, 2550]}],
        "dsm": {"glob": "dsm.tif"},
        "dtm": {"glob": "dtm.tif"},
        "labels": {"glob": "labels.gpkg"},
    }
    (folder / "domain.yaml").write_text(yaml.safe_dump(spec))
    p = tmp_path / "params.yaml"
    ds = tmp_path / "ds"
    p.write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": str(raw), "dataset": str(ds)},
                "sampling": {"patch_size": PATCH, "max_patches_per_domain": 4},
            }
        )
    )
    with dg.instance_for_test() as instance:
        materialize(
            "group:sources or group:dataset",
            (DOMAIN,),
            PipelineConfigResource(config_path=str(p)),
            instance=instance,
        )
    tiles = [rasterio.open(t) for t in sorted((plain / "ortho").glob("*.tif"))]
    try:
        mosaic, t = merge(tiles)
    finally:
        for src in tiles:
            src.close()
    imgs = sorted((ds / "aerial").rglob("IMG_*.tif"))
    assert len(imgs) == 4
    for img in imgs:
        with rasterio.open(img) as src:
            got, b = src.read(), src.bounds
        win = from_bounds(*b, transform=t).round_offsets().round_lengths()
        want = mosaic[:, win.row_off : win.row_off + PATCH, win.col_off : win.col_off + PATCH]
        assert np.array_equal(got[:4], want), img.name
    meta = yaml.safe_load((ds / "metadata" / "domains" / f"{DOMAIN}.json").read_text())
    assert len(meta["decisions"]) == 1, meta["decisions"]
    assert meta["decisions"][0].startswith("ortho rgbn16: uint16 rescaled linearly [0, 2550]")
    assert "nodata 0 is no data, found before scaling" in meta["decisions"][0]
