"""export-flair: our tiny dataset in the FLAIR-2 release layout, read back the release's way.

Lives beside the training tests to share their built `tiny_dataset` (one build a session).
The reader below follows IGNF/FLAIR-2's own loader (src/load_data.py, src/dataset.py), not
this project's code: domains from ``os.listdir`` of the labels folder, zones from the aerial
folder, files by glob, the centroid by IMG file name, a ``[row-20:row+20, col-20:col+20]``
crop, the date at characters 15-18 of each product line, metadata by ``IMG_<id>``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from click.testing import CliRunner

from flair_pipeline.cli import cli
from flair_pipeline.config import S2Preprocessing
from flair_pipeline.errors import InputError
from flair_pipeline.models.metadata_mlp import MetadataEncoding
from flair_pipeline.release.flair_stac import validate_offline
from flair_pipeline.sources.flair_release import index_release, write_manifest
from flair_pipeline.training.records import from_dataset, from_manifest
from flair_pipeline.training.samples import ZoneSeries, s2_window

PARTS = {
    "train": ("flair_aerial_train", "flair_labels_train", "flair_sen_train"),
    "test": ("flair_2_aerial_test", "flair_2_labels_test", "flair_2_sen_test"),
}
HALF = 20  # sat_patch_size 40


def flair2_read(root: Path) -> dict[str, dict]:
    """Every patch as FLAIR-2's loader sees it, keyed by IMG file name."""
    cents = json.loads((root / "flair-2_centroids_sp_to_patch.json").read_text())
    meta = json.loads((root / "flair-2_aerial_metadata.json").read_text())
    out = {}
    for status, (aerial, labels, sen) in PARTS.items():
        for domain in os.listdir(root / labels):
            for area in os.listdir(root / aerial / domain):
                imgs = sorted(
                    (root / aerial / domain / area).rglob("IMG*.tif"),
                    key=lambda p: int(p.as_posix().split("_")[-1][:-4]),
                )
                msks = sorted(
                    (root / labels / domain / area).rglob("MSK*.tif"),
                    key=lambda p: int(p.as_posix().split("_")[-1][:-4]),
                )
                (data_f,) = (root / sen / domain / area).rglob("*data.npy")
                (masks_f,) = (root / sen / domain / area).rglob("*masks.npy")
                (prod_f,) = (root / sen / domain / area).rglob("*products.txt")
                data, masks = np.load(data_f), np.load(masks_f)
                lines = prod_f.read_text().splitlines()
                for img, msk in zip(imgs, msks, strict=True):
                    r, c = cents[img.name]
                    m = meta[img.name[:-4]]
                    h, mi = m["time"].split("h")
                    out[img.name] = {
                        "status": status,
                        "domain": domain,
                        "zone": area,
                        "img": img,
                        "msk": msk,
                        "s2": data[:, :, r - HALF : r + HALF, c - HALF : c + HALF],
                        "s2_masks": masks[:, :, r - HALF : r + HALF, c - HALF : c + HALF],
                        "mmdd": [(int(x[15:19][:2]), int(x[15:19][2:])) for x in lines],
                        "meta": m,
                        "minutes": int(h) * 60 + int(mi),
                    }
    return out


@pytest.fixture(scope="module")
def exported(tiny_dataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    dataset, params = tiny_dataset
    out = tmp_path_factory.mktemp("export") / "FLAIR2"
    res = CliRunner().invoke(
        cli, ["export-flair", "--out", str(out), "--data", str(dataset), "--config", str(params)]
    )
    assert res.exit_code == 0, res.output
    return dataset, out


def test_export_reads_back_with_flair2_conventions(exported) -> None:
    dataset, out = exported
    ours = from_dataset(dataset)
    theirs = flair2_read(out)
    coll = pystac.Collection.from_file(str(out / "stac" / "collection.json"))
    assert validate_offline(
        coll
    )  # the export describes itself (validation details: test_flair_stac)
    assert len(list(coll.get_items(recursive=True))) == len({(r.domain, r.zone) for r in ours})
    assert sorted(theirs) == sorted(f"IMG_{r.patch_id}.tif" for r in ours)
    mask = os.umask(0)
    os.umask(mask)
    for rec in ours:
        got = theirs[f"IMG_{rec.patch_id}.tif"]
        assert got["status"] == ("test" if rec.split == "test" else "train")
        assert (got["domain"], got["zone"]) == (rec.domain, rec.zone)
        assert got["img"].read_bytes() == rec.img.read_bytes()
        assert got["msk"].read_bytes() == rec.msk.read_bytes()
        assert got["img"].stat().st_mode & 0o777 == 0o666 & ~mask
        # the window: our own series, our centroid, cut by plain numpy
        data = np.load(f"{rec.sen_prefix}_data.npy")
        masks = np.load(f"{rec.sen_prefix}_masks.npy")
        r, c = rec.centroid
        np.testing.assert_array_equal(
            got["s2"], data[:, :, r - HALF : r + HALF, c - HALF : c + HALF]
        )
        np.testing.assert_array_equal(
            got["s2_masks"], masks[:, :, r - HALF : r + HALF, c - HALF : c + HALF]
        )
        assert got["s2"].shape[-2:] == (40, 40)
        ours_dates = [
            dt.date.fromisoformat(tok[:4] + "-" + tok[4:6] + "-" + tok[6:8])
            for p in Path(f"{rec.sen_prefix}_products.txt").read_text().split()
            for tok in [p.split("_")[2]]
        ]
        assert got["mmdd"] == [(d.month, d.day) for d in ours_dates]
        for key in ("patch_centroid_x", "patch_centroid_y", "patch_centroid_z", "camera", "date"):
            assert got["meta"][key] == rec.meta[key]
        hh, mm = str(rec.meta["time"]).split(":")[:2]  # ours: HH:MM:SS
        assert got["minutes"] == int(hh) * 60 + int(mm)
        assert "h" in got["meta"]["time"] and ":" not in got["meta"]["time"]


def test_export_then_import_gives_the_same_records(exported, tmp_path: Path) -> None:
    dataset, out = exported
    index = index_release(out, workers=2)
    assert index.problems == []
    back = {r.patch_id: r for r in from_manifest(write_manifest(index, tmp_path / "m.csv"))}
    ours = from_dataset(dataset)
    assert sorted(back) == sorted(r.patch_id for r in ours)
    enc = MetadataEncoding.fit([r.meta for r in ours if r.split == "train"])
    series_a, series_b, opts = ZoneSeries(), ZoneSeries(), S2Preprocessing(window=40)
    for rec in ours:
        b = back[rec.patch_id]
        assert (b.domain, b.zone, b.split, b.centroid) == (
            rec.domain,
            rec.zone,
            str(rec.split),
            rec.centroid,
        )
        with rasterio.open(b.img) as x, rasterio.open(rec.img) as y:
            np.testing.assert_array_equal(x.read(), y.read())
        # same metadata encoding although the time is now written 08h06
        np.testing.assert_array_equal(enc.encode([b.meta]), enc.encode([rec.meta]))
        wa, da = s2_window(rec, series_a, opts)
        wb, db = s2_window(b, series_b, opts)
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(da, db)


def test_non_esa_product_name_is_refused(tiny_dataset, tmp_path: Path) -> None:
    import shutil

    dataset, _ = tiny_dataset
    copy = Path(shutil.copytree(dataset, tmp_path / "ds"))
    products = next(copy.rglob("*_products.txt"))
    names = products.read_text().split()
    products.write_text("\n".join(["S2B_31TCJ_20200712_0_L2A", *names[1:]]) + "\n")
    from flair_pipeline.release.flair_export import export_release

    with pytest.raises(InputError, match=r"S2B_31TCJ_20200712_0_L2A.*characters 15-18"):
        export_release(copy, tmp_path / "out")
