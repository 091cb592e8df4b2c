"""Bounded network behaviour of StacProvider against a loopback server (no wall-clock asserts).

Retries are counted as requests the server saw, and waits as the seconds urllib3 asked to
sleep (its ``time.sleep`` is replaced by a recorder, so ``Retry-After: 7`` costs nothing).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import types
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pystac
import pytest
import urllib3.util.retry
from pytest_httpserver import HTTPServer

from flair_pipeline.config import StacSource
from flair_pipeline.errors import InputError
from flair_pipeline.sentinel2.factory import build_provider
from flair_pipeline.sentinel2.stac import StacProvider
from tests.sentinel2.stac_replay import FIXTURES, Replay, Stalled, recorded
from tests.sentinel2.test_stac_catalogues import PC_EPSG, PC_HOSTS, PC_ITEM, PC_XY
from tests.sentinel2.test_stac_catalogues import grid_at as grid_at_utm
from tests.sentinel2.test_stac_earth_search import (
    C1,
    DAY,
    RANGE,
    UV_ONLY,
    VV_ONLY,
    c1_dn,
    grid_at,
    refl,
    replay,
)


@pytest.fixture(scope="module")
def rec():
    return recorded()


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Seconds urllib3's Retry slept (recorded, not slept)."""
    got: list[float] = []
    fake = types.SimpleNamespace(
        **{k: getattr(time, k) for k in dir(time) if not k.startswith("_")}
    )
    fake.sleep = got.append
    monkeypatch.setattr(urllib3.util.retry, "time", fake)
    return got


def _replay(httpserver: HTTPServer, rec) -> tuple[Replay, str]:
    rp = replay(httpserver, rec)
    rp.serve_item(rp.item(C1.format("U")), c1_dn(), UV_ONLY, {"cloud": 30, "snow": 5})
    rp.serve_item(rp.item(C1.format("V")), c1_dn(3), VV_ONLY, {"cloud": 70, "snow": 9})
    return rp, f"{rp.base}/v1"


def test_429_waits_retry_after_then_succeeds(rec, httpserver, sleeps) -> None:
    rp, url = _replay(httpserver, rec)
    rp.page_fail[1] = [(429, {"Retry-After": "7"})]
    s = StacProvider(api_url=url, retries=2, backoff_s=0.01).fetch([grid_at(UV_ONLY)], *RANGE)[0]
    assert s.dates == [DAY] and (s.data[0, 2] == refl(2)).all()
    assert 7.0 in sleeps
    assert [("next" in b) for b in rp.searches()] == [False, False, True]


def test_503_burst_on_page_two_resumes_there(rec, httpserver, sleeps) -> None:
    """Pagination resumes at the failed page: page 1 is asked for once, page 2 four times."""
    rp, url = _replay(httpserver, rec)
    rp.page_fail[2] = [(503, {}), (502, {}), (503, {})]
    s = StacProvider(api_url=url, retries=3, backoff_s=0.01).fetch([grid_at(VV_ONLY)], *RANGE)[0]
    assert s.dates == [DAY] and (s.data[0, 2] == refl(2) + 3).all()
    assert [("next" in b) for b in rp.searches()] == [False, True, True, True, True]
    assert sleeps == pytest.approx([0.02, 0.04])  # urllib3: 0, then 0.01 × 2^(n-1)


def test_5xx_beyond_retries_is_a_clear_bounded_error(rec, httpserver, sleeps) -> None:
    rp, url = _replay(httpserver, rec)
    rp.page_fail[2] = [(503, {})] * 10
    with pytest.raises(InputError, match=rf"STAC API {url}: search failed.*503.*retried 2 times"):
        StacProvider(api_url=url, retries=2, backoff_s=0.01).fetch([grid_at(UV_ONLY)], *RANGE)
    assert [("next" in b) for b in rp.searches()] == [False, True, True, True]


@pytest.mark.parametrize("status", [404, 400, 403])
def test_other_4xx_is_never_retried(rec, httpserver, sleeps, status) -> None:
    rp, url = _replay(httpserver, rec)
    rp.page_fail[1] = [(status, {})] * 5
    with pytest.raises(InputError, match=rf"STAC API {url}: search failed \(HTTP {status}, "):
        StacProvider(api_url=url, retries=3, backoff_s=0.01).fetch([grid_at(UV_ONLY)], *RANGE)
    assert len(rp.searches()) == 1 and sleeps == []


def test_stalled_server_times_out_after_bounded_tries(sleeps) -> None:
    """A server that accepts and never answers: each try ends at the read timeout."""
    with Stalled() as stalled:
        url = f"{stalled.url}/v1"
        prov = StacProvider(api_url=url, retries=2, backoff_s=0.0, read_timeout_s=0.2)
        with pytest.raises(InputError, match=rf"STAC API {url}: search failed.*timed out"):
            prov.fetch([grid_at(UV_ONLY)], *RANGE)
    assert len(stalled.accepted) == 3  # the first try and two retries, then the error


def test_cog_503_burst_is_retried_by_gdal(rec, httpserver) -> None:
    rp, url = _replay(httpserver, rec)
    href = rp.item(C1.format("U"))["assets"]["red"]["href"]
    rp.fail[urllib3.util.parse_url(href).path] = [503, 503]
    s = StacProvider(api_url=url, retries=3, backoff_s=0.0).fetch([grid_at(UV_ONLY)], *RANGE)[0]
    assert s.dates == [DAY] and (s.data[0, 2] == refl(2)).all() and s.skipped == []
    assert rp.count(href) >= 3  # two 503 answers, then the reads


def test_cog_404_fails_that_zone_only(rec, httpserver) -> None:
    """Zone A's assets are gone (404, not retried): A gets an InputError naming the grid and
    the asset; zone B is built. 404s are asked for once each."""
    rp, url = _replay(httpserver, rec)
    uv = rp.item(C1.format("U"))
    for a in uv["assets"].values():
        rp.files.pop(urllib3.util.parse_url(a["href"]).path, None)
    ga, gb = grid_at(UV_ONLY), grid_at(VV_ONLY)
    a, b = StacProvider(api_url=url, retries=3, backoff_s=0.0).fetch_each([ga, gb], *RANGE)
    assert isinstance(a, InputError)
    assert "none of its 1 items is usable" in str(a) and "404" in str(a) and "'blue'" in str(a)
    assert not isinstance(b, InputError) and b.dates == [DAY]
    assert np.array_equal(b.data[0, :, 0, 0], [refl(k) + 3 for k in range(10)])
    assert rp.count(uv["assets"]["blue"]["href"]) == 1


def test_remote_static_catalog_same_contract(rec, httpserver, tmp_path, sleeps) -> None:
    """A static catalog over HTTP: a 503 on catalog.json is retried, a 404 is not."""
    rp, _ = _replay(httpserver, rec)
    uv = rp.item(C1.format("U"))
    uv["links"] = []
    cat = pystac.Catalog("c", "test")
    col = pystac.Collection(
        "sentinel-2-c1-l2a",
        "c1",
        pystac.Extent.from_dict(
            {"spatial": {"bbox": [uv["bbox"]]}, "temporal": {"interval": [[None, None]]}}
        ),
    )
    cat.add_child(col)
    col.add_item(pystac.Item.from_dict(uv))
    cat.normalize_and_save(str(tmp_path / "cat"), pystac.CatalogType.SELF_CONTAINED)
    for f in (tmp_path / "cat").rglob("*.json"):
        rp.files[f"{rp.prefix}/cat/{f.relative_to(tmp_path / 'cat')}"] = f.read_bytes()
    root = f"{rp.prefix}/cat/catalog.json"
    rp.fail[root] = [503]
    s = StacProvider(catalog=f"{rp.base}/cat/catalog.json", retries=2, backoff_s=0.01).fetch(
        [grid_at(UV_ONLY)], *RANGE
    )[0]
    assert s.dates == [DAY] and (s.data[0, 2] == refl(2)).all() and rp.count(root) == 2
    gone = f"{rp.base}/nope/catalog.json"
    with pytest.raises(InputError, match=rf"STAC catalog {gone}: unreadable \(HTTP 404, "):
        StacProvider(catalog=gone, retries=3, backoff_s=0.01).fetch([grid_at(UV_ONLY)], *RANGE)
    assert rp.count(gone) == 1


@pytest.mark.parametrize("retries", [0, 2])
def test_stalled_cog_range_read_is_bounded_by_the_config(tmp_path, retries, caplog) -> None:
    """A COG server that answers HEAD and never answers the range GET: GDAL gives up after
    sentinel2.source.max_retries retries of that GET, each bounded by GDAL_HTTP_TIMEOUT (from
    connect + read timeouts); the zone's error names the href, curl's reason and the tries
    (GDAL's own last words would be "not recognized as being in a supported file format")."""
    item = json.loads((FIXTURES / "planetary_computer/items" / f"{PC_ITEM}.json").read_text())
    with Stalled(head_size=10_000_000) as stalled:
        d = json.loads(json.dumps(item).replace(next(iter(PC_HOSTS)), stalled.url))
        d["links"] = []
        cat = pystac.Catalog("c", "test")
        col = pystac.Collection(
            "sentinel-2-l2a",
            "pc",
            pystac.Extent.from_dict(
                {"spatial": {"bbox": [d["bbox"]]}, "temporal": {"interval": [[None, None]]}}
            ),
        )
        cat.add_child(col)
        col.add_item(pystac.Item.from_dict(d))
        cat.normalize_and_save(str(tmp_path / "cat"), pystac.CatalogType.SELF_CONTAINED)
        cfg = StacSource(
            catalog=str(tmp_path / "cat" / "catalog.json"),
            collection="sentinel-2-l2a",
            scl_masks=True,
            max_retries=retries,
            retry_backoff_s=0,
            connect_timeout_s=0.4,
            read_timeout_s=0.4,
        )
        prov = build_provider(cfg, Path("unused"))
        assert prov.gdal_env["GDAL_HTTP_TIMEOUT"] == "1"  # round(0.4 + 0.4)
        assert prov.gdal_env["GDAL_HTTP_MAX_RETRY"] == str(retries)
        (res,) = prov.fetch_each(
            [grid_at_utm(PC_XY, PC_EPSG)], dt.date(2024, 1, 1), dt.date(2024, 12, 31)
        )
    href = d["assets"]["B02"]["href"]
    assert isinstance(res, InputError)
    said = re.escape(f"asset 'B02' unreadable ({href}): no answer (Operation timed out after ")
    said += r"\d+ milliseconds with 0 bytes received\), " + re.escape(
        f"{retries + 1} tries (GDAL_HTTP_TIMEOUT 1 s, GDAL_HTTP_MAX_RETRY {retries}: "
    )
    assert re.search(said, str(res)), str(res)
    # GDAL's debug lines were read, and dropped before any handler (caplog's is on the root)
    assert not any("VSICURL" in r.getMessage() for r in caplog.records)
    assert "\n" not in str(res)
    path = urlparse(href).path
    assert stalled.requests == [f"HEAD {path} HTTP/1.1"] + [f"GET {path} HTTP/1.1"] * (retries + 1)
