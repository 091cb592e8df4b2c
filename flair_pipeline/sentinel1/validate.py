"""The ``s1_series_valid`` check: a domain's Sentinel-1 series as written, read back and judged.

Run after ``sentinel1_series`` on the files themselves (``sentinel1/series.py``'s format),
not on what the build believed it wrote. A domain's series pass when, for every zone
written:

- every orbit direction asked is there (by default both, FLAIR-HUB's ``SENTINEL1-ASC_TS``
  and ``-DESC_TS``; one direction alone is a problem, naming the zone and the missing one);
- every value is NaN (no measurement) or finite and in the range of its units: linear
  power in (0, 100] (the brightest urban targets stay below 20 dB), dB in [-60, 20];
  a date without any measurement at all is a problem too;
- every date lies in the domain's year (or in the range asked, when given), and each
  record's ``orbit_state`` is the file's direction;
- the whole domain holds one coefficient and one unit (no σ0 / γ0 mix, no linear / dB
  mix across zones or directions).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from flair_pipeline.errors import InputError
from flair_pipeline.layout import DatasetLayout
from flair_pipeline.sentinel1.provider import ORBIT_CODES, ORBITS
from flair_pipeline.sentinel1.series import read_s1_series

#: Plausible range of backscatter per unit: (low exclusive for linear, high).
RANGES = {"linear": (0.0, 100.0), "dB": (-60.0, 20.0)}


def zones_written(layout: DatasetLayout, domain: str) -> list[str]:
    """The zones of `domain` with at least one Sentinel-1 file.

    Args:
        layout: The dataset layout.
        domain: Domain id.

    Returns:
        Zone names, sorted.
    """
    probe = layout.sen1_file(domain, "ZONE", "ASC", "data.npy")
    root = probe.parent.parent
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("SEN1-*")))


def validate_domain_s1(
    layout: DatasetLayout,
    domain: str,
    year: int,
    span: tuple[dt.date, dt.date] | None = None,
    orbits: tuple[str, ...] = ORBITS,
) -> list[str]:
    """Every problem of `domain`'s written Sentinel-1 series, one line each (empty: valid).

    Args:
        layout: The dataset layout.
        domain: Domain id.
        year: The domain's year (dates must fall in it unless `span` is given).
        span: The time range asked (first, last day inclusive), or None for `year`.
        orbits: The orbit directions asked (``sentinel1.orbits``): each must be there.

    Returns:
        Lines ``<zone> <ASC|DESC>: <what>`` naming the file part at fault.
    """
    first, last = span or (dt.date(year, 1, 1), dt.date(year, 12, 31))
    problems: list[str] = []
    kinds: dict[tuple[str, str], list[str]] = {}
    for zone in zones_written(layout, domain):
        for orbit in orbits:
            code = ORBIT_CODES[orbit]
            where = f"{zone} {code}"
            if not layout.sen1_file(domain, zone, code, "data.npy").is_file():
                problems.append(f"{where}: no {orbit} series (FLAIR-HUB needs both directions)")
                continue
            try:
                stored = read_s1_series(layout, domain, zone, code)
            except InputError as exc:
                problems.append(f"{where}: {exc}")
                continue
            problems += _judge(where, orbit, stored.data, stored.dates, stored.records, first, last)
            for r in stored.records:
                kinds.setdefault((str(r.get("coefficient")), str(r.get("units"))), []).append(where)
    if len(kinds) > 1:
        seen = "; ".join(f"{c} {u} in {', '.join(sorted(set(w)))}" for (c, u), w in kinds.items())
        problems.append(f"the domain mixes coefficients or units: {seen}")
    return problems


def _judge(
    where: str,
    orbit: str,
    data: np.ndarray,
    dates: list[dt.date],
    records: list[dict[str, object]],
    first: dt.date,
    last: dt.date,
) -> list[str]:
    """The problems of one zone's series in one direction.

    Returns:
        One line per problem, prefixed with `where`.
    """
    out: list[str] = []
    if data.ndim != 4 or data.shape[1] != 2 or data.dtype != np.float32:
        return [f"{where}: data {data.shape} {data.dtype}, expected T x 2 x H x W float32"]
    if not dates:
        out.append(f"{where}: no date")
    outside = [d for d in dates if not first <= d <= last]
    if outside:
        out.append(f"{where}: {len(outside)} date(s) outside {first}..{last}, first {outside[0]}")
    wrong = {str(r.get("orbit_state")) for r in records} - {orbit}
    if wrong:
        out.append(f"{where}: records say orbit_state {sorted(wrong)} in the {orbit} file")
    units = {str(r.get("units")) for r in records}
    if len(units) == 1 and (u := units.pop()) in RANGES:
        lo, hi = RANGES[u]
        vals = data[~np.isnan(data)]
        bad = ~np.isfinite(vals) | (vals > hi) | ((vals <= lo) if u == "linear" else (vals < lo))
        if bad.any():
            out.append(
                f"{where}: {int(bad.sum())} value(s) outside the {u} range ({lo}, {hi}], "
                f"e.g. {float(vals[bad][0])}"
            )
    elif units:
        out.append(
            f"{where}: units {sorted(units)} unknown or mixed, expected one of {sorted(RANGES)}"
        )
    empty = [dates[t] for t in range(min(len(dates), data.shape[0])) if np.isnan(data[t]).all()]
    if empty:
        out.append(f"{where}: {len(empty)} date(s) without any measurement, first {empty[0]}")
    return out


__all__ = ["validate_domain_s1", "zones_written"]
