"""Importing a complete FLAIR release: S2 super-areas, the two JSONs, official split files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from flair_pipeline.config import S2Preprocessing
from flair_pipeline.models.metadata_mlp import _minutes
from flair_pipeline.sources.flair_release import (
    format_report,
    index_release,
    read_manifest,
    write_manifest,
)
from flair_pipeline.sources.flair_release_extras import (
    ReleaseExtras,
    read_metadata,
    read_split_csv,
    split_of_file,
)
from flair_pipeline.training.records import from_manifest
from flair_pipeline.training.samples import ZoneSeries, s2_window
from tests.flair2_release import CENTROIDS, PRODUCTS, TIMES, Z, make_flair2_release
from tests.sources.test_flair_release import _patch

REAL_META = Path(__file__).resolve().parents[2].parent / "shared/real-samples/flair-metadata"


@pytest.fixture
def real_meta() -> Path:
    if not REAL_META.is_dir():
        pytest.skip(f"real FLAIR metadata not found at {REAL_META} (../shared is absent)")
    return REAL_META


@pytest.fixture
def flair2(real_flair: Path, tmp_path: Path):
    return make_flair2_release(real_flair, tmp_path / "FLAIR2")


def test_flair2_release_imports_everything(flair2, tmp_path: Path) -> None:
    index = index_release(flair2.root, workers=2)
    assert index.problems == []
    assert len(index.rows) == 5
    assert {r.has for r in index.rows} == {"img msk metadata centroid sen2"}
    split = {r.patch_id: (r.split, r.split_source) for r in index.rows}
    assert split == {
        "000473": ("validation", "domain"),  # FLAIR-2 ships D004 inside flair_aerial_train
        "034217": ("train", "folder"),
        "036294": ("train", "folder"),
        "050549": ("train", "folder"),
        "084558": ("test", "folder"),
    }
    out = write_manifest(index, tmp_path / "m.csv")
    assert read_manifest(out) == index.rows
    report = format_report(index)
    assert "sen2 5" in report and "flair-2_aerial_metadata.json" in report

    raw = json.loads((flair2.root / "flair-2_aerial_metadata.json").read_text())
    series = ZoneSeries()
    for rec in from_manifest(out):
        pid = rec.patch_id
        assert rec.meta == raw[f"IMG_{pid}"]  # verbatim: HHhMM, camera, negative/float z
        assert rec.meta["time"] == TIMES[pid] and rec.meta["patch_centroid_z"] == Z[pid]
        assert rec.centroid == CENTROIDS[pid]
        h, m = (int(v) for v in TIMES[pid].split("h"))
        assert _minutes(rec.meta) == 60 * h + m
        # the window training cuts: FLAIR-2's [row-20:row+20, col-20:col+20] of the super-area
        win, doy = s2_window(rec, series, S2Preprocessing(window=40))
        data, _ = flair2.series[(rec.domain, rec.zone)]
        r, c = CENTROIDS[pid]
        np.testing.assert_array_equal(win, data[:, :, r - 20 : r + 20, c - 20 : c + 20])
        days = [_doy(p) for p in PRODUCTS]  # no cloud filter: every date
        assert doy.tolist() == days


def _doy(product: str) -> int:
    """Day of year from an ESA name by position (FLAIR-2 reads MMDD at characters 15-18)."""
    day = dt.date(int(product[11:15]), int(product[15:17]), int(product[17:19]))
    return day.timetuple().tm_yday


def test_window_outside_super_area_and_missing_metadata_are_reported(flair2) -> None:
    cents = flair2.root / "flair-2_centroids_sp_to_patch.json"
    c = json.loads(cents.read_text())
    c["IMG_034217.tif"] = [5, 30]  # a 40 px window would start at row -15
    cents.write_text(json.dumps(c))
    meta_f = flair2.root / "flair-2_aerial_metadata.json"
    m = json.loads(meta_f.read_text())
    del m["IMG_050549"]
    meta_f.write_text(json.dumps(m))

    index = index_release(flair2.root, workers=2)
    assert len(index.rows) == 5  # both kept
    rows = {r.patch_id: r for r in index.rows}
    assert rows["034217"].has == "img msk metadata centroid" and rows["034217"].sen_prefix == ""
    assert rows["050549"].has == "img msk centroid sen2" and rows["050549"].metadata == ""
    reasons = {p.path.rsplit("/", 1)[-1]: p.reason for p in index.problems}
    assert set(reasons) == {"IMG_034217.tif", "IMG_050549.tif"}
    assert "leaves the 48×48 super-area" in reasons["IMG_034217.tif"]
    assert "no aerial-metadata entry" in reasons["IMG_050549.tif"]
    # a smaller window fits: the check follows the window asked for
    small = index_release(flair2.root, workers=2, window=8)
    assert {r.patch_id: r.has for r in small.rows}["034217"].endswith("sen2")


def test_broken_super_area_is_reported_not_fatal(flair2) -> None:
    products = next(flair2.root.rglob("SEN2_sp_D074_2020-Z3_UN_products.txt"))
    products.write_text("\n".join(PRODUCTS[:3]) + "\n")
    index = index_release(flair2.root, workers=2)
    assert len(index.rows) == 5
    assert [p.reason for p in index.problems] == [
        f"3 products in {products.name} for 4 dates; zone left without S2"
    ]
    assert "sen2" not in {r.patch_id: r.has for r in index.rows}["050549"]


def test_split_file_names() -> None:
    assert split_of_file("flair-1-paths-toy-val.csv") == "validation"
    assert split_of_file("flair-1-paths-test.csv") == "test"
    assert split_of_file("flair-1-paths-train.csv") == "train"
    assert split_of_file("flair-1-paths.csv") == ""


def test_real_flair1_split_csvs(real_meta: Path, tmp_path: Path) -> None:
    """The official headerless CSVs: every row read, the split from the file name."""
    extras = ReleaseExtras()
    for name in ("csv_full/flair-1-paths-val.csv", "csv_full/flair-1-paths-test.csv"):
        read_split_csv(real_meta / "flair1_splits" / name, real_meta, extras)
    lines = {
        s: (real_meta / f"flair1_splits/csv_full/flair-1-paths-{s}.csv").read_text().split()
        for s in ("val", "test")
    }
    assert extras.problems == []
    counts = {
        s: sum(1 for v in extras.split_of.values() if v[0] == s) for s in ("validation", "test")
    }
    assert counts == {"validation": len(lines["val"]), "test": len(lines["test"])}
    first_val = lines["val"][0].split(",")[0].rsplit("IMG_", 1)[1].removesuffix(".tif")
    assert extras.split_of[first_val][0] == "validation"

    # a release holding one listed patch of each: the file decides, not the folder
    val_id = first_val
    val_dom, val_zone = lines["val"][0].split("/")[2:4]
    test_dom, test_zone = lines["test"][0].split("/")[3:5]
    test_id = lines["test"][0].split(",")[0].rsplit("IMG_", 1)[1].removesuffix(".tif")
    root = tmp_path / "rel"
    _patch(root, "train", val_dom, val_zone, val_id, 1)
    _patch(root, "train", test_dom, test_zone, test_id, 2)  # misplaced in a train folder
    csvs = [
        real_meta / "flair1_splits/csv_full" / f"flair-1-paths-{s}.csv" for s in ("val", "test")
    ]
    index = index_release(root, workers=1, split_files=csvs)
    got = {r.patch_id: (r.split, r.split_source.split("/")[-1]) for r in index.rows}
    assert got == {
        val_id: ("validation", "flair-1-paths-val.csv"),
        test_id: ("test", "flair-1-paths-test.csv"),
    }


def test_hub_csv_with_header_is_not_a_split_file(real_meta: Path) -> None:
    extras = ReleaseExtras()
    path = real_meta / "flair_hub_toy_splits/FLAIR-HUB_TOY-DATASET_TEST.csv"
    read_split_csv(path, real_meta, extras)
    assert extras.split_of == {}
    assert extras.problems == [
        (
            "flair_hub_toy_splits/FLAIR-HUB_TOY-DATASET_TEST.csv",
            "no IMG_<id>.tif path in the first column; not a split file",
        )
    ]


def test_real_flair1_metadata(real_meta: Path, tmp_path: Path) -> None:
    """The official toy metadata, keyed IMG_<id> without .tif: joined to the patch by id."""
    raw = json.loads((real_meta / "flair-one_TOY_metadata.json").read_text())
    extras = ReleaseExtras()
    read_metadata(real_meta / "flair-one_TOY_metadata.json", real_meta, extras)
    assert len(extras.metadata) == len(raw) == 250
    neg = [k for k, v in raw.items() if v["patch_centroid_z"] < 0]
    assert neg and extras.metadata[neg[0].removeprefix("IMG_")] == raw[neg[0]]

    root = tmp_path / "rel"
    e = raw["IMG_000717"]
    _patch(root, "train", e["domain"], e["zone"], "000717", 1)
    _patch(root, "train", e["domain"], e["zone"], "000001", 2)  # not in the toy metadata
    index = index_release(root, workers=1, metadata=[real_meta / "flair-one_TOY_metadata.json"])
    rows = {r.patch_id: r for r in index.rows}
    assert json.loads(rows["000717"].metadata) == e and e["time"] == "08h06"
    assert [p.reason for p in index.problems] == [
        "no aerial-metadata entry (unet-meta encodes it unknown)"
    ]
    assert "metadata" not in rows["000001"].has
