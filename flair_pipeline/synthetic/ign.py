"""The ``ign`` flavour of the synthetic world: the same ground written as IGN delivers it.

Each domain of the plain flavour is rewritten, with a ``domain.yaml`` naming the roles:

- ``ortho/``: BD ORTHO-style JPEG 2000 tiles, lossless, the RVB product (R, G, B) and the
  IRC product (NIR, R, G, IGN's order) as separate files named like IGN's dalles with the
  ``-IRC-`` infix (``33-2021-0500000-6400000-LA93-0M20-E080.jp2`` and
  ``…-LA93-0M20-IRC-E080.jp2``; coordinates in metres, the synthetic tiles being smaller
  than IGN's 1 km);
- ``rge_alti/``: the DTM as RGE ALTI-style ESRI ASCII ``.asc`` tiles with no CRS (the spec
  gives EPSG:2154), split in two along x;
- ``lidar_hd/``: the DSM as a LiDAR HD-style GeoTIFF at 0.5 m on a grid offset by half a
  pixel (x.25 / x.75 edges), nodata −9999 where the shifted grid leaves the data;
- ``ocsge/OCCUPATION_SOL.gpkg``: the labels with OCS GE-like ``code_cs`` / ``code_us``
  columns and ``ocsge_to_flair.csv``, the table back to FLAIR codes (keyed on both);
- acquisition date, time and camera in the spec (no ``domain.json``).

Resampling, documented: the ortho and the labels are bit-identical to the plain flavour; the
DSM is resampled once (bilinear, 1 m → 0.5 m on the half-pixel grid) so the elevation band
of a patch differs from the plain build by bilinear interpolation error only (a test bounds
it); the DTM keeps its 1 m grid and values.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import yaml
from affine import Affine
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import reproject

from flair_pipeline.geo.raster_vrt import raster_files

#: FLAIR code -> OCS GE-like (code_cs, code_us). Plowed land is bare soil (CS1.2.1) used by
#: agriculture (US1.1), herbaceous vegetation and agricultural land share CS2.2.1: only
#: both columns together tell them apart, as in OCS GE.
OCSGE_PAIRS: dict[int, tuple[str, str]] = {
    1: ("CS1.1.1.1", "US235"),
    2: ("CS1.1.2.1", "US235"),
    3: ("CS1.1.1.2", "US4.1.1"),
    4: ("CS1.2.1", "US6.2"),
    5: ("CS1.2.2", "US4.3"),
    6: ("CS2.1.1.2", "US2"),
    7: ("CS2.1.1.1", "US2"),
    8: ("CS2.1.2", "US6.3"),
    9: ("CS2.1.3", "US1.1"),
    10: ("CS2.2.1", "US6.3"),
    11: ("CS2.2.1", "US1.1"),
    12: ("CS1.2.1", "US1.1"),
    13: ("CS1.2.2", "US235"),
    14: ("CS1.2.3", "US6.2"),
    15: ("CS2.1.2", "US2"),
    16: ("CS2.1.1.3", "US2"),
    17: ("CS2.1.3", "US6.3"),
    18: ("CS1.1.1.1", "US1.1"),
    19: ("CS2.2.2", "US6.6"),
}
LIDAR_RES = 0.5
_JP2 = {"driver": "JP2OpenJPEG", "QUALITY": "100", "REVERSIBLE": "YES", "YCBCR420": "NO"}


def spec_for(info: dict[str, Any]) -> dict[str, Any]:
    """The domain.yaml of an ign-flavour domain.

    Args:
        info: The domain's ``domain.json`` (``date``, ``time``, ``camera`` are copied).

    Returns:
        The ``domain.yaml`` mapping: ortho products (RVB and IRC JPEG 2000), DSM, DTM
        (ASCII grid, EPSG:2154), labels and their mapping table, acquisition facts.
    """
    return {
        "ortho": [
            {
                "name": "bd_ortho_rvb",
                "glob": "ortho/*-LA93-0M20-E080.jp2",
                "bands": {"R": 1, "G": 2, "B": 3},
            },
            {"name": "bd_ortho_irc", "glob": "ortho/*-LA93-0M20-IRC-E080.jp2", "bands": {"NIR": 1}},
        ],
        "dsm": {"glob": "lidar_hd/*_MNS_*.tif"},
        "dtm": {"glob": "rge_alti/*.asc", "crs": "EPSG:2154"},
        "labels": {
            "glob": "ocsge/OCCUPATION_SOL.gpkg",
            "field": ["code_cs", "code_us"],
            "mapping": "ocsge/ocsge_to_flair.csv",
        },
        "acquisition": {k: info[k] for k in ("date", "time", "camera") if k in info},
    }


def _write(path: Path, arr: np.ndarray, transform: Affine, crs: str | None, **opts: Any) -> None:
    arr = arr if arr.ndim == 3 else arr[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": arr.shape[0],
        "dtype": arr.dtype,
        "transform": transform,
        **opts,
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)


def to_ign(plain: Path, out: Path) -> None:
    """Write the plain-layout domain folder `plain` as IGN delivers it into `out` (new)."""
    info = json.loads((plain / "domain.json").read_text())
    for tile in raster_files(plain / "ortho"):
        with rasterio.open(tile) as src:
            img, t, nodata = src.read(), src.transform, src.nodata
        stem = tile.stem.replace("-LA93-0M20", "")
        _write(
            out / "ortho" / f"{stem}-LA93-0M20-E080.jp2",
            img[:3],
            t,
            "EPSG:2154",
            nodata=nodata,
            **_JP2,
        )
        _write(
            out / "ortho" / f"{stem}-LA93-0M20-IRC-E080.jp2",
            img[[3, 0, 1]],
            t,
            "EPSG:2154",
            nodata=nodata,
            **_JP2,
        )
    with rasterio.open(plain / "dtm.tif") as src:
        dtm, t = src.read(1), src.transform
    half = dtm.shape[1] // 2
    for k, (c0, c1) in enumerate(((0, half), (half, dtm.shape[1]))):
        x = t.c + c0 * t.a
        name = f"RGEALTI_FXX_{int(x):07d}_{int(t.f):07d}_MNT_LAMB93_IGN69_{k}.asc"
        _write(
            out / "rge_alti" / name,
            dtm[:, c0:c1],
            from_origin(x, t.f, t.a, -t.e),
            None,
            driver="AAIGrid",
            nodata=-99999.0,
            DECIMAL_PRECISION=6,
        )
    with rasterio.open(plain / "dsm.tif") as src:
        dsm, t = src.read(1), src.transform
        h = round(src.height * t.a / LIDAR_RES) + 1
        w = round(src.width * t.a / LIDAR_RES) + 1
    left, top = t.c - LIDAR_RES / 2, t.f + LIDAR_RES / 2
    shifted = np.full((h, w), -9999.0, dtype=np.float32)
    reproject(
        dsm,
        shifted,
        src_transform=t,
        src_crs="EPSG:2154",
        dst_nodata=-9999.0,
        dst_transform=from_origin(left, top, LIDAR_RES, LIDAR_RES),
        dst_crs="EPSG:2154",
        resampling=Resampling.bilinear,
    )
    name = f"LHD_FXX_{int(left):07d}_{int(top):07d}_MNS_O_0M50_LAMB93_IGN69.tif"
    _write(
        out / "lidar_hd" / name,
        shifted,
        from_origin(left, top, LIDAR_RES, LIDAR_RES),
        "EPSG:2154",
        nodata=-9999.0,
        compress="deflate",
    )
    labels = gpd.read_file(plain / "labels.gpkg")
    pairs = [OCSGE_PAIRS[int(c)] for c in labels["code"]]
    ocsge = gpd.GeoDataFrame(
        {
            "id": [f"OCSGE{i:09d}" for i in range(len(labels))],
            "code_cs": [p[0] for p in pairs],
            "code_us": [p[1] for p in pairs],
            "millesime": str(info.get("year", "")),
        },
        geometry=labels.geometry,
        crs=labels.crs,
    )
    (out / "ocsge").mkdir(parents=True, exist_ok=True)
    ocsge.to_file(
        out / "ocsge" / "OCCUPATION_SOL.gpkg",
        layer="occupation_sol",
        driver="GPKG",
        engine="pyogrio",
    )
    rows = ["code_cs,code_us,flair"] + [f"{cs},{us},{c}" for c, (cs, us) in OCSGE_PAIRS.items()]
    (out / "ocsge" / "ocsge_to_flair.csv").write_text("\n".join(rows) + "\n")
    (out / "domain.yaml").write_text(yaml.safe_dump(spec_for(info), sort_keys=False))


def convert_world(raw: Path) -> list[str]:
    """Rewrite every domain under ``raw/domains`` in the ign flavour; the domains done.

    Args:
        raw: The synthetic world's raw root.

    Returns:
        The names of the domains converted, sorted.
    """
    done = []
    for plain in sorted(p for p in (Path(raw) / "domains").iterdir() if p.is_dir()):
        if not (plain / "domain.json").is_file():
            continue
        tmp = plain.with_name(f".ign-{plain.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        to_ign(plain, tmp)
        shutil.rmtree(plain)
        tmp.rename(plain)
        done.append(plain.name)

    return done
