"""SentinelHubProvider against a real local HTTP server playing OAuth + the Process API.

The real sentinelhub client runs (token fetch, retries, rate-limit loop, cache); only the
service is faked, so these tests pin how we drive sentinelhub, not how it is built.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import tarfile
import time
from pathlib import Path
from urllib.parse import quote_plus

import numpy as np
import pytest
import rasterio
from pytest_httpserver import HTTPServer
from rasterio.io import MemoryFile
from werkzeug import Request, Response

from flair_pipeline.errors import ConfigError, InputError
from flair_pipeline.sentinel2.provider import Grid, TimeSeries
from flair_pipeline.sentinel2.sentinelhub import (
    SentinelHubCredentialsError,
    SentinelHubProvider,
    SentinelHubSettings,
    evalscript,
)

pytestmark = pytest.mark.filterwarnings("ignore::sentinelhub.exceptions.SHRateLimitWarning")

CLIENT_ID = "flair-test-client"
SECRET = "Zq9-s3cr3t/FLAIR+=&tail!"  # distinctive, with characters that URL-encoding changes
TOKEN_PATH, PROCESS_PATH = "/oauth/token", "/api/v1/process"
GRID_A = Grid(left=600_000.0, top=6_800_000.0, width=7, height=5)
GRID_B = Grid(left=610_000.0, top=6_810_000.0, width=4, height=3)
START, END = dt.date(2021, 1, 1), dt.date(2021, 12, 31)
# As the service lists them: newest first; the provider must sort by date.
ORBITS_A = [
    ("2021-07-14T10:56:21Z", "S2B_MSIL2A_20210714T105619_N0301_R094_T31TCJ_20210714T133441"),
    ("2021-03-02T10:50:31Z", "S2A_MSIL2A_20210302T105031_N0214_R051_T31TCJ_20210302T133900"),
    ("2021-05-11T10:56:19Z", "S2B_MSIL2A_20210511T105619_N0300_R094_T31TCJ_20210511T140530"),
]
ORBITS_B = [
    ("2021-02-10T10:50:31Z", "S2A_MSIL2A_20210210T105031_N0214_R051_T31TDJ_20210210T131428")
]


def _tiff(arr: np.ndarray, grid: Grid) -> bytes:
    with MemoryFile() as mem:
        profile = dict(
            driver="GTiff",
            width=grid.width,
            height=grid.height,
            count=arr.shape[0],
            dtype=arr.dtype,
            crs="EPSG:2154",
            transform=grid.transform,
        )
        with mem.open(**profile) as dst:
            dst.write(arr)
        return mem.read()


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


def _scene(grid: Grid, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One acquisition's (10, H, W) uint16 bands and (2, H, W) uint8 masks, all distinct."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 10_000, (10, grid.height, grid.width), dtype=np.uint16)
    masks = rng.integers(0, 101, (2, grid.height, grid.width), dtype=np.uint8)
    return data, masks


def _response(grid: Grid, orbits: list[tuple[str, str]]) -> bytes:
    """The TAR the service would answer for `orbits`, scene-major bands as the evalscript writes."""
    scenes = [_scene(grid, i + int(grid.left)) for i in range(len(orbits))] or [
        (
            np.zeros((10, grid.height, grid.width), np.uint16),
            np.zeros((2, grid.height, grid.width), np.uint8),
        )
    ]
    userdata = {
        "orbits": [
            {"dateFrom": d, "tiles": [{"productId": p, "shId": 1, "date": d}]} for d, p in orbits
        ]
    }
    return _tar(
        {
            "data.tif": _tiff(np.concatenate([s[0] for s in scenes]), grid),
            "masks.tif": _tiff(np.concatenate([s[1] for s in scenes]), grid),
            "userdata.json": json.dumps(userdata).encode(),
        }
    )


def _expected(
    grid: Grid, orbits: list[tuple[str, str]]
) -> tuple[np.ndarray, np.ndarray, list, list]:
    order = sorted(range(len(orbits)), key=lambda i: orbits[i][0])
    scenes = [_scene(grid, i + int(grid.left)) for i in range(len(orbits))]
    data = np.stack([scenes[i][0] for i in order])
    masks = np.stack([scenes[i][1] for i in order])
    dates = [dt.date.fromisoformat(orbits[i][0][:10]) for i in order]
    return data, masks, dates, [orbits[i][1] for i in order]


def _answer(request: Request) -> Response:
    """Process API: the TAR of the grid whose bbox was asked for."""
    bbox = request.get_json()["input"]["bounds"]["bbox"]
    grid, orbits = (GRID_A, ORBITS_A) if bbox[0] == GRID_A.left else (GRID_B, ORBITS_B)
    headers = {"x-processingunits-spent": "0.25" if grid is GRID_A else "0.125"}
    return Response(_response(grid, orbits), content_type="application/x-tar", headers=headers)


@pytest.fixture(autouse=True)
def _plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """oauthlib refuses http:// token URLs unless told this is a test."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def server(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_json(
        {"access_token": "tok-abc", "expires_in": 3600, "token_type": "Bearer"}
    )
    return httpserver


@pytest.fixture
def settings(httpserver: HTTPServer, tmp_path: Path) -> SentinelHubSettings:
    return SentinelHubSettings(
        CLIENT_ID,
        SECRET,
        sh_base_url=httpserver.url_for("/").rstrip("/"),
        sh_token_url=httpserver.url_for(TOKEN_PATH),
        cache_folder=str(tmp_path / "cache"),
        max_retries=2,
        retry_sleep_s=0.01,
        timeout_s=10,
    )


def _calls(httpserver: HTTPServer, path: str) -> list[Request]:
    return [req for req, _ in httpserver.log if req.path == path]


def _assert_series(series: TimeSeries, grid: Grid, orbits: list[tuple[str, str]]) -> None:
    data, masks, dates, products = _expected(grid, orbits)
    assert series.grid == grid
    assert series.data.shape == (len(orbits), 10, grid.height, grid.width)
    assert series.data.dtype == np.uint16 and series.masks.dtype == np.uint8
    np.testing.assert_array_equal(series.data, data)
    np.testing.assert_array_equal(series.masks, masks)
    assert series.dates == dates and series.products == products


def test_fetch_parses_series_and_records_pu(
    server: HTTPServer, settings: SentinelHubSettings
) -> None:
    server.expect_request(PROCESS_PATH, method="POST").respond_with_handler(_answer)
    provider = SentinelHubProvider(settings)
    a, b = provider.fetch([GRID_A, GRID_B], START, END)
    _assert_series(a, GRID_A, ORBITS_A)
    _assert_series(b, GRID_B, ORBITS_B)
    assert a.dates == sorted(a.dates)
    assert provider.pu_per_request == [0.25, 0.125] and provider.pu_spent == 0.375
    assert provider.processing_units == 0.375  # the base class's cost accounting
    assert len(_calls(server, TOKEN_PATH)) == 1  # one token for all grids


def test_request_body(server: HTTPServer, settings: SentinelHubSettings) -> None:
    server.expect_request(PROCESS_PATH, method="POST").respond_with_handler(_answer)
    SentinelHubProvider(settings).fetch([GRID_A], START, END)
    (req,) = _calls(server, PROCESS_PATH)
    body = req.get_json()
    assert req.headers["Authorization"] == "Bearer tok-abc"
    assert body["evalscript"] == evalscript()
    assert (
        'mosaicking: "ORBIT"' in body["evalscript"] and "updateOutputMetadata" in body["evalscript"]
    )
    bounds = body["input"]["bounds"]
    assert bounds["properties"]["crs"] == "http://www.opengis.net/def/crs/EPSG/0/2154"
    assert bounds["bbox"] == list(GRID_A.bounds)
    assert (body["output"]["width"], body["output"]["height"]) == (7, 5)
    (data,) = body["input"]["data"]
    assert data["type"] == "sentinel-2-l2a"
    assert data["dataFilter"]["timeRange"] == {
        "from": "2021-01-01T00:00:00Z",
        "to": "2021-12-31T23:59:59Z",
    }
    assert data["processing"] == {"upsampling": "NEAREST", "harmonizeValues": True}
    outputs = {r["identifier"]: r["format"]["type"] for r in body["output"]["responses"]}
    assert outputs == {"data": "image/tiff", "masks": "image/tiff", "userdata": "application/json"}
    (token_req,) = _calls(server, TOKEN_PATH)
    assert "grant_type=client_credentials" in token_req.get_data(as_text=True)


def test_cache_answers_second_run_without_pu(
    server: HTTPServer, settings: SentinelHubSettings
) -> None:
    server.expect_request(PROCESS_PATH, method="POST").respond_with_handler(_answer)
    first = SentinelHubProvider(settings).fetch([GRID_A], START, END)[0]
    again = SentinelHubProvider(settings)
    (second,) = again.fetch([GRID_A], START, END)
    assert len(_calls(server, PROCESS_PATH)) == 1 and len(_calls(server, TOKEN_PATH)) == 1
    np.testing.assert_array_equal(first.data, second.data)
    assert again.pu_spent == 0.0 and again.requests[0].from_cache


@pytest.mark.parametrize(
    ("status", "headers"), [(429, {"Retry-After": "20"}), (429, {}), (500, {}), (503, {})]
)
def test_transient_error_then_success(
    server: HTTPServer, settings: SentinelHubSettings, status: int, headers: dict[str, str]
) -> None:
    server.expect_oneshot_request(PROCESS_PATH, method="POST").respond_with_json(
        {"error": {"status": status, "reason": "busy"}}, status=status, headers=headers
    )
    server.expect_request(PROCESS_PATH, method="POST").respond_with_handler(_answer)
    provider = SentinelHubProvider(settings)
    (series,) = provider.fetch([GRID_A], START, END)
    _assert_series(series, GRID_A, ORBITS_A)
    assert len(_calls(server, PROCESS_PATH)) == 2
    assert provider.pu_spent == 0.25


@pytest.mark.parametrize("status", [429, 500])
def test_persistent_error_gives_up_bounded(
    server: HTTPServer, settings: SentinelHubSettings, status: int, monkeypatch
) -> None:
    headers = {"Retry-After": "5"} if status == 429 else {}
    server.expect_request(PROCESS_PATH, method="POST").respond_with_json(
        {"error": {"status": status, "reason": "nope"}}, status=status, headers=headers
    )
    slept: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:  # sentinelhub's retry loops call time.sleep
        slept.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    (result,) = SentinelHubProvider(settings).fetch_each([GRID_A], START, END)
    # bounded by counts, not by the wall clock: max_retries + 1 requests (below), and at
    # most one back-off and one rate-limit wait between two of them, none long
    assert 1 <= len(slept) <= 2 * settings.max_retries and sum(slept) < 1.0, slept
    if status == 500:  # sentinelhub's back-off: retry_sleep_s, then x3 (handlers.py)
        backoff = [x for x in slept if x in (0.01, 0.03)]
        assert backoff == [settings.retry_sleep_s, 3 * settings.retry_sleep_s], slept
    assert isinstance(result, InputError)
    assert "left=600000 top=6800000" in str(result) and f"{status}" in str(result)
    assert len(_calls(server, PROCESS_PATH)) == settings.max_retries + 1
    with pytest.raises(InputError, match="left=600000"):
        SentinelHubProvider(settings).fetch([GRID_A], START, END)


def test_fetch_each_keeps_other_grids(server: HTTPServer, settings: SentinelHubSettings) -> None:
    def answer(request: Request) -> Response:
        if request.get_json()["input"]["bounds"]["bbox"][0] == GRID_B.left:
            return Response(json.dumps({"error": {"message": "bad bbox"}}), status=400)
        return _answer(request)

    server.expect_request(PROCESS_PATH, method="POST").respond_with_handler(answer)
    provider = SentinelHubProvider(settings)
    a, b = provider.fetch_each([GRID_A, GRID_B], START, END)
    _assert_series(a, GRID_A, ORBITS_A)
    assert isinstance(b, InputError) and "left=610000" in str(b) and "bad bbox" in str(b)
    assert len(_calls(server, PROCESS_PATH)) == 2  # a 400 is not retried
    with pytest.raises(InputError, match="left=610000"):
        provider.fetch([GRID_A, GRID_B], START, END)


def test_no_acquisition_is_an_error_naming_the_grid(
    server: HTTPServer, settings: SentinelHubSettings
) -> None:
    server.expect_request(PROCESS_PATH, method="POST").respond_with_data(
        _response(GRID_A, []), content_type="application/x-tar"
    )
    (result,) = SentinelHubProvider(settings).fetch_each([GRID_A], START, END)
    assert isinstance(result, InputError) and "no Sentinel-2 L2A acquisition" in str(result)
    assert "left=600000" in str(result)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(
            {"error": "unauthorized_client", "error_description": "Invalid client credentials"}
        ),
        "",
    ],
)
def test_token_401_is_a_credentials_error(
    httpserver: HTTPServer, settings: SentinelHubSettings, body: str
) -> None:
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_data(
        body, status=401, content_type="application/json"
    )
    with pytest.raises(SentinelHubCredentialsError, match="SH_CLIENT_ID") as info:
        SentinelHubProvider(settings).fetch_each([GRID_A, GRID_B], START, END)
    assert "rejected the credentials" in str(info.value)
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert not _calls(httpserver, PROCESS_PATH)


def test_process_401_is_a_credentials_error(
    server: HTTPServer, settings: SentinelHubSettings
) -> None:
    server.expect_request(PROCESS_PATH, method="POST").respond_with_json(
        {"error": {"status": 401, "reason": "Unauthorized"}}, status=401
    )
    with pytest.raises(SentinelHubCredentialsError, match="SH_CLIENT_ID"):
        SentinelHubProvider(settings).fetch([GRID_A, GRID_B], START, END)
    assert len(_calls(server, PROCESS_PATH)) == 1  # not retried, and the next grid not tried


def test_secret_never_leaks(
    httpserver: HTTPServer,
    settings: SentinelHubSettings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    needles = [SECRET, quote_plus(SECRET)]
    texts = [repr(settings), str(settings)]

    # A rejected token (the server even echoes the form body), then a good run and failures.
    def echo(req: Request) -> Response:
        said = {"error": "invalid_client", "error_description": req.get_data(as_text=True)}
        return Response(json.dumps(said), status=401)

    httpserver.expect_oneshot_request(TOKEN_PATH, method="POST").respond_with_handler(echo)
    with pytest.raises(SentinelHubCredentialsError) as info:
        SentinelHubProvider(settings).fetch([GRID_A], START, END)
    texts.append(str(info.value))
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_json(
        {"access_token": "tok-abc", "expires_in": 3600, "token_type": "Bearer"}
    )
    httpserver.expect_oneshot_request(PROCESS_PATH, method="POST").respond_with_data(
        f"echo {SECRET}", status=400
    )
    httpserver.expect_request(PROCESS_PATH, method="POST").respond_with_handler(_answer)
    provider = SentinelHubProvider(settings)
    texts += [str(r) for r in provider.fetch_each([GRID_A, GRID_B], START, END)]
    assert any("HTTP 400" in t for t in texts)
    assert any(
        r.levelno == logging.DEBUG and "client_secret" in r.getMessage() for r in caplog.records
    )
    texts.append(caplog.text)
    for text in texts:
        assert not any(n in text for n in needles)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files  # the cache was written
    for path in files:
        assert not any(n.encode() in path.read_bytes() for n in needles), path


def test_settings_from_env() -> None:
    with pytest.raises(ConfigError, match="SH_CLIENT_ID, SH_CLIENT_SECRET"):
        SentinelHubSettings.from_env({})
    with pytest.raises(ConfigError, match="SH_CLIENT_SECRET"):
        SentinelHubSettings.from_env({"SH_CLIENT_ID": "x"})
    s = SentinelHubSettings.from_env(
        {"SH_CLIENT_ID": "x", "SH_CLIENT_SECRET": SECRET}, max_retries=1
    )
    assert (s.client_id, s.client_secret, s.max_retries) == ("x", SECRET, 1)
    assert SECRET not in repr(s)
    cfg = s.sh_config()
    assert cfg.max_retries == cfg.max_download_attempts == 2  # 429 loop bounded
    assert cfg.sh_base_url == "https://sh.dataspace.copernicus.eu"
    assert SECRET not in repr(cfg)


def test_evalscript_is_package_data() -> None:
    import flair_pipeline.sentinel2 as pkg

    path = Path(pkg.__file__).parent / "evalscripts" / "flair_l2a.js"
    assert path.is_file() and evalscript() == path.read_text(encoding="utf-8")
    assert evalscript().startswith("//VERSION=3")
    assert rasterio.__version__  # rasterio reads the TIFFs of the response


def test_process_403_is_an_account_error(server: HTTPServer, settings: SentinelHubSettings) -> None:
    server.expect_request(PROCESS_PATH, method="POST").respond_with_json(
        {"error": {"status": 403, "message": "no processing units left"}}, status=403
    )
    with pytest.raises(SentinelHubCredentialsError, match="processing units"):
        SentinelHubProvider(settings).fetch_each([GRID_A], START, END)


def test_token_endpoint_down_gives_up(
    httpserver: HTTPServer, settings: SentinelHubSettings
) -> None:
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_data("down", status=502)
    with pytest.raises(InputError, match="token URL") as info:
        SentinelHubProvider(settings).fetch_each([GRID_A], START, END)
    assert not isinstance(info.value, SentinelHubCredentialsError) and "502" in str(info.value)
    assert len(_calls(httpserver, TOKEN_PATH)) == settings.max_retries + 1


def test_unreadable_answer_and_cache(server: HTTPServer, settings: SentinelHubSettings) -> None:
    server.expect_oneshot_request(PROCESS_PATH, method="POST").respond_with_data(
        b"not a tar", content_type="application/x-tar"
    )
    server.expect_request(PROCESS_PATH, method="POST").respond_with_handler(_answer)
    provider = SentinelHubProvider(settings)
    (bad,) = provider.fetch_each([GRID_A], START, END)
    assert isinstance(bad, InputError) and "unexpected Sentinel Hub answer" in str(bad)
    # The bad answer was cached: the next run notices, downloads again and heals the cache.
    (series,) = provider.fetch([GRID_A], START, END)
    _assert_series(series, GRID_A, ORBITS_A)
    assert len(_calls(server, PROCESS_PATH)) == 2
    assert SentinelHubProvider(settings).fetch([GRID_A], START, END)[0].dates == series.dates
    assert len(_calls(server, PROCESS_PATH)) == 2


def test_requests_go_to_the_configured_deployment() -> None:
    provider = SentinelHubProvider(SentinelHubSettings("id", "secret"))  # CDSE defaults
    (request,) = provider._request(GRID_A, START, END).download_list
    assert request.url == "https://sh.dataspace.copernicus.eu/api/v1/process"
    other = SentinelHubProvider(SentinelHubSettings("id", "secret", sh_base_url="https://x.test/"))
    assert (
        other._request(GRID_A, START, END).download_list[0].url == "https://x.test/api/v1/process"
    )
