"""The dataset's on-disk format of a zone's Sentinel-1 series, one orbit direction per file set.

Beside the zone's Sentinel-2 super-area (same grid, built by
:func:`flair_pipeline.sentinel2.series.super_areas`), each orbit direction gets three files
under ``sentinel1/<domain>/<zone>/``: ``SEN1-<ASC|DESC>_sp_<domain>-<zone>_data.npy``
(T×2×H×W float32, VV then VH, NaN without measurement), ``_dates.txt`` (one ``YYYYMMDD`` per
date) and ``_products.json`` (one record per date: provider, product, coefficient, units,
orbit state, relative orbit, polarisations, nodata, border noise, resampling).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flair_pipeline.errors import InputError
from flair_pipeline.io import atomic_path
from flair_pipeline.layout import SEN1_PARTS, DatasetLayout
from flair_pipeline.sentinel1.provider import BANDS, ORBIT_CODES, S1Series
from flair_pipeline.sentinel2.series import SuperArea


@dataclass(frozen=True)
class StoredS1:
    """A zone's series in one orbit direction, as read back from disk."""

    data: np.ndarray  # (T, 2, H, W) float32
    dates: list[dt.date]
    records: list[dict[str, Any]]


def write_s1_series(layout: DatasetLayout, area: SuperArea, series: S1Series) -> list[Path]:
    """Write a zone's series of one orbit direction, each file atomically.

    Args:
        layout: The dataset layout.
        area: The zone's super-area (its grid must be the series' grid).
        series: The series: data float32 (T, 2, H, W), dates, one record per date.

    Returns:
        The three files written: ``_data.npy``, ``_dates.txt``, ``_products.json``.

    Raises:
        ValueError: the series was fetched on another grid than the zone's super-area.
    """
    if series.grid != area.grid:
        raise ValueError(f"{area.domain}/{area.zone}: series grid {series.grid} != {area.grid}")
    code = ORBIT_CODES[series.orbit]
    paths = [layout.sen1_file(area.domain, area.zone, code, part) for part in SEN1_PARTS]
    with atomic_path(paths[0]) as tmp, open(tmp, "wb") as f:
        np.save(f, series.data)
    with atomic_path(paths[1], allow_empty=True) as tmp:
        tmp.write_text("".join(f"{d:%Y%m%d}\n" for d in series.dates))
    doc = {
        "orbit_state": series.orbit,
        "bands": list(BANDS),
        "nodata_in_data": "NaN",
        "records": series.records,
        "skipped": [{"product": p, "why": why} for p, why in series.skipped],
    }
    with atomic_path(paths[2]) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    return paths


def read_s1_series(layout: DatasetLayout, domain: str, zone: str, orbit: str) -> StoredS1:
    """Load a zone's series of one orbit direction.

    Args:
        layout: The dataset layout.
        domain: Domain id.
        zone: Zone name.
        orbit: ``ascending``/``descending`` or their codes ``ASC``/``DESC``.

    Returns:
        The data, dates and per-date records, as written.

    Raises:
        InputError: a file is missing, or the three files disagree on the number of dates.
    """
    code = ORBIT_CODES.get(orbit, orbit)
    data_f, dates_f, products_f = (layout.sen1_file(domain, zone, code, p) for p in SEN1_PARTS)
    for f in (data_f, dates_f, products_f):
        if not f.is_file():
            raise InputError(f"{f}: missing; rebuild the zone's Sentinel-1 series")
    data = np.load(data_f)
    dates = [dt.datetime.strptime(s, "%Y%m%d").date() for s in dates_f.read_text().split()]
    records = json.loads(products_f.read_text())["records"]
    if not (len(data) == len(dates) == len(records)):
        raise InputError(
            f"{data_f.parent}: {len(data)} dates in data, {len(dates)} in {dates_f.name}, "
            f"{len(records)} in {products_f.name}; rebuild the zone's Sentinel-1 series"
        )
    return StoredS1(data, dates, records)
