"""FLAIR-HUB export (issue 24, parts 3 and 4): a build here, read back as IGN's code reads it.

The reader below is written from IGN's FLAIR-HUB loader (``src/flair_hub/data/``: the
per-split CSV's path columns, ``read_patch``, ``reshape_sentinel`` date-major, the dates row
keyed by ``"_".join([parts[0], parts[-2], parts[-1][:-4]])`` of the label file name,
``acquisition_dates`` as JSON ``{index: "YYYYMMDD"}``), not from the exporter. Pixels are
checked against the dataset's own files (IMG bands 1-4; the MSK's class names looked up in
IGN's COSIA style, whose order differs from FLAIR #1/#2's) and the Sentinel-2 windows
against an area-weighted mean computed here with plain loops over the 10 m pixels.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from flair_pipeline.errors import InputError
from flair_pipeline.layout import DatasetLayout
from flair_pipeline.nomenclature import CLASSES
from flair_pipeline.release.flair_hub_export import export_flair_hub
from flair_pipeline.sentinel2.series import super_areas
from flair_pipeline.sources.flair_hub import index_hub
from tests.conftest import REPO

COSIA_QML = (
    REPO.parent
    / "shared/real-samples/flair-metadata/flair_hub_qml/flair-hub-qgis-style-cosia-num.qml"
)


def _name(text: str) -> str:
    text = text.lower().replace("-", " ").replace("_", " ")
    return "swimming pool" if text == "swimmin pool" else text  # the .qml's own typo


def _cosia_lut() -> np.ndarray:
    """MSK code -> COSIA class, by class name, from IGN's COSIA style (not the exporter)."""
    if not COSIA_QML.is_file():
        pytest.skip(f"FLAIR-HUB styles not found at {COSIA_QML} (../shared is absent)")
    labels = re.findall(r'label="(\d+) - ([^"]*)"', COSIA_QML.read_text())
    cosia = {_name(name): int(code) for code, name in labels}
    assert len(cosia) == 19
    lut = np.full(256, 255, np.uint8)  # 255: unlabelled, the file's nodata
    for c in CLASSES:
        lut[c.code] = cosia[_name(c.name)]
    return lut


@pytest.fixture(scope="module")
def exported(tiny_dataset, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root, _ = tiny_dataset
    out = tmp_path_factory.mktemp("hub_export") / "FLAIR-HUB"
    report = export_flair_hub(root, out, name="TINY")
    meta = json.loads((out / "export_metadata.json").read_text())
    return {"root": root, "out": out, "report": report, "ids": meta["patch_ids"]}


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def _ign_reader(out: Path) -> dict[str, dict]:
    """Every patch of the export read as IGN's loader reads it (independent of the exporter)."""
    dates = gpd.read_file(out / "GLOBAL_ALL_MTD" / "GLOBAL_SENTINEL2_MTD_DATES.gpkg")
    by_area = {
        r.patch_id: [
            d for _, d in sorted(json.loads(r.acquisition_dates).items(), key=lambda kv: int(kv[0]))
        ]
        for r in dates.itertuples()
    }
    seen = {}
    for f in sorted((out / "csv").glob("FLAIR-HUB_TINY_*.csv")):
        split = f.stem.rsplit("_", 1)[1]
        with f.open() as fh:
            for row in csv.DictReader(fh):
                files = {
                    k: (f.parent / v).resolve() for k, v in row.items() if k != "patch_id" and v
                }
                rgbi, lab = _read(files["AERIAL_RGBI"]), _read(files["AERIAL_LABEL-COSIA"])
                assert rgbi.shape[0] == 4 and rgbi.dtype == np.uint8
                assert lab.shape == (1, *rgbi.shape[1:]) and lab.dtype == np.uint8
                assert set(np.unique(lab)) <= set(range(19)) | {255}  # 0-based, 255 nodata
                parts = files["AERIAL_LABEL-COSIA"].name.split("_")
                area_elem = "_".join([parts[0], parts[-2], parts[-1].split(".")[0]])
                assert area_elem == row["patch_id"]
                s2 = _read(files["SENTINEL2_TS"])
                sc = _read(files["SENTINEL2_MSK-SC"])
                t = len(by_area[area_elem])
                assert s2.shape == (10 * t, 10, 10) and sc.shape == (2 * t, 10, 10)
                s2 = s2.reshape(t, 10, 10, 10)  # reshape_sentinel(chunk_size=10)
                sc = sc.reshape(t, 2, 10, 10)
                assert sc.max() <= 100
                seen[row["patch_id"]] = {
                    "split": split,
                    "rgbi": rgbi,
                    "label": lab,
                    "s2": s2,
                    "sc": sc,
                    "dates": by_area[area_elem],
                    "files": files,
                }
    return seen


def _area_mean(stack: np.ndarray, left: float, top: float, bounds: tuple) -> np.ndarray:
    """(bands, 10, 10): each cell the overlap-area-weighted mean of the 10 m pixels."""
    x0, y0, x1, y1 = bounds
    w, h = (x1 - x0) / 10, (y1 - y0) / 10
    out = np.zeros((stack.shape[0], 10, 10))
    for i in range(10):
        for j in range(10):
            cl, cr, ct, cb = x0 + j * w, x0 + (j + 1) * w, y1 - i * h, y1 - (i + 1) * h
            acc, tot = np.zeros(stack.shape[0]), 0.0
            for r in range(stack.shape[1]):
                for c in range(stack.shape[2]):
                    pl, pr, pt, pb = (
                        left + 10 * c,
                        left + 10 * (c + 1),
                        top - 10 * r,
                        top - 10 * (r + 1),
                    )
                    a = max(0.0, min(cr, pr) - max(cl, pl)) * max(0.0, min(ct, pt) - max(cb, pb))
                    if a > 0:
                        acc += a * stack[:, r, c]
                        tot += a
            out[:, i, j] = acc / tot
    return out


def test_export_reads_as_ign_reads_it_with_the_same_pixels(exported: dict) -> None:
    root, report = exported["root"], exported["report"]
    seen = _ign_reader(exported["out"])
    assert len(seen) == report.patches == report.with_s2 > 0
    splits = {
        r["domain"]: r["split"] for r in csv.DictReader((root / "metadata" / "splits.csv").open())
    }
    layout = DatasetLayout(root)
    grids = {}
    for hub_id, got in seen.items():
        own = exported["ids"][hub_id]  # IMG_<id>
        img = next(root.glob(f"aerial/*/*/img/{own}.tif"))
        msk = next(root.glob(f"labels/*/*/msk/{own.replace('IMG_', 'MSK_')}.tif"))
        domain, zone = img.parts[-4], img.parts[-3]
        assert (
            got["split"]
            == {"train": "TRAIN", "validation": "VALID", "test": "TEST"}[splits[domain]]
        )
        np.testing.assert_array_equal(got["rgbi"], _read(img)[:4])
        # COSIA orders its classes differently: not MSK - 1 but the class of the same name
        np.testing.assert_array_equal(got["label"], _cosia_lut()[_read(msk)])
        # the zone's super-area, where the Sentinel-2 build put it, and its products' dates
        if domain not in grids:
            grids[domain] = {
                a.zone: a for a in super_areas(gpd.read_file(layout.patch_grid(domain)), 40, 4096)
            }
        area = grids[domain][zone]
        prefix = layout.sen_file(domain, zone, "data").with_name(f"SEN2_sp_{domain}-{zone}")
        data = np.load(f"{prefix}_data.npy")
        products = Path(f"{prefix}_products.txt").read_text().split()
        assert got["dates"] == [p.split("_")[2][:8] for p in products]
        with rasterio.open(img) as src:
            bounds = tuple(src.bounds)
        t = data.shape[0]
        want = _area_mean(
            data.reshape(t * 10, *data.shape[2:]).astype(float),
            area.grid.left,
            area.grid.top,
            bounds,
        )
        np.testing.assert_allclose(got["s2"].reshape(t * 10, 10, 10), want, atol=1.0)


def test_export_then_import_gives_the_same_records(exported: dict) -> None:
    out = exported["out"]
    strict = index_hub(out)  # 64 px patches: every aerial file is refused for its size only
    assert {p.reason for p in strict.problems} == {
        f"{m}: 64 x 64 px, expected 512 x 512" for m in ("AERIAL_RGBI", "AERIAL_LABEL-COSIA")
    }
    index = index_hub(out, check_size=False)
    seen = _ign_reader(out)
    assert index.problems == [] and index.missing == {}
    assert {r.patch_id for r in index.records} == set(seen)
    for r in index.records:
        assert (
            r.split
            == {"TRAIN": "train", "VALID": "validation", "TEST": "test"}[seen[r.patch_id]["split"]]
        )
        assert r.dates == {"SENTINEL2": tuple(seen[r.patch_id]["dates"])}
        assert {k: Path(v) for k, v in r.paths.items()} == seen[r.patch_id]["files"]


def test_not_flair_hub_size_is_said_and_an_existing_folder_refused(exported: dict) -> None:
    report = exported["report"]
    assert any("not FLAIR-HUB's 512 px at 0.2 m" in w for w in report.warnings)
    with pytest.raises(InputError, match="already exists; export into a new folder"):
        export_flair_hub(exported["root"], exported["out"])
    assert not list(exported["out"].parent.glob(".*.partial"))  # nothing left behind


def test_crop_labels_exported_as_all_label_lpis(
    tiny_dataset, tiny_world, exported: dict, tmp_path: Path
) -> None:
    """With crop labels built, each patch's ALL_LABEL-LPIS is its CROP file, read as IGN does.

    IGN's loader reads the CSV's path column and the band ``label_channel_nomenclature``
    (1) of the file; the export without crop labels has no such column.
    """
    import shutil

    from flair_pipeline.config import load_config
    from flair_pipeline.dataset.crop_step import build_domain_crop_labels
    from flair_pipeline.dataset.domain_context import DomainContext
    from flair_pipeline.layout import RawLayout

    root, params = tiny_dataset
    for f in (exported["out"] / "csv").glob("*.csv"):  # no crop labels, no column
        assert "ALL_LABEL-LPIS" not in f.read_text().splitlines()[0]
    copy = tmp_path / "dataset"
    shutil.copytree(root, copy)
    cfg = load_config(params)
    raw = RawLayout(tiny_world.out)
    for domain in sorted(p.name for p in (copy / "aerial").iterdir()):
        rep = build_domain_crop_labels(DomainContext.open(domain, raw, DatasetLayout(copy), cfg))
        assert rep.passed and rep.written
    out = tmp_path / "FLAIR-HUB"
    report = export_flair_hub(copy, out, name="TINY")
    ids = json.loads((out / "export_metadata.json").read_text())["patch_ids"]
    crops = {p.stem.removeprefix("CROP_"): p for p in (copy / "crop_labels").rglob("CROP_*.tif")}
    rows = 0
    for f in sorted((out / "csv").glob("FLAIR-HUB_TINY_*.csv")):
        with f.open() as fh:
            for row in csv.DictReader(fh):
                lpis = (f.parent / row["ALL_LABEL-LPIS"]).resolve()
                with rasterio.open(lpis) as src:
                    level1 = src.read(1)  # label_channel_nomenclature: 1
                    got, nodata = src.read(), src.nodata
                want = _read(crops[ids[row["patch_id"]].removeprefix("IMG_")])
                np.testing.assert_array_equal(got, want)
                assert level1.max() <= 22 and nodata == 255
                rows += 1
    assert rows == report.patches == report.with_lpis == len(crops)
    index = index_hub(out, check_size=False)  # the importer takes it back
    assert index.problems == [] and all("ALL_LABEL-LPIS" in r.paths for r in index.records)


def test_hub_release_stage_indexes_a_release_or_copies_a_manifest(
    exported: dict, tmp_path: Path
) -> None:
    # the `hub_release` stage with params.yaml's hub.release / hub.manifest (issue 24); the
    # export branch (both null) runs in tests/training/test_assets.py
    from flair_pipeline.release.flair_hub_export import hub_manifest

    root, out = exported["root"], exported["out"]
    rel = hub_manifest(root, tmp_path / "rel", tmp_path / "rel.csv", release=out)
    assert rel.source == "release"
    assert json.loads((tmp_path / "rel" / "source.json").read_text())["release"] == str(out)
    # a release is indexed at FLAIR-HUB's size: the 64 px files are named, not silently kept
    assert any("64 x 64 px, expected 512 x 512" in w for w in rel.warnings)
    with (tmp_path / "rel.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    want: dict[str, int] = {}
    for row in rows:
        want[row["split"]] = want.get(row["split"], 0) + 1
    assert dict(rel.patches) == want
    # hub.manifest wins over hub.release: checked, then copied as it is
    man = hub_manifest(
        root, tmp_path / "man", tmp_path / "man.csv", release=out, manifest=tmp_path / "rel.csv"
    )
    assert man.source == "manifest" and dict(man.patches) == want
    assert (tmp_path / "man.csv").read_bytes() == (tmp_path / "rel.csv").read_bytes()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"bad\.csv: not a FLAIR-HUB manifest"):
        hub_manifest(root, tmp_path / "x", tmp_path / "x.csv", manifest=bad)
    assert not (tmp_path / "x.csv").exists()


def _nan_area_mean(stack: np.ndarray, left: float, top: float, bounds: tuple) -> np.ndarray:
    """`_area_mean` leaving NaN pixels out (NaN where a cell overlaps no measured pixel)."""
    x0, y0, x1, y1 = bounds
    w, h = (x1 - x0) / 10, (y1 - y0) / 10
    out = np.full((stack.shape[0], 10, 10), np.nan)
    for b in range(stack.shape[0]):
        for i in range(10):
            for j in range(10):
                cl, cr, ct, cb = x0 + j * w, x0 + (j + 1) * w, y1 - i * h, y1 - (i + 1) * h
                acc = tot = 0.0
                for r in range(stack.shape[1]):
                    for c in range(stack.shape[2]):
                        v = stack[b, r, c]
                        pl, pt = left + 10 * c, top - 10 * r
                        a = max(0.0, min(cr, pl + 10) - max(cl, pl)) * max(
                            0.0, min(ct, pt) - max(cb, pt - 10)
                        )
                        if a > 0 and np.isfinite(v):
                            acc += a * v
                            tot += a
                if tot > 0:
                    out[b, i, j] = acc / tot
    return out


def test_sentinel1_series_exported_per_orbit_and_read_back(
    tiny_dataset, exported: dict, tmp_path: Path
) -> None:
    """Each zone's Sentinel-1 series (issue 25) becomes SENTINEL1-{ASC,DESC}_TS with its dates
    GeoPackage: read as IGN's loader reads them (CSV path, ``reshape_sentinel`` chunk 2, the
    dates row of the patch id), the windows equal an area mean computed here by loops; the
    importer and the FLAIR-HUB dataset take them back with the same values and dates."""
    import datetime as dt
    import shutil

    from flair_pipeline.sentinel1.provider import RECORD_KEYS, S1Series
    from flair_pipeline.sentinel1.series import write_s1_series
    from flair_pipeline.training.hub_config import HubTrainConfig
    from flair_pipeline.training.hub_data import HubDataset

    root, _ = tiny_dataset
    for f in (exported["out"] / "csv").glob("*.csv"):  # no series, no column
        assert "SENTINEL1" not in f.read_text().splitlines()[0]
    copy = tmp_path / "dataset"
    shutil.copytree(root, copy)
    layout = DatasetLayout(copy)
    rng = np.random.default_rng(25)
    written: dict[tuple[str, str, str], tuple[np.ndarray, list[str], object]] = {}
    for domain in sorted(p.name for p in (copy / "aerial").iterdir()):
        for area in super_areas(gpd.read_file(layout.patch_grid(domain)), 40, 4096):
            for orbit, n in (("ascending", 3), ("descending", 4)):
                g = area.grid
                data = rng.gamma(4.4, 0.05 / 4.4, (n, 2, g.height, g.width)).astype(np.float32)
                data[0, :, :3, :3] = np.nan  # no measurement in a corner of the first date
                dates = [
                    dt.date(2021, 1, 5) + dt.timedelta(days=12 * k + (orbit == "ascending"))
                    for k in range(n)
                ]
                recs = [
                    {k: None for k in RECORD_KEYS}
                    | {"date": str(d), "coefficient": "gamma0", "units": "linear"}
                    for d in dates
                ]
                write_s1_series(layout, area, S1Series(g, orbit, data, dates, recs))  # type: ignore[arg-type]
                code = "ASC" if orbit == "ascending" else "DESC"
                written[(domain, area.zone, code)] = (data, [f"{d:%Y%m%d}" for d in dates], g)
    out = tmp_path / "FLAIR-HUB"
    report = export_flair_hub(copy, out, name="TINY")
    ids = json.loads((out / "export_metadata.json").read_text())["patch_ids"]
    mtd = out / "GLOBAL_ALL_MTD"
    rows = 0
    for code in ("ASC", "DESC"):
        dates_gdf = gpd.read_file(mtd / f"GLOBAL_SENTINEL1-{code}_MTD_DATES.gpkg")
        by_id = {
            r.patch_id: [
                d
                for _, d in sorted(
                    json.loads(r.acquisition_dates).items(), key=lambda kv: int(kv[0])
                )
            ]
            for r in dates_gdf.itertuples()
        }
        for f in sorted((out / "csv").glob("FLAIR-HUB_TINY_*.csv")):
            with f.open() as fh:
                for row in csv.DictReader(fh):
                    path = (f.parent / row[f"SENTINEL1-{code}_TS"]).resolve()
                    with rasterio.open(path) as src:
                        got, nodata, dtype = src.read(), src.nodata, src.dtypes[0]
                    assert dtype == "float32" and np.isnan(nodata)
                    own = ids[row["patch_id"]]
                    img = next(copy.glob(f"aerial/*/*/img/{own}.tif"))
                    domain, zone = img.parts[-4], img.parts[-3]
                    data, days, g = written[(domain, zone, code)]
                    t = len(days)
                    assert got.shape == (2 * t, 10, 10)
                    got = got.reshape(t, 2, 10, 10)  # reshape_sentinel(chunk_size=2): VV, VH
                    assert by_id[row["patch_id"]] == days
                    with rasterio.open(img) as src:
                        bounds = tuple(src.bounds)
                    want = _nan_area_mean(
                        data.reshape(t * 2, *data.shape[2:]).astype(float), g.left, g.top, bounds
                    )
                    np.testing.assert_allclose(
                        got.reshape(t * 2, 10, 10), want, rtol=1e-5, equal_nan=True
                    )
                    rows += 1
    assert rows == 2 * report.patches
    assert report.with_s1 == {
        "SENTINEL1-ASC_TS": report.patches,
        "SENTINEL1-DESC_TS": report.patches,
    }
    index = index_hub(out, check_size=False)  # the importer takes it back
    assert index.problems == []
    cfg = HubTrainConfig(inputs=("AERIAL_RGBI", "SENTINEL1-ASC_TS", "SENTINEL1-DESC_TS"))
    for r in index.records:
        ds = HubDataset([r], cfg)
        assert len(ds) == 1, ds.left_out
        sample = ds[0]
        for code in ("ASC", "DESC"):
            mod = f"SENTINEL1-{code}_TS"
            assert r.dates[f"SENTINEL1-{code}"] == tuple(
                json.loads(
                    gpd.read_file(mtd / f"GLOBAL_SENTINEL1-{code}_MTD_DATES.gpkg")
                    .set_index("patch_id")
                    .loc[r.patch_id, "acquisition_dates"]
                ).values()
            )
            with rasterio.open(r.paths[mod]) as src:
                file_vals = src.read().reshape(-1, 2, 10, 10)
            np.testing.assert_array_equal(sample[mod].numpy(), file_vals)
