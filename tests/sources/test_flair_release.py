"""Indexing official FLAIR release folders: real samples, broken copies, synthetic layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from flair_pipeline.errors import InputError
from flair_pipeline.sources.flair_release import (
    FIELDS,
    ReleaseIndex,
    format_report,
    index_release,
    normalise_crs,
    read_manifest,
    release_split,
    write_manifest,
)

LOCAL_CS = (
    'LOCAL_CS["RGF93 v1 / Lambert-93",UNIT["metre",1,AUTHORITY["EPSG","9001"]],'
    'AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)


@pytest.fixture
def real_copy(real_flair: Path, tmp_path: Path) -> Path:
    """A writable copy of the real samples (conftest's `real_flair` skips without them)."""
    return Path(shutil.copytree(real_flair, tmp_path / "release"))


def _msk_of(release: Path, patch_id: str) -> Path:
    return next(release.rglob(f"MSK_{patch_id}.tif"))


def _rewrite(path: Path, data: np.ndarray, **changes: Any) -> None:
    """Rewrite a GeoTIFF with new pixels and profile changes (size, transform …)."""
    with rasterio.open(path) as src:
        profile = src.profile
    profile.update(changes, height=data.shape[-2], width=data.shape[-1])
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data if data.ndim == 3 else data[None])


def _reasons(index: ReleaseIndex, needle: str) -> list[str]:
    return [p.path for p in index.problems if needle in p.reason]


def test_real_samples_index(real_flair: Path, tmp_path: Path) -> None:
    real = real_flair
    index = index_release(real)
    assert index.problems == []
    assert len(index.rows) == 5 and all(r.msk for r in index.rows)
    facts = {
        s["image"].removeprefix("IMG_"): s for s in json.loads((real / "samples.json").read_text())
    }
    for row in index.rows:
        fact = facts[row.patch_id]
        assert (row.domain, row.zone) == (fact["domain"], fact["zone"])
        assert abs(row.x_centroid - fact["centroid_x"]) < 1.0
        assert abs(row.y_centroid - fact["centroid_y"]) < 1.0
        assert row.crs == "EPSG:2154"  # the MSKs' LOCAL_CS was accepted as the same CRS
        assert (row.width, row.height, row.img_bands) == (512, 512, 5)
        assert Path(row.img_path).is_file() and Path(row.msk_path).is_file()
    assert {r.folder_split for r in index.rows} == {"train", "test"}
    assert {r.patch_id: r.split for r in index.rows}["084558"] == "test"
    assert {r.patch_id: r.official_split for r in index.rows}["000473"] == "validation"
    # D004_2021 is unpacked in flair_aerial_train but is an official validation domain
    val = next(r for r in index.rows if r.patch_id == "000473")
    assert (val.split, val.split_source, val.folder_split) == ("validation", "domain", "train")
    assert {r.has for r in index.rows} == {"img msk"}

    out = write_manifest(index, tmp_path / "out" / "manifest.csv")
    assert out.read_text().splitlines()[0] == ",".join(FIELDS)
    assert read_manifest(out) == index.rows
    report = format_report(index)
    assert "5 patches" in report and "D036_2020: 1" in report


def test_missing_msk_is_kept_without_labels(real_copy: Path) -> None:
    _msk_of(real_copy, "036294").unlink()
    index = index_release(real_copy)
    assert len(index.rows) == 5
    row = next(r for r in index.rows if r.patch_id == "036294")
    assert row.msk == "" and row.msk_path == ""
    assert _reasons(index, "no MSK") == [row.img]
    assert len(index.problems) == 1


def test_truncated_img_is_reported_and_dropped(real_copy: Path) -> None:
    img = next(real_copy.rglob("IMG_034217.tif"))
    img.write_bytes(img.read_bytes()[:100])
    index = index_release(real_copy)
    assert sorted(r.patch_id for r in index.rows) == ["000473", "036294", "050549", "084558"]
    assert _reasons(index, "unreadable") == [img.relative_to(real_copy).as_posix()]


@pytest.mark.parametrize("change", ["shift", "size"])
def test_msk_off_grid_is_reported(real_copy: Path, change: str) -> None:
    msk = _msk_of(real_copy, "050549")
    with rasterio.open(msk) as src:
        data, t = src.read(1), src.transform
    if change == "shift":
        _rewrite(msk, data, transform=Affine(t.a, t.b, t.c + 1.0, t.d, t.e, t.f))
    else:
        _rewrite(msk, data[:256, :256])
    index = index_release(real_copy)
    assert "050549" not in {r.patch_id for r in index.rows} and len(index.rows) == 4
    assert _reasons(index, "grid mismatch") == [msk.relative_to(real_copy).as_posix()]


@pytest.mark.parametrize("code", [0, 42])
def test_msk_code_out_of_range_is_reported(real_copy: Path, code: int) -> None:
    msk = _msk_of(real_copy, "000473")
    with rasterio.open(msk) as src:
        data = src.read(1)
    data[10, 10] = code
    _rewrite(msk, data)
    index = index_release(real_copy)
    assert len(index.rows) == 4
    assert [p.reason for p in index.problems] == [f"MSK values outside 1..19: [{code}]"]


def test_empty_or_missing_dir_raises(tmp_path: Path) -> None:
    (tmp_path / "empty" / "flair_aerial_train").mkdir(parents=True)
    with pytest.raises(InputError, match="empty"):
        index_release(tmp_path / "empty")
    with pytest.raises(InputError, match="nowhere"):
        index_release(tmp_path / "nowhere")


# --- synthetic releases: the module is tested without ../shared -------------------------


def _write(path: Path, data: np.ndarray, x0: float, y0: float, crs: Any, tiled: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = {"tiled": True, "blockxsize": 16, "blockysize": 16} if tiled else {}
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype="uint8",
        crs=crs,
        compress="zstd",
        transform=Affine(0.19999999999981, 0, x0, 0, -0.19999999999981, y0),
        **layout,
    ) as dst:
        dst.write(data)


def _patch(root: Path, split: str, domain: str, zone: str, pid: str, i: int, **kw: Any) -> None:
    """One IMG/MSK pair, 32 px, in the FLAIR #1 folder layout."""
    rng = np.random.default_rng(i)
    x0, y0 = 700_000.0 + 100 * i, 6_600_000.0
    img = rng.integers(0, 256, (kw.get("bands", 5), 32, 32), dtype=np.uint8)
    msk = rng.integers(1, 20, (1, 32, 32), dtype=np.uint8)
    tiled = i % 2 == 0
    _write(
        root / f"flair_aerial_{split}/{domain}/{zone}/img/IMG_{pid}.tif",
        img,
        x0,
        y0,
        "EPSG:2154",
        tiled,
    )
    if kw.get("msk", True):
        path = root / f"flair_labels_{split}/{domain}/{zone}/msk/MSK_{pid}.tif"
        _write(path, msk, x0, y0, CRS.from_wkt(LOCAL_CS) if i % 3 == 0 else "EPSG:2154", tiled)


def test_synthetic_release(tmp_path: Path) -> None:
    root = tmp_path / "rel"
    _patch(root, "train", "D006_2020", "Z1_UA", "000002", 2)
    _patch(root, "train", "D006_2020", "Z1_UA", "000001", 1)
    _patch(root, "train", "D006_2020", "Z2_AF", "000003", 3)
    _patch(root, "val", "D004_2021", "Z5_NU", "000010", 4)
    _patch(root, "test", "D015_2020", "Z9_UU", "000020", 6, msk=False)
    _patch(root, "train", "D007_2020", "Z1_UA", "000030", 5, bands=4)
    stray = root / "flair_aerial_train/misc/img/IMG_000099.tif"
    _write(stray, np.ones((5, 32, 32), np.uint8), 0, 0, "EPSG:2154", False)
    lone = root / "flair_labels_train/D006_2020/Z1_UA/msk/MSK_000077.tif"
    _write(lone, np.ones((1, 32, 32), np.uint8), 0, 0, "EPSG:2154", False)

    index = index_release(root, workers=2)
    assert [(r.domain, r.zone, r.patch_id) for r in index.rows] == [
        ("D004_2021", "Z5_NU", "000010"),
        ("D006_2020", "Z1_UA", "000001"),
        ("D006_2020", "Z1_UA", "000002"),
        ("D006_2020", "Z2_AF", "000003"),
        ("D015_2020", "Z9_UU", "000020"),
    ]
    rows = {r.patch_id: r for r in index.rows}
    assert rows["000010"].split == "validation" and rows["000020"].split == "test"
    assert rows["000010"].folder_split == "validation" and rows["000010"].split_source == "folder"
    assert rows["000001"].official_split == "train" and rows["000020"].msk == ""
    assert rows["000003"].crs == "EPSG:2154"  # its MSK has the LOCAL_CS quirk
    assert rows["000001"].x_centroid == pytest.approx(700_100.0 + 3.2, abs=1e-3)
    assert rows["000001"].y_centroid == pytest.approx(6_600_000.0 - 3.2, abs=1e-3)
    problems = {p.path: p.reason for p in index.problems}
    assert "no MSK" in problems["flair_aerial_test/D015_2020/Z9_UU/img/IMG_000020.tif"]
    assert "5 uint8 bands" in problems["flair_aerial_train/D007_2020/Z1_UA/img/IMG_000030.tif"]
    assert "<domain>/<zone>" in problems[stray.relative_to(root).as_posix()]
    assert "no IMG" in problems[lone.relative_to(root).as_posix()]
    assert len(problems) == 4

    csv_path = write_manifest(index, tmp_path / "manifest.csv")
    assert read_manifest(csv_path) == index.rows
    report = format_report(index)
    assert "validation: 1 patches" in report and "IMG_000030" in report


def test_crs_and_split_helpers() -> None:
    assert normalise_crs(CRS.from_wkt(LOCAL_CS)) == "EPSG:2154"
    assert normalise_crs(CRS.from_epsg(2154)) == "EPSG:2154"
    assert normalise_crs(None) == ""
    assert release_split("flair_2_aerial_test") == "test"
    assert release_split("flair_aerial_val") == "validation"
    assert release_split("aerial") == ""


def test_read_manifest_rejects_other_csv(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="expected columns"):
        read_manifest(bad)
