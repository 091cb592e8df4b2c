"""The s1_series_valid check on real series files: one line per problem, naming the zone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from flair_pipeline.layout import DatasetLayout
from flair_pipeline.sentinel1.provider import RECORD_KEYS, S1Series
from flair_pipeline.sentinel1.series import write_s1_series
from flair_pipeline.sentinel1.validate import validate_domain_s1
from flair_pipeline.sentinel2.provider import Grid
from flair_pipeline.sentinel2.series import SuperArea

GRID = Grid(left=600000.0, top=6400000.0, width=4, height=3)
AREA = SuperArea("D033_2021", "Z1_AA", GRID, {})


def _series(
    orbit: str,
    *,
    year: int = 2021,
    units: str = "linear",
    coef: str = "gamma0",
    value: float = 0.05,
) -> S1Series:
    dates = [dt.date(year, 3, 1), dt.date(year, 3, 13)]
    data = np.full((2, 2, 3, 4), value, np.float32)
    data[0, :, 0, 0] = np.nan  # no measurement: allowed
    recs = [
        dict.fromkeys(RECORD_KEYS)
        | {"date": str(d), "coefficient": coef, "units": units, "orbit_state": orbit}
        for d in dates
    ]
    return S1Series(GRID, orbit, data, dates, recs)  # type: ignore[arg-type]


def test_both_orbits_in_range_in_the_year_pass(tmp_path: Path) -> None:
    layout = DatasetLayout(tmp_path)
    for orbit in ("ascending", "descending"):
        write_s1_series(layout, AREA, _series(orbit))
    assert validate_domain_s1(layout, "D033_2021", 2021) == []


def test_each_problem_is_one_line_naming_zone_and_orbit(tmp_path: Path) -> None:
    layout = DatasetLayout(tmp_path)
    write_s1_series(layout, AREA, _series("ascending", value=-12.0))  # dB value, linear units
    problems = validate_domain_s1(layout, "D033_2021", 2021)
    assert problems == [
        "Z1_AA ASC: 46 value(s) outside the linear range (0.0, 100.0], e.g. -12.0",
        "Z1_AA DESC: no descending series (FLAIR-HUB needs both directions)",
    ]
    write_s1_series(
        layout, AREA, _series("descending", year=2020, units="dB", coef="sigma0", value=-12.0)
    )
    problems = validate_domain_s1(layout, "D033_2021", 2021)
    assert "Z1_AA DESC: 2 date(s) outside 2021-01-01..2021-12-31, first 2020-03-01" in problems
    assert any(
        p.startswith(
            "the domain mixes coefficients or units: gamma0 linear in Z1_AA ASC; "
            "sigma0 dB in Z1_AA DESC"
        )
        for p in problems
    )


def test_a_domain_without_series_has_nothing_to_judge(tmp_path: Path) -> None:
    assert validate_domain_s1(DatasetLayout(tmp_path), "D033_2021", 2021) == []
