"""NDVI profiles per class: pixels are labelled by the polygon holding their centre."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import shapely

from flair_pipeline.sentinel2.profiles import class_profiles
from flair_pipeline.sentinel2.provider import Grid, TimeSeries


def test_profiles_follow_the_label_polygons() -> None:
    grid = Grid(left=1000.0, top=2000.0, width=4, height=2)  # 40 m x 20 m
    t = 3
    data = np.zeros((t, 10, 2, 4), np.uint16)
    data[:, 2] = 1000  # red
    data[:, 6, :, :2] = 9000  # NIR: left half vegetated (NDVI 0.8), right half bare (0)
    data[:, 6, :, 2:] = 1000
    masks = np.zeros((t, 2, 2, 4), np.uint8)
    masks[1, 1, :, 0] = 90  # date 2 cloudy over column 0 only
    dates = [dt.date(2021, 3, 1), dt.date(2021, 6, 1), dt.date(2021, 9, 1)]
    series = TimeSeries(grid, data, masks, dates, ["a", "b", "c"])
    labels = gpd.GeoDataFrame(
        {"code": [10, 11, 1]},
        geometry=[
            shapely.box(1000, 1980, 1020, 2000),
            shapely.box(1020, 1980, 1040, 2000),
            shapely.box(0, 0, 10, 10),
        ],
        crs="EPSG:2154",
    )
    prof = class_profiles(series, labels, per_class=10)
    assert set(prof) == {"herbaceous vegetation", "agricultural land"}  # building: not plotted
    herb, agri = prof["herbaceous vegetation"], prof["agricultural land"]
    assert len(herb) == 4 and len(agri) == 4  # 2 x 2 pixel centres in each polygon
    np.testing.assert_allclose(np.concatenate([p[1] for p in herb]), 0.8, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([p[1] for p in agri]), 0.0, atol=1e-6)
    days = sorted(len(p[0]) for p in herb)
    assert days == [2, 2, 3, 3]  # the cloudy date is dropped where it is cloudy only
    assert {int(d) for p in agri for d in p[0]} == {d.timetuple().tm_yday for d in dates}
