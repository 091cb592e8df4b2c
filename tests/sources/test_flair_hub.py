"""FLAIR-HUB import (issue 24, part 1): a release built from real FLAIR patches, indexed.

The release is written here in FLAIR-HUB's layout (IGNF/FLAIR-HUB ``src/flair_hub/data``,
TorchGeo's ``FLAIRHUB``): the aerial image of each of the five real FLAIR patches (R, G, B,
NIR) as ``AERIAL_RGBI``, their MSK shifted to 0-based as ``AERIAL_LABEL-COSIA``, a DEM and a
Sentinel-2 series with its masks generated, the dates and split GeoPackages, some modalities
in download archives under both of IGN's archive names. Expected values come from the files
as written here and from the real toy split CSVs read with ``csv``.
"""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio

from flair_pipeline.errors import InputError
from flair_pipeline.sources.flair_hub import (
    index_hub,
    read_hub_manifest,
    write_hub_manifest,
)
from flair_pipeline.sources.flair_hub_layout import HubPatchId, parse_file_name, parse_patch_id
from tests.conftest import REPO
from tests.hub_release import write_gpkg, write_tif

TOY = REPO.parent / "shared" / "real-samples" / "flair-metadata" / "flair_hub_toy_splits"
DATES = ("20210105", "20210412", "20210830")


_write, _gpkg = write_tif, write_gpkg  # the shared release builder's writers


@pytest.fixture(scope="module")
def release(real_flair: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Five real patches as FLAIR-HUB patches of two areas, two of three splits."""
    root = tmp_path_factory.mktemp("hub") / "FLAIR-HUB"
    imgs = sorted(real_flair.rglob("IMG_*.tif"))
    assert len(imgs) == 5
    ids, expected = [], {}
    for i, img in enumerate(imgs):
        domain = img.parts[-4].replace("_", "-")  # D004_2021 -> D004-2021
        pid = parse_patch_id(f"{domain}_UA-S1-{i % 2}_{i}-{i + 1}")
        ids.append(pid)
        msk = next(real_flair.rglob(img.name.replace("IMG_", "MSK_")))
        with rasterio.open(img) as src:
            rgbi = src.read([1, 2, 3, 4])
        with rasterio.open(msk) as src:
            cosia = src.read(1)[None] - 1  # 0-based values (not COSIA's class order: unused here)
        dem = np.stack(
            [np.full((512, 512), 300.5 + i, "float32"), np.full((512, 512), 290, "float32")]
        )
        s2 = np.arange(30 * 100, dtype="uint16").reshape(30, 10, 10) + i
        sc = np.full((6, 10, 10), i, "uint8")
        for mod, arr in (
            ("AERIAL_RGBI", rgbi),
            ("AERIAL_LABEL-COSIA", cosia),
            ("DEM_ELEV", dem),
            ("SENTINEL2_TS", s2),
            ("SENTINEL2_MSK-SC", sc),
        ):
            if mod == "DEM_ELEV" and i == 4:
                continue  # a modality missing for one patch: listed, not fatal
            _write(root / pid.relpath(mod), arr)
        expected[str(pid)] = {"rgbi": rgbi, "cosia": cosia}
    # the aerial images of the first domain in an archive, as IGN ships them (new name)
    first = ids[0]
    folder = root / f"{first.domain}_AERIAL_RGBI"
    archive = root / f"{first.domain}_AERIAL_RGBI_IMS.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(folder.rglob("*.tif")):
            zf.write(f, f.relative_to(root).as_posix())
    shutil.rmtree(folder)
    mtd = root / "GLOBAL_ALL_MTD"
    _gpkg(
        mtd / "GLOBAL_SENTINEL2_MTD_DATES.gpkg",
        {
            str(p): {"acquisition_dates": json.dumps({str(k): d for k, d in enumerate(DATES)})}
            for p in ids
        },
    )
    splits = ["train", "train", "val", "test", "train"]
    _gpkg(
        mtd / "GLOBAL_ALL_MTD_SPLIT.gpkg",
        {
            str(p): {f"split_{k}": s for k in range(1, 6)} | {"split_flairchallenge": s}
            for p, s in zip(ids, splits, strict=True)
        },
    )
    return {"root": root, "ids": ids, "splits": splits, "expected": expected, "zip": archive}


def test_patch_ids_and_file_names_by_the_published_layout() -> None:
    pid = parse_patch_id("D006-2020_FF-S1-14_5-5")
    assert pid == HubPatchId("D006", "2020", "FF-S1-14", 5, 5)
    assert pid.domain == "D006-2020" and pid.area == "D006-2020_FF-S1-14"
    # the exact relative paths of the real toy CSV's first row (its "../" stripped)
    with (TOY / "FLAIR-HUB_TOY-DATASET_TRAIN.csv").open() as fh:
        row = next(csv.DictReader(fh))
    assert row["patch_id"] == str(pid)
    for mod in ("AERIAL_RGBI", "AERIAL-RLT_PAN", "SENTINEL2_TS", "AERIAL_LABEL-COSIA"):
        assert row[mod] == f"../{pid.relpath(mod)}"
        assert parse_file_name(pid.relpath(mod).name) == (
            HubPatchId("D006", "195X" if mod == "AERIAL-RLT_PAN" else "2020", "FF-S1-14", 5, 5),
            mod,
        )
    with pytest.raises(InputError, match=r"x.csv: patch id 'D006_2020_FF_5-5' does not parse"):
        parse_patch_id("D006_2020_FF_5-5", "x.csv")


def test_release_is_indexed_with_splits_dates_and_every_modality(release: dict) -> None:
    index = index_hub(release["root"])
    ids = [str(p) for p in release["ids"]]
    assert sorted(r.patch_id for r in index.records) == sorted(ids)
    assert index.split_origin == "GLOBAL_ALL_MTD_SPLIT.gpkg:split_1"
    want_split = dict(zip(ids, ["train", "train", "validation", "test", "train"], strict=True))
    for r in index.records:
        assert r.split == want_split[r.patch_id]
        assert r.dates == {"SENTINEL2": DATES}
        with rasterio.open(r.paths["AERIAL_RGBI"]) as src:  # read through /vsizip/ or not
            np.testing.assert_array_equal(src.read(), release["expected"][r.patch_id]["rgbi"])
        with rasterio.open(r.paths["AERIAL_LABEL-COSIA"]) as src:
            lab = src.read()
            np.testing.assert_array_equal(lab, release["expected"][r.patch_id]["cosia"])
            assert lab.max() <= 18  # 0-based
    in_zip = [r for r in index.records if r.paths["AERIAL_RGBI"].startswith("/vsizip/")]
    assert {r.domain for r in in_zip} == {release["ids"][0].domain}
    assert index.missing == {"DEM_ELEV": [ids[4]]}
    assert index.problems == []


def test_manifest_round_trip(release: dict, tmp_path: Path) -> None:
    index = index_hub(release["root"], split_column="split_flairchallenge")
    out = write_hub_manifest(index, tmp_path / "hub.csv")
    assert read_hub_manifest(out) == index.records


def test_subsets_of_modalities_and_domains(release: dict) -> None:
    dom = release["ids"][1].domain
    index = index_hub(release["root"], modalities=["AERIAL_RGBI"], domains=[dom.replace("-", "_")])
    assert {r.domain for r in index.records} == {dom}
    assert all(set(r.paths) == {"AERIAL_RGBI"} and r.dates == {} for r in index.records)
    with pytest.raises(InputError, match="unknown modality"):
        index_hub(release["root"], modalities=["AERIAL_RGB"])


def test_bad_files_are_named_and_left_out(release: dict, tmp_path: Path) -> None:
    root = tmp_path / "bad"
    shutil.copytree(release["root"], root)
    a, b = release["ids"][1], release["ids"][2]
    one_based = root / a.relpath("AERIAL_LABEL-COSIA")
    flair2 = release["expected"][str(a)]["cosia"] + 1  # 1-based, as a FLAIR #1/#2 MSK
    flair2[0, 0, 0] = 19  # FLAIR's class 19 ("other"): only a value above 18 tells it apart
    _write(one_based, flair2)
    short = root / b.relpath("SENTINEL2_TS")
    _write(short, np.zeros((20, 10, 10), "uint16"))  # 2 dates' bands, the row has 3
    small = root / b.relpath("SENTINEL2_MSK-SC")
    _write(small, np.zeros((6, 9, 9), "uint8"))
    index = index_hub(root)
    problems = {Path(p.path).name: p.reason for p in index.problems}
    assert problems == {
        one_based.name: "AERIAL_LABEL-COSIA: class 19 above 18: a 1-based FLAIR #1/#2 MSK? "
        "FLAIR-HUB's labels are 0-based (0..18); subtract 1",
        short.name: "SENTINEL2_TS: 20 bands where its dates row has 3 dates (10 bands a date: 30)",
        small.name: "SENTINEL2_MSK-SC: 9 x 9 px, expected 10 x 10",
    }
    rec = {r.patch_id: r for r in index.records}
    assert "AERIAL_LABEL-COSIA" not in rec[str(a)].paths
    assert "SENTINEL2_TS" not in rec[str(b)].paths
    assert str(a) in index.missing["AERIAL_LABEL-COSIA"]


def test_toy_split_csvs_area_overlap_and_area_disjoint(tmp_path: Path) -> None:
    if not TOY.is_dir():
        pytest.skip(f"FLAIR-HUB toy split CSVs not found at {TOY} (../shared is absent)")
    root = tmp_path / "toy"
    rows = {}
    for f in sorted(TOY.glob("*.csv")):
        (root / "csv").mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / "csv" / f.name)
        with f.open() as fh:
            split = {"TRAIN": "train", "VALID": "validation", "TEST": "test"}[
                f.stem.rsplit("_", 1)[1]
            ]
            rows.update({r["patch_id"]: split for r in csv.DictReader(fh)})
    label = np.zeros((1, 512, 512), "uint8")
    for pid in rows:
        _write(root / parse_patch_id(pid).relpath("AERIAL_LABEL-COSIA"), label)
    # independent count: areas (id without its row-col) per split
    areas = {
        s: {p.rsplit("_", 1)[0] for p, v in rows.items() if v == s} for s in set(rows.values())
    }
    shared = areas["train"] & areas["validation"]
    assert (len(shared), len(areas["validation"])) == (24, 46)  # the figure the issue measured

    index = index_hub(root, modalities=["AERIAL_LABEL-COSIA"])
    assert len(index.records) == 250 and index.missing == {} and index.problems == []
    assert {r.patch_id: r.split for r in index.records} == rows
    assert index.shared_areas == {("train", "validation"): sorted(shared)}
    assert index.warnings == [
        "24 of the 46 validation areas also appear in train (same area, other patches): "
        "validation scores are optimistic; --area-disjoint takes them out of train"
    ]
    disjoint = index_hub(root, modalities=["AERIAL_LABEL-COSIA"], area_disjoint=True)
    moved = {r.patch_id for r in disjoint.records if r.split == "excluded"}
    assert moved == {p for p, s in rows.items() if s == "train" and p.rsplit("_", 1)[0] in shared}
    assert disjoint.shared_areas == {}
    assert sum(r.split == "validation" for r in disjoint.records) == 50  # evaluation kept whole


def test_dates_follow_their_integer_index(tmp_path: Path) -> None:
    # IGN's sentinel_dates.py reads the JSON's values in order; the keys are indices: with
    # 12 dates, "10" and "11" sort before "2" as strings
    from flair_pipeline.sources.flair_hub import read_dates

    days = [f"2021{m:02d}15" for m in range(1, 13)]
    table = {str(k): d for k, d in reversed(list(enumerate(days)))}
    _gpkg(tmp_path / "d.gpkg", {"D006-2020_A_1-1": {"acquisition_dates": json.dumps(table)}})
    _gpkg(tmp_path / "bad.gpkg", {"D006-2020_A_1-1": {"acquisition_dates": '{"0": "2021-01-15"}'}})
    problems: list = []
    assert read_dates(tmp_path / "d.gpkg", problems) == {"D006-2020_A_1-1": tuple(days)}
    assert read_dates(tmp_path / "bad.gpkg", problems) == {} and len(problems) == 1
    assert problems[0].path.endswith("bad.gpkg:D006-2020_A_1-1")


def test_cli_writes_the_manifest_and_reports(release: dict, tmp_path: Path, capsys) -> None:
    from flair_pipeline.cli import main

    out = tmp_path / "m.csv"
    assert main(["import-flair-hub", str(release["root"]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    areas = {p.area for p in release["ids"]}
    domains = {p.domain for p in release["ids"]}
    assert f"5 patches in {len(areas)} areas of {len(domains)} domains" in text
    assert f"missing DEM_ELEV: 1 patch(es), e.g. {release['ids'][4]}" in text
    assert len(read_hub_manifest(out)) == 5
