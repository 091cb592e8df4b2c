"""SentinelHubS1Provider against a local HTTP server playing OAuth + the Process API.

The real sentinelhub client runs; the service answers, per orbit direction asked in the
request's ``dataFilter.orbitDirection``, the TAR the evalscript promises (data.tif FLOAT32,
VV VH per acquisition, NaN without data; userdata.json). Expected values are those written
into the answer, converted by hand (10·log10).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from flair_pipeline.sentinel1.sentinelhub import SentinelHubS1Provider, s1_evalscript
from flair_pipeline.sentinel2.provider import Grid
from flair_pipeline.sentinel2.sentinelhub import SentinelHubSettings
from tests.sentinel2.test_sentinelhub import _plain_http, _tar, _tiff, server  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::sentinelhub.exceptions.SHRateLimitWarning")

TOKEN_PATH, PROCESS_PATH = "/oauth/token", "/api/v1/process"
GRID = Grid(left=600_000.0, top=6_800_000.0, width=6, height=4)
START, END = dt.date(2021, 1, 1), dt.date(2021, 12, 31)
#: per orbit direction, acquisitions as the service lists them (newest first) and (VV, VH)
SCENES = {
    "ASCENDING": [
        (
            "2021-06-07T17:40:13Z",
            "S1A_IW_GRDH_1SDV_20210607T174013_20210607T174038_038250_048389_A1B2",
            (0.08, 0.016),
        ),
        (
            "2021-03-04T17:40:13Z",
            "S1A_IW_GRDH_1SDV_20210304T174013_20210304T174038_036850_045591_9F4E",
            (0.12, 0.03),
        ),
    ],
    "DESCENDING": [
        (
            "2021-03-10T05:58:42Z",
            "S1B_IW_GRDH_1SDV_20210310T055842_20210310T055907_025957_0318DE_5C0A",
            (0.2, 0.05),
        ),
    ],
}


def _answer(request: Request) -> Response:
    body = request.get_json()
    direction = body["input"]["data"][0]["dataFilter"]["orbitDirection"]
    scenes = SCENES[direction]
    data = np.concatenate(
        [
            np.stack([np.full((GRID.height, GRID.width), v, np.float32) for v in pols])
            for *_, pols in scenes
        ]
    )
    data[1, 0, 0] = np.nan  # the first listed scene's VH: no data at the top-left pixel
    userdata = {
        "orbits": [
            {"dateFrom": d, "tiles": [{"productId": p, "shId": 7, "date": d}]} for d, p, _ in scenes
        ]
    }
    tar = _tar({"data.tif": _tiff(data, GRID), "userdata.json": json.dumps(userdata).encode()})
    return Response(
        tar, content_type="application/x-tar", headers={"x-processingunits-spent": "0.5"}
    )


@pytest.fixture
def settings(httpserver: HTTPServer, tmp_path: Path) -> SentinelHubSettings:
    return SentinelHubSettings(
        "flair-s1-client",
        "s1-secret",
        sh_base_url=httpserver.url_for("/").rstrip("/"),
        sh_token_url=httpserver.url_for(TOKEN_PATH),
        cache_folder=str(tmp_path / "cache"),
        max_retries=1,
        retry_sleep_s=0.01,
        timeout_s=10,
    )


def test_orbits_kept_apart_values_sorted_and_request_options(server, settings) -> None:  # noqa: F811
    server.expect_request(PROCESS_PATH, method="POST").respond_with_handler(_answer)
    prov = SentinelHubS1Provider(settings, coefficient="sigma0", units="linear")
    (zone,) = prov.fetch([GRID], START, END)
    asc, desc = zone["ascending"], zone["descending"]
    assert asc.dates == [dt.date(2021, 3, 4), dt.date(2021, 6, 7)]  # sorted by date
    assert desc.dates == [dt.date(2021, 3, 10)]
    # 2021-03-04 (listed second) VV 0.12 VH 0.03; 2021-06-07 VV 0.08, VH NaN at (0, 0)
    np.testing.assert_allclose(asc.data[0, 0], 0.12, rtol=1e-6)
    np.testing.assert_allclose(asc.data[0, 1], 0.03, rtol=1e-6)
    assert np.isnan(asc.data[1, 1, 0, 0]) and asc.data[1, 1, 1, 1] == pytest.approx(0.016)
    assert desc.data[0, 0, 2, 3] == pytest.approx(0.2) and desc.data[0, 1, 2, 3] == pytest.approx(
        0.05
    )
    assert asc.records[0]["product"].startswith("S1A_IW_GRDH_1SDV_20210304")
    assert (asc.records[0]["coefficient"], asc.records[0]["orbit_state"]) == ("sigma0", "ascending")
    assert prov.processing_units == 1.0  # two requests, 0.5 PU each
    bodies = [req.get_json() for req, _ in server.log if req.path == PROCESS_PATH]
    assert [b["input"]["data"][0]["dataFilter"]["orbitDirection"] for b in bodies] == [
        "ASCENDING",
        "DESCENDING",
    ]
    data = bodies[0]["input"]["data"][0]
    assert data["type"] == "sentinel-1-grd"
    assert data["processing"] == {
        "backCoeff": "SIGMA0_ELLIPSOID",
        "orthorectify": True,
        "demInstance": "COPERNICUS",
    }
    assert bodies[0]["evalscript"] == s1_evalscript()


def test_gamma0_in_db(server, settings) -> None:  # noqa: F811
    server.expect_request(PROCESS_PATH, method="POST").respond_with_handler(_answer)
    prov = SentinelHubS1Provider(settings, coefficient="gamma0", units="dB")
    (zone,) = prov.fetch([GRID], START, END, ("descending",))
    assert list(zone) == ["descending"]
    s = zone["descending"]
    assert s.data[0, 0, 1, 1] == pytest.approx(10 * math.log10(0.2), abs=1e-5)  # -6.9897 dB
    assert s.data[0, 1, 1, 1] == pytest.approx(10 * math.log10(0.05), abs=1e-5)  # -13.0103 dB
    assert s.records[0]["units"] == "dB" and s.records[0]["coefficient"] == "gamma0"
    (req,) = [r for r, _ in server.log if r.path == PROCESS_PATH]
    assert req.get_json()["input"]["data"][0]["processing"]["backCoeff"] == "GAMMA0_TERRAIN"
