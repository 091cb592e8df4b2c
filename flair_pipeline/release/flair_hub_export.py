"""Write a dataset built here in FLAIR-HUB's layout (IGNF/FLAIR-HUB, TorchGeo's FLAIRHUB).

The layout is :mod:`flair_pipeline.sources.flair_hub_layout`'s. What this export writes,
for every patch of the dataset's split (``splits.csv``):

- ``AERIAL_RGBI``: bands 1–4 of the IMG (R, G, B, NIR), uint8, its grid and CRS;
- ``AERIAL_LABEL-COSIA``: the MSK in FLAIR-HUB's 0-based COSIA classes, class by class
  (:data:`~flair_pipeline.sources.flair_hub_layout.FLAIR_TO_COSIA`: COSIA orders its
  classes differently, so this is not ``MSK − 1``); an unlabelled pixel (MSK 0) becomes
  255, declared as the file's nodata;
- ``SENTINEL2_TS`` / ``SENTINEL2_MSK-SC``: the zone's super-area series resampled to 10 px
  covering exactly the patch's footprint (10.24 m pixels for FLAIR's 512 px at 0.2 m), as
  ``T × 10`` and ``T × 2`` bands, date-major (IGN's ``reshape_sentinel``). IGN does not
  publish how it resampled its 10 m series; here each output pixel is the area-weighted
  mean of the 10 m pixels it overlaps (GDAL's ``average``), recorded in the export's
  metadata; the acquisition dates go to ``GLOBAL_SENTINEL2_MTD_DATES.gpkg``;
- ``SENTINEL1-ASC_TS`` / ``SENTINEL1-DESC_TS``, when the patch's zone has a Sentinel-1
  series in that orbit direction (``sentinel1_series`` asset, ``sentinel1/series.py``):
  the zone's T × 2 × H × W series (VV, VH per date) resampled as the Sentinel-2 one, to 10
  px over the patch (area-weighted mean of the 10 m pixels; a pixel without measurement,
  NaN, is left out of the mean, and a window pixel with none is NaN, declared as the
  file's nodata), ``T × 2`` bands float32 date-major; values as the series holds them
  (coefficient and units recorded per date in its ``products.json``, copied to the
  export's metadata: FLAIR-HUB does not state its own), dates to
  ``GLOBAL_SENTINEL1-{ASC,DESC}_MTD_DATES.gpkg``. The window's grid is the zone's
  super-area (the Sentinel-2 one), located from the patch's centroid in the Sentinel-2
  index: a dataset without that index gets no Sentinel-1 files, with a warning;
- ``ALL_LABEL-LPIS``, when the patch has crop-type labels (``CROP_<id>.tif`` of the
  ``crop_labels`` asset): its 3 bands as they are (FLAIR-HUB's LPIS levels 1–3, level 1
  0-based with 22 the background, 255 the nodata), on the aerial grid.

Patch ids are ``{D}-{Y}_{ROI}_{r}-{c}``: the zone as the area of interest (``Z3_UA`` ->
``Z3-UA``, an ROI never holds ``_``) and the patch's row and column in its zone's lattice
(counted from the zone's top-left patch). ``export_metadata.json`` maps every id to the
dataset's own (``IMG_<id>``). Splits go to ``GLOBAL_ALL_MTD/GLOBAL_ALL_MTD_SPLIT.gpkg``
(``split_1``…``split_5`` and ``split_flairchallenge`` all hold the dataset's one split:
``train``, ``val`` or ``test``) and to one CSV per split (``csv/FLAIR-HUB_<NAME>_{TRAIN,
VALID,TEST}.csv``: ``patch_id`` and a ``../``-relative path per modality, as IGN's).

The export is written into a fresh sibling folder and renamed into place at the end, so a
killed export leaves no half release; an existing destination is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject
from shapely.geometry import Point, box

from flair_pipeline.errors import InputError
from flair_pipeline.io import atomic_path, write_geotiff
from flair_pipeline.layout import CROP, DatasetLayout
from flair_pipeline.progress import Progress, each
from flair_pipeline.reports import JSON, MetadataKind, StageReport
from flair_pipeline.sentinel1.series import StoredS1, read_s1_series
from flair_pipeline.sentinel2.provider import RES
from flair_pipeline.sentinel2.series import product_date
from flair_pipeline.sources.flair_hub import (
    dates_file,
    index_hub,
    read_hub_manifest,
    write_hub_manifest,
)
from flair_pipeline.sources.flair_hub_layout import DATES_FILES, FLAIR_TO_COSIA, HubPatchId
from flair_pipeline.training.records import PatchRecord, from_dataset

#: FLAIR-HUB's aerial patch: 512 px at 0.2 m; its Sentinel windows: 10 px over it.
HUB_PATCH_PX, HUB_RES, S2_PX = 512, 0.2, 10
#: The label nodata of the COSIA files this export writes (an unlabelled MSK pixel).
LABEL_NODATA = 255
#: MSK code (0..255) -> COSIA class; 0 (unlabelled) and codes outside 1..19 -> nodata.
COSIA_LUT = np.full(256, LABEL_NODATA, np.uint8)
for _code, _cosia in FLAIR_TO_COSIA.items():
    COSIA_LUT[_code] = _cosia
_SPLIT_WORD = {"train": "train", "validation": "val", "test": "test"}
_CSV_NAME = {"train": "TRAIN", "validation": "VALID", "test": "TEST"}
MODALITIES_WRITTEN = ("AERIAL_RGBI", "AERIAL_LABEL-COSIA", "SENTINEL2_TS", "SENTINEL2_MSK-SC")
#: Written only for patches with crop-type labels (``crop_labels`` asset).
LPIS = "ALL_LABEL-LPIS"
#: Orbit direction code (``sentinel1/series.py``) -> FLAIR-HUB modality and dates key;
#: written only for zones with a Sentinel-1 series in that direction.
S1_MODALITIES = {code: (f"SENTINEL1-{code}_TS", f"SENTINEL1-{code}") for code in ("ASC", "DESC")}
_CSV_COLUMNS = (*MODALITIES_WRITTEN, *(m for m, _ in S1_MODALITIES.values()), LPIS)


@dataclass
class HubExportReport:
    """What an export wrote."""

    out_dir: Path
    patches: int = 0
    with_s2: int = 0
    with_lpis: int = 0
    with_s1: dict[str, int] = field(default_factory=dict)  # modality -> patches
    s1_values: list[str] = field(default_factory=list)  # "<coefficient> <units>" seen
    files: int = 0
    warnings: list[str] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)  # FLAIR-HUB id -> dataset id


@dataclass(frozen=True)
class _Patch:
    record: PatchRecord
    hub: HubPatchId
    bounds: tuple[float, float, float, float]
    res: float
    size: tuple[int, int]
    crs: Any


def _hub_ids(records: list[PatchRecord]) -> list[_Patch]:
    """Each record with its FLAIR-HUB id (zone lattice row-col) and its IMG geometry.

    Args:
        records: The patches exported, with their IMG paths.

    Returns:
        One entry per record, in order: its HUB id (row and column on its zone's lattice,
        counted from the zone's top-left patch), bounds, resolution (m), size (px) and CRS.
    """
    found = []
    for r in records:
        with rasterio.open(r.img) as src:
            found.append((r, tuple(src.bounds), src.res[0], (src.height, src.width), src.crs))
    tops: dict[tuple[str, str], tuple[float, float]] = {}
    for r, b, *_ in found:
        left, top = tops.get((r.domain, r.zone), (b[0], b[3]))
        tops[(r.domain, r.zone)] = (min(left, b[0]), max(top, b[3]))
    out = []
    for r, b, res, size, crs in found:
        dept, year = r.domain.split("_")
        left, top = tops[(r.domain, r.zone)]
        ext_x, ext_y = b[2] - b[0], b[3] - b[1]
        row, col = round((top - b[3]) / ext_y), round((b[0] - left) / ext_x)
        hub = HubPatchId(dept, year, r.zone.replace("_", "-"), row, col)
        out.append(_Patch(r, hub, b, res, size, crs))
    return out


def _super_area_transform(p: _Patch) -> rasterio.Affine:
    """The 10 m super-area grid's transform, from the patch's centroid pixel.

    The super-area grid is aligned on multiples of 10 m (``sentinel2.provider.Grid``) and
    the patch's centre lies in pixel (row, col) of it (``Grid.rowcol``), which fixes the
    grid's origin.

    Args:
        p: A patch with its centroid pixel (row, col) in the super-area recorded.

    Returns:
        The affine transform of the 10 m grid, in the patch's CRS.
    """
    assert p.record.centroid is not None
    row, col = p.record.centroid
    cx, cy = (p.bounds[0] + p.bounds[2]) / 2, (p.bounds[1] + p.bounds[3]) / 2
    left = np.floor((cx - col * RES) / RES) * RES
    top = np.ceil((cy + row * RES) / RES) * RES
    return rasterio.Affine(RES, 0.0, float(left), 0.0, -RES, float(top))


def s2_window(
    stack: np.ndarray, src_transform: rasterio.Affine, bounds: tuple[float, float, float, float]
) -> np.ndarray:
    """A super-area stack resampled to 10 × 10 px over `bounds` (area-weighted mean).

    Args:
        stack: (bands, H, W) of the 10 m super-area (EPSG:2154).
        src_transform: its affine transform.
        bounds: (left, bottom, right, top) of the patch, metres, EPSG:2154.

    Returns:
        (bands, 10, 10), the dtype of `stack`; each pixel the mean of the 10 m pixels it
        overlaps, weighted by the overlapped area (GDAL's ``average`` resampling).
    """
    left, bottom, right, top = bounds
    dst = np.zeros((stack.shape[0], S2_PX, S2_PX), stack.dtype)
    reproject(
        stack,
        dst,
        src_transform=src_transform,
        src_crs="EPSG:2154",
        dst_transform=from_origin(left, top, (right - left) / S2_PX, (top - bottom) / S2_PX),
        dst_crs="EPSG:2154",
        resampling=Resampling.average,
    )
    return dst


def s1_window(
    stack: np.ndarray, src_transform: rasterio.Affine, bounds: tuple[float, float, float, float]
) -> np.ndarray:
    """A Sentinel-1 super-area stack resampled to 10 × 10 px over `bounds`, NaN left out.

    Args:
        stack: (bands, H, W) float32 of the 10 m super-area (EPSG:2154), NaN = no measurement.
        src_transform: its affine transform.
        bounds: (left, bottom, right, top) of the patch, metres, EPSG:2154.

    Returns:
        (bands, 10, 10) float32; each pixel the area-weighted mean of the measured 10 m
        pixels it overlaps (GDAL's ``average`` with NaN as the source nodata), NaN where it
        overlaps none.
    """
    left, bottom, right, top = bounds
    dst = np.full((stack.shape[0], S2_PX, S2_PX), np.nan, np.float32)
    reproject(
        stack.astype(np.float32, copy=False),
        dst,
        src_transform=src_transform,
        src_crs="EPSG:2154",
        src_nodata=np.nan,
        dst_transform=from_origin(left, top, (right - left) / S2_PX, (top - bottom) / S2_PX),
        dst_crs="EPSG:2154",
        dst_nodata=np.nan,
        resampling=Resampling.average,
    )
    return dst


def _write(
    path: Path, arr: np.ndarray, transform: Any, crs: Any, nodata: float | None = None
) -> None:
    """One modality file, through the project's one GeoTIFF writer (checked, atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_geotiff(path, arr, transform, crs, nodata=nodata)


def export_flair_hub(
    dataset_root: str | Path,
    out_dir: str | Path,
    *,
    name: str = "EXPORT",
    progress: Progress | None = None,
) -> HubExportReport:
    """Export a dataset built here in FLAIR-HUB's layout (see the module docstring).

    Args:
        dataset_root: a dataset built by this pipeline (``splits.csv`` written).
        out_dir: the release folder to create (must not exist).
        name: the CSVs' name part (``FLAIR-HUB_<name>_TRAIN.csv``).
        progress: where to show the count of patches exported, or None.

    Returns:
        What was written; patches not at FLAIR-HUB's 512 px / 0.2 m are exported at their
        own size with a warning (IGN's models expect 512 px).

    Raises:
        InputError: `out_dir` exists, the dataset has no split, or a patch's label holds a
            class outside 1..19 (named).
    """
    out = Path(out_dir)
    if out.exists():
        raise InputError(f"{out}: already exists; export into a new folder (or remove it first)")
    records = [r for r in from_dataset(dataset_root) if r.split in _SPLIT_WORD]
    if not records:
        raise InputError(f"{dataset_root}: no patch in a train, validation or test split")
    patches = _hub_ids(records)
    stage = out.with_name(f".{out.name}.{os.getpid()}.partial")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    report = HubExportReport(out)
    try:
        _export(patches, stage, name, report, progress, Path(dataset_root))
        meta = {
            "source_dataset": str(Path(dataset_root).resolve()),
            "modalities": [
                *MODALITIES_WRITTEN,
                *(m for m, _ in S1_MODALITIES.values() if report.with_s1.get(m)),
                *([LPIS] if report.with_lpis else []),
            ],
            "sentinel1": {
                "patches": report.with_s1,
                "values": report.s1_values,
                "resampling": "area-weighted mean (GDAL average, NaN = no measurement left "
                "out) of the zone's 10 m series over the patch footprint, 10 x 10 px; "
                "bands VV, VH per date, date-major; NaN = no measurement (file nodata)",
            },
            "sentinel2_resampling": "area-weighted mean (GDAL average) of the 10 m "
            "super-area over the patch footprint, 10 x 10 px",
            "label": "AERIAL_LABEL-COSIA = the MSK's class by name in COSIA's 0-based order "
            f"{dict(sorted(FLAIR_TO_COSIA.items()))}; MSK 0 (unlabelled) -> {LABEL_NODATA} (nodata)",
            "lpis": f"{LPIS} = the patch's CROP file (crop_labels asset), bands as written: "
            "FLAIR-HUB's LPIS levels 1-3, level 1 0-based with 22 background, 255 nodata; "
            f"{report.with_lpis} of {report.patches} patches have one",
            "split_values": _SPLIT_WORD,
            "warnings": report.warnings,
            "patch_ids": report.ids,
        }
        (stage / "export_metadata.json").write_text(
            json.dumps(meta, indent=1, sort_keys=True) + "\n"
        )
        report.files += 1
        stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return report


def _export(
    patches: list[_Patch],
    stage: Path,
    name: str,
    report: HubExportReport,
    progress: Progress | None = None,
    dataset_root: Path | None = None,
) -> None:
    odd = sorted(
        {
            p.record.domain
            for p in patches
            if p.size != (HUB_PATCH_PX, HUB_PATCH_PX) or abs(p.res - HUB_RES) > 1e-6
        }
    )
    if odd:
        p0 = next(p for p in patches if p.record.domain == odd[0])
        report.warnings.append(
            f"patches of {', '.join(odd)} are {p0.size[1]} px at {p0.res:g} m, not FLAIR-HUB's "
            f"{HUB_PATCH_PX} px at {HUB_RES} m: exported at their size (Sentinel-2 windows of "
            f"{S2_PX} px still cover each patch); IGN's models expect {HUB_PATCH_PX} px"
        )
    series: dict[Path, tuple[np.ndarray, np.ndarray, list[str]]] = {}
    s1_cache: dict[tuple[str, str, str], StoredS1 | None] = {}
    dates_rows: dict[str, dict[str, Any]] = {}
    s1_dates: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # key -> id -> row
    split_rows: list[dict[str, Any]] = []
    csv_rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for p in each(progress, "patches", patches, "patches"):
        r, hub = p.record, p.hub
        sid = str(hub)
        if sid in report.ids:
            raise InputError(f"{r.img}: FLAIR-HUB id {sid} also given to {report.ids[sid]}")
        report.ids[sid] = f"IMG_{r.patch_id}"
        with rasterio.open(r.img) as src:
            img, transform, crs = src.read(), src.transform, src.crs
        _write(stage / hub.relpath("AERIAL_RGBI"), img[:4], transform, crs)
        row = {"patch_id": sid, "AERIAL_RGBI": f"../{hub.relpath('AERIAL_RGBI')}"}
        if r.msk is not None:
            with rasterio.open(r.msk) as src:
                msk = src.read(1)
            if msk.max() > 19:
                raise InputError(f"{r.msk}: class {int(msk.max())} outside FLAIR's 1..19")
            cosia = COSIA_LUT[msk]
            _write(
                stage / hub.relpath("AERIAL_LABEL-COSIA"), cosia[None], transform, crs, LABEL_NODATA
            )
            row["AERIAL_LABEL-COSIA"] = f"../{hub.relpath('AERIAL_LABEL-COSIA')}"
        crop = (
            None
            if dataset_root is None
            else CROP.under(dataset_root, domain=r.domain, zone=r.zone, patch_id=r.patch_id)
        )
        if crop is not None and crop.is_file():
            with rasterio.open(crop) as src:
                lpis, lpis_t = src.read(), src.transform
            if lpis.shape != (3, *img.shape[1:]) or lpis_t != transform:
                raise InputError(
                    f"{crop}: {lpis.shape[0]} bands {lpis.shape[2]}x{lpis.shape[1]} not on "
                    f"its IMG's grid ({r.img}); rebuild crop_labels"
                )
            _write(stage / hub.relpath(LPIS), lpis, transform, crs, LABEL_NODATA)
            row[LPIS] = f"../{hub.relpath(LPIS)}"
            report.with_lpis += 1
        if r.sen_prefix is not None and r.centroid is not None:
            if r.sen_prefix not in series:
                data = np.load(f"{r.sen_prefix}_data.npy")
                masks = np.load(f"{r.sen_prefix}_masks.npy")
                products = Path(f"{r.sen_prefix}_products.txt").read_text().split()
                series[r.sen_prefix] = (data, masks, products)
            data, masks, products = series[r.sen_prefix]
            t = data.shape[0]
            src_t = _super_area_transform(p)
            s2 = s2_window(data.reshape(t * data.shape[1], *data.shape[2:]), src_t, p.bounds)
            sc = s2_window(masks.reshape(t * masks.shape[1], *masks.shape[2:]), src_t, p.bounds)
            s2_t = from_origin(
                p.bounds[0],
                p.bounds[3],
                (p.bounds[2] - p.bounds[0]) / S2_PX,
                (p.bounds[3] - p.bounds[1]) / S2_PX,
            )
            _write(stage / hub.relpath("SENTINEL2_TS"), s2, s2_t, crs)
            _write(stage / hub.relpath("SENTINEL2_MSK-SC"), sc, s2_t, crs)
            row["SENTINEL2_TS"] = f"../{hub.relpath('SENTINEL2_TS')}"
            row["SENTINEL2_MSK-SC"] = f"../{hub.relpath('SENTINEL2_MSK-SC')}"
            days = []
            for prod in products:
                day = product_date(prod)
                if day is None:
                    raise InputError(f"{r.sen_prefix}_products.txt: no date in product {prod!r}")
                days.append(day.strftime("%Y%m%d"))
            cx, cy = (p.bounds[0] + p.bounds[2]) / 2, (p.bounds[1] + p.bounds[3]) / 2
            dates_rows[sid] = {
                "acquisition_dates": json.dumps({str(i): d for i, d in enumerate(days)}),
                "geometry": Point(cx, cy),
            }
            report.with_s2 += 1
        if dataset_root is not None and r.centroid is not None:
            for code, (mod, key) in S1_MODALITIES.items():
                stored = _stored_s1(s1_cache, DatasetLayout(dataset_root), r.domain, r.zone, code)
                if stored is None:
                    continue
                values = {f"{x['coefficient']} {x['units']}" for x in stored.records}
                report.s1_values = sorted(set(report.s1_values) | values)
                t = stored.data.shape[0]
                src_t = _super_area_transform(p)
                win = s1_window(stored.data.reshape(t * 2, *stored.data.shape[2:]), src_t, p.bounds)
                s1_t = from_origin(
                    p.bounds[0],
                    p.bounds[3],
                    (p.bounds[2] - p.bounds[0]) / S2_PX,
                    (p.bounds[3] - p.bounds[1]) / S2_PX,
                )
                _write(stage / hub.relpath(mod), win, s1_t, crs, float("nan"))
                row[mod] = f"../{hub.relpath(mod)}"
                cx, cy = (p.bounds[0] + p.bounds[2]) / 2, (p.bounds[1] + p.bounds[3]) / 2
                s1_dates[key][sid] = {
                    "acquisition_dates": json.dumps(
                        {str(i): f"{d:%Y%m%d}" for i, d in enumerate(stored.dates)}
                    ),
                    "geometry": Point(cx, cy),
                }
                report.with_s1[mod] = report.with_s1.get(mod, 0) + 1
        elif dataset_root is not None and _has_s1(DatasetLayout(dataset_root), r.domain, r.zone):
            msg = (
                f"{r.domain}/{r.zone}: Sentinel-1 series not exported (no Sentinel-2 centroid "
                "index to place its super-area); build sentinel2_index"
            )
            if msg not in report.warnings:
                report.warnings.append(msg)
        word = _SPLIT_WORD[r.split]
        split_rows.append(
            {
                "patch_id": sid,
                **{f"split_{k}": word for k in range(1, 6)},
                "split_flairchallenge": word,
                "geometry": box(*p.bounds),
            }
        )
        csv_rows[r.split].append(row)
        report.patches += 1
        report.files += len(row) - 1
    crs = patches[0].crs
    mtd = stage / "GLOBAL_ALL_MTD"
    mtd.mkdir()
    gpd.GeoDataFrame(split_rows, geometry="geometry", crs=crs).to_file(
        mtd / "GLOBAL_ALL_MTD_SPLIT.gpkg", driver="GPKG"
    )
    report.files += 1
    if dates_rows:
        frame = gpd.GeoDataFrame(
            [{"patch_id": k, **v} for k, v in sorted(dates_rows.items())],
            geometry="geometry",
            crs=crs,
        )
        frame.to_file(mtd / dates_file(DATES_FILES[0]), driver="GPKG")
        report.files += 1
    if len(report.s1_values) > 1:
        report.warnings.append(
            f"the Sentinel-1 files mix {' and '.join(report.s1_values)} across zones (each "
            "zone's series is one of them: see its products.json); rebuild the series with "
            "one sentinel1 setting before training on them"
        )
    for key, by_id in sorted(s1_dates.items()):
        gpd.GeoDataFrame(
            [{"patch_id": k, **v} for k, v in sorted(by_id.items())], geometry="geometry", crs=crs
        ).to_file(mtd / dates_file(key), driver="GPKG")
        report.files += 1
    (stage / "csv").mkdir()
    for split, rows in sorted(csv_rows.items()):
        cols = ["patch_id", *[m for m in _CSV_COLUMNS if any(m in r for r in rows)]]
        lines = [",".join(cols)] + [",".join(r.get(c, "") for c in cols) for r in rows]
        (stage / "csv" / f"FLAIR-HUB_{name}_{_CSV_NAME[split]}.csv").write_text(
            "\n".join(lines) + "\n"
        )
        report.files += 1


def _has_s1(layout: DatasetLayout, domain: str, zone: str) -> bool:
    return any(layout.sen1_file(domain, zone, c, "data.npy").is_file() for c in S1_MODALITIES)


def _stored_s1(
    cache: dict[tuple[str, str, str], StoredS1 | None],
    layout: DatasetLayout,
    domain: str,
    zone: str,
    code: str,
) -> StoredS1 | None:
    """The zone's Sentinel-1 series in direction `code` (read once), None when not built.

    Returns:
        The stored series, or None when the zone has no series in that direction.

    Raises:
        InputError: the series' files disagree (``read_s1_series``) or its data is not
            T × 2 × H × W.
    """
    key = (domain, zone, code)
    if key not in cache:
        if not layout.sen1_file(domain, zone, code, "data.npy").is_file():
            cache[key] = None
        else:
            stored = read_s1_series(layout, domain, zone, code)
            if stored.data.ndim != 4 or stored.data.shape[1] != 2:
                raise InputError(
                    f"{layout.sen1_file(domain, zone, code, 'data.npy')}: shape "
                    f"{stored.data.shape}, expected T x 2 x H x W; rebuild sentinel1_series"
                )
            cache[key] = stored
    return cache[key]


@dataclass(frozen=True)
class HubManifestReport(StageReport):
    """What the ``hub_release`` stage indexed: the manifest the FLAIR-HUB model trains on."""

    metadata_kinds: ClassVar[Mapping[str, MetadataKind]] = {"manifest": "path", "release": "path"}

    manifest: str
    release: str
    source: str  # export (this pipeline's dataset), release (hub.release) or manifest
    patches: Mapping[str, int]
    warnings: tuple[str, ...] = ()

    def as_metadata(self) -> dict[str, JSON]:
        """The manifest, where it came from and its patches per split.

        Returns:
            ``manifest``, ``release``, ``source`` and ``patches`` (per split).
        """
        return {
            "manifest": self.manifest,
            "release": self.release,
            "source": self.source,
            "patches": dict(self.patches),
        }


def hub_manifest(
    dataset_root: str | Path,
    release_dir: str | Path,
    manifest_csv: str | Path,
    *,
    release: str | Path | None = None,
    manifest: str | Path | None = None,
    progress: Progress | None = None,
) -> HubManifestReport:
    """The ``hub_release`` stage: the import-flair-hub manifest the FLAIR-HUB model reads.

    With neither `release` nor `manifest` (params.yaml ``hub``), the dataset built here is
    exported in FLAIR-HUB's layout into `release_dir` (replaced) and indexed at its own
    patch size; with `release`, that FLAIR-HUB release is indexed; with `manifest`, that
    manifest is read (checked) and copied. `release_dir` then holds only ``source.json``,
    naming what was used (a DVC output must exist).

    Args:
        dataset_root: A dataset built by this pipeline (read for the export only).
        release_dir: Where the export goes (``<paths.dataset>/hub/release``).
        manifest_csv: The manifest to write (``<paths.dataset>/hub/manifest.csv``).
        release: A FLAIR-HUB release folder to index instead of the export.
        manifest: An import-flair-hub manifest to use instead (wins over `release`).
        progress: Where to count patches, or None.

    Returns:
        The report: the manifest, its source and its patches per split.

    Raises:
        InputError: The dataset has no split patch, the release holds no FLAIR-HUB file, or
            the manifest is not one (see :func:`export_flair_hub`, :func:`index_hub`).
    """
    out = Path(release_dir)
    shutil.rmtree(out, ignore_errors=True)
    warnings: list[str] = []
    if manifest is not None or release is not None:
        out.mkdir(parents=True)
        source_doc = {"release": None if release is None else str(release)}
        source_doc["manifest"] = None if manifest is None else str(manifest)
        (out / "source.json").write_text(json.dumps(source_doc, indent=2) + "\n")
    if manifest is not None:
        records = read_hub_manifest(manifest)
        with atomic_path(manifest_csv) as tmp:
            shutil.copyfile(manifest, tmp)
        source = "manifest"
    else:
        if release is None:
            exported = export_flair_hub(dataset_root, out, progress=progress)
            warnings += exported.warnings
        index = index_hub(out if release is None else release, check_size=release is not None)
        warnings += index.warnings + [f"{p.path}: {p.reason}" for p in index.problems]
        write_hub_manifest(index, manifest_csv)
        records = index.records
        source = "release" if release is not None else "export"
    patches: dict[str, int] = {}
    for r in records:
        patches[r.split] = patches.get(r.split, 0) + 1
    return HubManifestReport(
        str(manifest_csv),
        str(release if release is not None else out),
        source,
        patches,
        tuple(warnings),
    )
