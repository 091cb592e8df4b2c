"""``aerial_metadata.json`` and ``centroids_sp_to_patch.json`` of a built dataset, value by
value, against what the raw inputs say: each patch's own GeoTIFF bounds (centroid x/y),
the raw DTM read here with rasterio as a numpy array (centroid z: the DTM pixel under the
centroid, FLAIR's patch_centroid_z), ``domain.json`` (camera, date, time) and the 10 m
super-area grid rebuilt here from the IMG bounds (the Sentinel-2 centroid row and column).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import rasterio

from tests.training.conftest import config


def img_files(dataset: Path) -> dict[str, Path]:
    """``IMG_<id>`` -> file, found on disk: aerial/<domain>/<zone>/img/IMG_<id>.tif."""
    return {p.stem: p for p in sorted((dataset / "aerial").glob("*/*/img/IMG_*.tif"))}


def centre(path: Path) -> tuple[float, float]:
    with rasterio.open(path) as src:
        b = src.bounds
    return (b.left + b.right) / 2, (b.bottom + b.top) / 2


def pixels(f: float) -> set[int]:
    """Index of the pixel at fractional position `f`; both neighbours when on an edge."""
    return {math.floor(f - 1e-6), math.floor(f + 1e-6)}


def test_aerial_metadata_values_come_from_the_raw_inputs(tiny_dataset, tiny_world) -> None:
    dataset, _ = tiny_dataset
    meta = json.loads((dataset / "metadata" / "aerial_metadata.json").read_text())
    files = img_files(dataset)
    assert sorted(meta) == sorted(files) and len(files) == 36  # 12 patches x 3 domains
    dtms: dict[str, tuple[np.ndarray, object]] = {}
    for key, path in files.items():
        m = meta[key]
        domain, zone = path.parts[-4], path.parts[-3]
        raw = tiny_world.out / "domains" / domain
        info = json.loads((raw / "domain.json").read_text())
        assert (m["domain"], m["zone"]) == (domain, zone), key
        assert (m["camera"], m["date"], m["time"]) == (info["camera"], info["date"], info["time"])
        x, y = centre(path)
        assert (m["patch_centroid_x"], m["patch_centroid_y"]) == (round(x, 2), round(y, 2)), key
        if domain not in dtms:
            with rasterio.open(raw / "dtm.tif") as src:
                dtms[domain] = (src.read(1), src.transform)
        dtm, t = dtms[domain]
        # the DTM pixel holding the centroid; a centroid on a pixel edge (12.8 m patches on
        # a 1 m DTM: it happens) may take either side, as float noise in its x/y decides
        cols = pixels((x - t.c) / t.a)
        rows = pixels((y - t.f) / t.e)
        allowed = {round(float(dtm[r, c]), 2) for r in rows for c in cols}
        assert m["patch_centroid_z"] in allowed, key


def test_sentinel2_centroids_fall_on_the_patch_centre(tiny_dataset) -> None:
    dataset, params = tiny_dataset
    window = config(params).sentinel2.window
    cents = json.loads((dataset / "metadata" / "centroids_sp_to_patch.json").read_text())
    files = img_files(dataset)
    assert sorted(cents) == sorted(f"{k}.tif" for k in files)
    zones: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
    for key, path in files.items():
        zones.setdefault((path.parts[-4], path.parts[-3]), {})[key] = centre(path)
    for (domain, zone), pts in zones.items():
        xs, ys = [p[0] for p in pts.values()], [p[1] for p in pts.values()]
        half = window * 10 / 2  # the super-area: 10 m pixels, half a window around centroids
        left = math.floor((min(xs) - half) / 10) * 10
        top = math.ceil((max(ys) + half) / 10) * 10
        width = round((math.ceil((max(xs) + half) / 10) * 10 - left) / 10)
        height = round((top - math.floor((min(ys) - half) / 10) * 10) / 10)
        sen = dataset / "sentinel" / domain / zone / "sen" / f"SEN2_sp_{domain}-{zone}_data.npy"
        assert np.load(sen, mmap_mode="r").shape[2:] == (height, width), sen
        for key, (x, y) in pts.items():
            row, col = cents[f"{key}.tif"]
            assert (row, col) == (int((top - y) // 10), int((x - left) // 10)), key
            # the model's window around it stays inside the super-area
            assert window // 2 <= row <= height - window // 2, key
            assert window // 2 <= col <= width - window // 2, key
