"""A FLAIR-HUB release with every modality the model families need, for the tests.

Built from the five real FLAIR patches of ``../shared/real-samples/flair`` in FLAIR-HUB's
layout (:mod:`flair_pipeline.sources.flair_hub_layout`):

- ``AERIAL_RGBI``: the real image (R, G, B, NIR), 512 px, uint8;
- ``AERIAL_LABEL-COSIA``: the real MSK through ``FLAIR_TO_COSIA`` (0-based COSIA classes);
- ``ALL_LABEL-LPIS``: 3 bands generated from the COSIA label: level 1 (band 1) a crop class
  on agricultural/herbaceous/plowed pixels by 128 px column block, 22 (background) elsewhere;
  bands 2 and 3 derived from it;
- ``DEM_ELEV``: DSM and DTM, float32, 512 px, generated (DSM − DTM varies);
- ``SPOT_RGBI``: 64 px, uint16, the aerial image's 8 × 8 block means × 4;
- ``SENTINEL2_TS`` (5 dates × 10 bands) with ``SENTINEL2_MSK-SC`` (5 × snow, cloud; the
  cloudy and snowy dates planted by :func:`s2_mask`), ``SENTINEL1-ASC_TS`` (4 dates × 2 bands),
  ``SENTINEL1-DESC_TS`` (3 dates × 2 bands), 10 px, with their dates GeoPackages;
- ``GLOBAL_ALL_MTD_SPLIT.gpkg``: patches 0, 1, 4 train, 2 validation, 3 test.

Every array written is returned, so the tests compute expected values from them with numpy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import Point

from flair_pipeline.sources.flair_hub_layout import FLAIR_TO_COSIA, HubPatchId, parse_patch_id

#: Month-day of the dates of each series (the year is the patch's).
SERIES_DAYS = {
    "SENTINEL2": ("0105", "0314", "0515", "0702", "1030"),
    "SENTINEL1-ASC": ("0201", "0415", "0820", "1201"),
    "SENTINEL1-DESC": ("0110", "0601", "0915"),
}
SPLITS = ("train", "train", "val", "test", "train")
S2_BANDS, S1_BANDS = 10, 2


def write_tif(path: Path, arr: np.ndarray, res: float = 0.2) -> None:
    """Write a C × H × W array as a GeoTIFF in Lambert-93.

    Args:
        path: The file (folders made).
        arr: The bands.
        res: Pixel size, metres.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype=arr.dtype,
        crs="EPSG:2154",
        transform=from_origin(800000, 6500000, res, res),
        compress="deflate",
    ) as dst:
        dst.write(arr)


def write_gpkg(path: Path, rows: dict[str, dict]) -> None:
    """Write a GeoPackage of one point per patch with `rows`' columns.

    Args:
        path: The file (folders made).
        rows: patch id -> its columns.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = gpd.GeoDataFrame(
        [{"patch_id": k, **v} for k, v in rows.items()],
        geometry=[Point(800000 + i, 6500000) for i in range(len(rows))],
        crs="EPSG:2154",
    )
    frame.to_file(path, driver="GPKG")


def s2_mask(patch: int) -> np.ndarray:
    """The planted snow/cloud mask of a patch (5 dates × [snow, cloud] × 10 × 10).

    Patches 0–3 (IGN's filter with max cloud 1, max snow 1, max fraction 0.05 keeps dates
    0, 2 and 4): date 1 cloud 90 on 20 of the 100 px; date 2 cloud 90 on 5 px (exactly 5 %:
    kept); date 3 snow 50 everywhere; date 4 cloud 1 everywhere (not above the maximum).
    Patch 4: cloud on 20 px of every date, so the filter falls back to snow only and keeps
    dates 0, 1, 2 and 4.

    Args:
        patch: The patch's index (0–4).

    Returns:
        The uint8 mask, date-major as the release's MSK-SC file.
    """
    m = np.zeros((5, 2, 10, 10), "uint8")
    if patch == 4:
        m[:, 1, :2, :] = 90  # 20 px cloudy on every date: IGN's fallback to snow only
        m[3, 0] = 50
        return m
    m[1, 1, :2, :] = 90
    m[2, 1, 0, :5] = 90
    m[3, 0] = 50
    m[4, 1] = 1
    return m


@dataclass
class HubRelease:
    """The release built: its root, patch ids, splits and every array written."""

    root: Path
    ids: list[HubPatchId]
    splits: tuple[str, ...]
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    dates: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)


def build_hub_release(real_flair: Path, root: Path) -> HubRelease:
    """Write the release under `root` (see the module docstring).

    Args:
        real_flair: The real FLAIR samples folder.
        root: The release folder to create.

    Returns:
        What was written.
    """
    imgs = sorted(real_flair.rglob("IMG_*.tif"))
    assert len(imgs) == 5, imgs
    rel = HubRelease(root, [], SPLITS)
    lut = np.full(256, 255, "uint8")
    for k, v in FLAIR_TO_COSIA.items():
        lut[k] = v
    rng = np.random.default_rng(24)
    for i, img in enumerate(imgs):
        domain = img.parts[-4].replace("_", "-")
        pid = parse_patch_id(f"{domain}_UA-S1-{i % 2}_{i}-{i + 1}")
        rel.ids.append(pid)
        msk = next(real_flair.rglob(img.name.replace("IMG_", "MSK_")))
        with rasterio.open(img) as src:
            rgbi = src.read([1, 2, 3, 4])
        with rasterio.open(msk) as src:
            cosia = lut[src.read(1)][None]
        crop = np.isin(cosia[0], (8, 9, 10))
        block = np.arange(512)[None, :] // 128  # 4 column blocks
        l1 = np.where(crop, (i * 4 + block) % 22, 22).astype("uint8")
        lpis = np.stack([l1, l1 * 2 % 50, l1 * 3 % 90]).astype("uint8")
        yy, xx = np.mgrid[0:512, 0:512].astype("float32")
        dtm = (200 + 10 * i + 0.01 * yy).astype("float32")
        dsm = (dtm + (xx % 64) * 0.25 + i).astype("float32")
        dem = np.stack([dsm, dtm])
        spot = (rgbi.reshape(4, 64, 8, 64, 8).astype("float64").mean(axis=(2, 4)) * 4).astype(
            "uint16"
        )
        s2 = rng.integers(0, 5000, (5 * S2_BANDS, 10, 10), dtype="uint16")
        sc = s2_mask(i).reshape(10, 10, 10)
        s1a = rng.normal(-12, 3, (4 * S1_BANDS, 10, 10)).astype("float32")
        s1d = rng.normal(-14, 3, (3 * S1_BANDS, 10, 10)).astype("float32")
        arrays = {
            "AERIAL_RGBI": rgbi,
            "AERIAL_LABEL-COSIA": cosia,
            "ALL_LABEL-LPIS": lpis,
            "DEM_ELEV": dem,
            "SPOT_RGBI": spot,
            "SENTINEL2_TS": s2,
            "SENTINEL2_MSK-SC": sc,
            "SENTINEL1-ASC_TS": s1a,
            "SENTINEL1-DESC_TS": s1d,
        }
        res = {"SPOT_RGBI": 1.6}
        for mod, arr in arrays.items():
            write_tif(
                root / pid.relpath(mod), arr, res.get(mod, 10.24 if arr.shape[1] == 10 else 0.2)
            )
        rel.arrays[str(pid)] = arrays
    mtd = root / "GLOBAL_ALL_MTD"
    for key, days in SERIES_DAYS.items():
        rows = {}
        for pid in rel.ids:
            dates = tuple(f"{pid.year}{d}" for d in days)
            rel.dates.setdefault(str(pid), {})[key] = dates
            rows[str(pid)] = {"acquisition_dates": json.dumps(dict(enumerate(dates)))}
        write_gpkg(mtd / f"GLOBAL_{key}_MTD_DATES.gpkg", rows)
    write_gpkg(
        mtd / "GLOBAL_ALL_MTD_SPLIT.gpkg",
        {
            str(p): {f"split_{k}": s for k in range(1, 6)} | {"split_flairchallenge": s}
            for p, s in zip(rel.ids, SPLITS, strict=True)
        },
    )
    return rel
