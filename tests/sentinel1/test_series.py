"""The Sentinel-1 series contract and its files: paths, round trip, records."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from flair_pipeline.layout import DatasetLayout
from flair_pipeline.sentinel1.provider import RECORD_KEYS, S1Series, to_db, to_linear
from flair_pipeline.sentinel1.series import read_s1_series, write_s1_series
from flair_pipeline.sentinel2.provider import Grid
from flair_pipeline.sentinel2.series import SuperArea


def _record(day: str, coefficient: str = "gamma0") -> dict[str, object]:
    rec: dict[str, object] = dict.fromkeys(RECORD_KEYS)
    rec.update(date=day, product=f"S1A_{day}", coefficient=coefficient, units="linear")
    return rec


def test_series_files_round_trip(tmp_path: Path) -> None:
    grid = Grid(600000.0, 6800000.0, 3, 2)
    data = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3)
    data[1, 1, 0, 0] = np.nan
    dates = [dt.date(2021, 3, 4), dt.date(2021, 3, 16)]
    series = S1Series(grid, "descending", data, dates, [_record("20210304"), _record("20210316")])
    layout = DatasetLayout(tmp_path)
    paths = write_s1_series(layout, SuperArea("D1", "Z1", grid, {}), series)
    sen1 = tmp_path / "sentinel1" / "D1" / "Z1"
    assert paths == [
        sen1 / "SEN1-DESC_sp_D1-Z1_data.npy",
        sen1 / "SEN1-DESC_sp_D1-Z1_dates.txt",
        sen1 / "SEN1-DESC_sp_D1-Z1_products.json",
    ]
    assert paths[1].read_text() == "20210304\n20210316\n"
    assert json.loads(paths[2].read_text())["bands"] == ["VV", "VH"]
    back = read_s1_series(layout, "D1", "Z1", "descending")
    np.testing.assert_array_equal(back.data, data)  # NaN in the same place
    assert back.dates == dates
    assert [r["product"] for r in back.records] == ["S1A_20210304", "S1A_20210316"]


def test_a_series_never_mixes_coefficients() -> None:
    grid = Grid(0.0, 20.0, 1, 1)
    with pytest.raises(ValueError, match="mixes"):
        S1Series(
            grid,
            "ascending",
            np.zeros((2, 2, 1, 1), np.float32),
            [dt.date(2021, 1, 1), dt.date(2021, 1, 2)],
            [_record("20210101", "sigma0"), _record("20210102", "gamma0")],
        )


def test_to_db_is_ten_log10() -> None:
    out = to_db(np.array([1.0, 0.1, 0.0, np.nan], np.float32))
    assert out[0] == 0.0 and out[1] == pytest.approx(-10.0)
    assert np.isnan(out[2]) and np.isnan(out[3])


def test_to_linear_undoes_db() -> None:
    out = to_linear(np.array([0.0, -10.0, 3.0, np.nan], np.float32))
    assert (
        out[0] == 1.0
        and out[1] == pytest.approx(0.1)
        and out[2] == pytest.approx(1.99526, rel=1e-5)
    )
    assert np.isnan(out[3])
