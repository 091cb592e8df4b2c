"""Label layers read in place (issue 27 item 7): an ``https://`` or ``s3://`` GeoPackage is
read by extent through GDAL's ``/vsicurl/`` / ``/vsis3/``, fetching its spatial index and
the pages of the features kept, not the file; the features are those of the local file."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pytest_httpserver import HTTPServer

from flair_pipeline.dataset.rasterize import read_labels
from flair_pipeline.errors import InputError
from tests.range_server import Ranges

X0, Y0, CELL, N = 700_000.0, 6_600_000.0, 10.0, 120  # 120 x 120 squares of 10 m


@pytest.fixture(scope="module")
def gpkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """14,400 squares with codes 1..19 and a text field that makes the pages weigh."""
    rng = np.random.default_rng(7)
    i, j = np.divmod(np.arange(N * N), N)
    geoms = shapely.box(X0 + j * CELL, Y0 + i * CELL, X0 + (j + 1) * CELL, Y0 + (i + 1) * CELL)
    gdf = gpd.GeoDataFrame(
        {
            "code": rng.integers(1, 20, N * N),
            "note": [f"square {k:06d} " * 12 for k in range(N * N)],
        },
        geometry=geoms,
        crs=2154,
    )
    path = tmp_path_factory.mktemp("labels") / "labels.gpkg"
    gdf.to_file(path, layer="labels", engine="pyogrio")
    return path


@pytest.fixture
def served(httpserver: HTTPServer, gpkg: Path) -> Ranges:
    ranges = Ranges(httpserver)
    ranges.files["/raw/labels.gpkg"] = gpkg.read_bytes()
    return ranges


def _read(path: str, **kwargs: Any) -> gpd.GeoDataFrame:
    """read_labels in a child process: run in this process, the read hung, the loopback
    server's thread never answering (pyogrio seems to keep the GIL during GDAL's HTTP)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(read_labels, path, **kwargs).result()


def _same(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    assert list(a.index) == list(b.index)
    assert a["code"].tolist() == b["code"].tolist()
    assert a.geometry.to_wkb().tolist() == b.geometry.to_wkb().tolist()
    assert a.crs == b.crs


def test_a_served_layer_read_by_extent_fetches_a_small_part_of_the_file(
    gpkg: Path, served: Ranges
) -> None:
    """Planted bug: `within` dropped for URLs (the whole layer read): sent ~ the file."""
    within = shapely.box(X0 + 305, Y0 + 405, X0 + 395, Y0 + 495)  # 10 x 10 squares touched
    local = read_labels(gpkg, within=within)
    expected = int(
        sum(within.intersects(shapely.box(*g.bounds)) for g in gpd.read_file(gpkg).geometry)
    )
    assert len(local) == expected == 100
    remote = _read(served.url + "raw/labels.gpkg", within=within)
    _same(remote, local)
    assert remote.attrs["features_read"] == 100
    size = gpkg.stat().st_size
    assert served.sent < size / 10, (served.requests, served.sent, size)


def test_a_whole_served_layer_equals_the_local_file(gpkg: Path, served: Ranges) -> None:
    _same(_read("/vsicurl/" + served.url + "raw/labels.gpkg"), read_labels(gpkg))


def test_s3_urls_read_through_the_configured_endpoint(
    gpkg: Path, served: Ranges, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``s3://raw/labels.gpkg`` reads ``/raw/labels.gpkg`` from AWS_ENDPOINT_URL (path-style).
    Planted bug: no `vector_env` (pyogrio's GDAL never sees the endpoint): the read fails."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", served.url.rstrip("/"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    within = shapely.box(X0, Y0, X0 + 25, Y0 + 25)
    remote = _read("s3://raw/labels.gpkg", within=within)
    _same(remote, read_labels(gpkg, within=within))
    assert len(remote) == 9 and served.requests > 0


def test_a_missing_url_is_one_line_naming_it(served: Ranges) -> None:
    url = served.url + "raw/missing.gpkg"
    with pytest.raises(InputError, match=r"missing\.gpkg cannot be read") as err:
        _read(url)
    assert "\n" not in str(err.value)


def test_a_served_label_raster_equals_the_local_file(tmp_path: Path, served: Ranges) -> None:
    """A label raster (.tif) behind a URL is polygonised as the local file."""
    import rasterio
    from rasterio.transform import from_origin

    codes = np.repeat(np.repeat(np.arange(1, 10, dtype=np.uint8).reshape(3, 3), 8, 0), 8, 1)
    path = tmp_path / "labels.tif"
    profile = {"driver": "GTiff", "width": 24, "height": 24, "count": 1, "dtype": "uint8"}
    with rasterio.open(
        path, "w", crs="EPSG:2154", transform=from_origin(X0, Y0, 1.0, 1.0), **profile
    ) as dst:
        dst.write(codes, 1)
    served.files["/raw/labels.tif"] = path.read_bytes()
    from flair_pipeline.geo.label_mapping import LabelMapping

    mapping = LabelMapping(("value",))  # the raster's values are FLAIR codes
    remote = _read(served.url + "raw/labels.tif", mapping=mapping)
    assert sorted(remote["code"].tolist()) == list(range(1, 10))
    _same(remote, read_labels(path, mapping=mapping))
