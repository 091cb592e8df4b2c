"""StacProvider on Planetary Computer and CDSE ``sentinel-2-l2a`` items, replayed by a
loopback server (fixtures: tests/sentinel2/fixtures/README.md).

Behind every asset href the server holds a small raster made here on the tile's true
pixel grid (the asset's ``proj:transform``) with a constant DN per band, so each expected
reflectance is a hand computation: both items are baseline 05.10 with the DN still
carrying the +1000 BOA offset, so reflectance × 10000 = DN - 1000. SNW/CLD come from the
SCL value by the table of docs/sentinel2.md (8 -> CLD 65, 11 -> SNW 100).

* Planetary Computer: the blob COGs answer 403 unless the request carries the SAS token
  (``sig``) that the token endpoint gave; the token is asked once per collection and never
  appears in an error or in the products metadata.
* CDSE: JPEG 2000 assets under ``s3://eodata/…`` are read through GDAL ``/vsis3/`` at
  ``sentinel2.source.s3_endpoint`` (the loopback server, path-style), with SigV4-signed requests
  made from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from pyproj import Transformer
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from flair_pipeline.config import StacSource
from flair_pipeline.errors import InputError
from flair_pipeline.sentinel2.factory import build_provider
from flair_pipeline.sentinel2.provider import BANDS, Grid
from tests.sentinel2.stac_replay import FIXTURES, Replay, raster

PC_API = "https://planetarycomputer.microsoft.com/api/stac/v1"
PC_HOSTS = {"https://sentinel2l2a01.blob.core.windows.net": "blob"}
PC_ITEM = "S2B_MSIL2A_20240419T095549_R122_T47XML_20240419T123458"
CDSE_API = "https://stac.dataspace.copernicus.eu/v1"
CDSE_ITEM = "S2A_MSIL2A_20220217T183431_N0510_R027_T13VEK_20240516T022440"
SIG = "Zm9vYmFyU2VjcmV0U2lnbmF0dXJlMTIzNDU2Nzg5%3D"
TOKEN = (
    "st=2024-04-19T10%3A00%3A00Z&se=2024-04-20T11%3A00%3A00Z&sp=rl&sv=2021-06-08&sr=c"
    f"&skoid=c85c15d6-d1ae-42d4-af60-e2ca0f81359b&sks=b&skv=2021-06-08&sig={SIG}"
)


def refl(band: int) -> int:
    """The reflectance (×10000) encoded for FLAIR band index `band` (DN = 1000 + this)."""
    return 300 + 100 * band


def grid_at(xy: tuple[float, float], epsg: int, px: int = 12) -> Grid:
    x, y = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:2154", always_xy=True).transform(*xy)
    return Grid.around((x - px * 5, y - px * 5, x + px * 5, y + px * 5))


def serve(
    rp: Replay,
    item: dict,
    key_of,
    scl_key: str,
    scl: int,
    xy,
    epsg: int,
    driver: str,
    path_of=lambda href: href,
) -> None:
    """Rasters behind the item's band assets (DN 1000 + refl) and its SCL asset (`scl`)."""
    values = {key_of(b): 1000 + refl(i) for i, b in enumerate(BANDS)}
    values[scl_key] = scl
    for key, value in values.items():
        a = item["assets"][key]
        t = a["proj:transform"]
        dtype = "uint8" if key == scl_key else "uint16"
        data = raster(value, (t[2], t[5]), t[0], epsg, xy, dtype, driver=driver)
        rp.put(path_of(a["href"]), data)


# -- Planetary Computer ------------------------------------------------------------------
PC_XY, PC_EPSG = (440000.0, 9037000.0), 32647


@pytest.fixture
def pc(httpserver: HTTPServer) -> tuple[Replay, dict]:
    rp = Replay(httpserver, FIXTURES / "planetary_computer", PC_API, PC_HOSTS)
    item = rp.item(PC_ITEM)
    serve(rp, item, lambda b: b, "SCL", 8, PC_XY, PC_EPSG, "COG")
    expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rp.routes[f"{rp.prefix}/sas/token/sentinel-2-l2a"] = lambda _: Response(
        json.dumps({"msft:expiry": expiry, "token": TOKEN}), content_type="application/json"
    )

    def azure(request: Request) -> Response | None:  # Azure answers 403 to unsigned reads
        if request.args.get("sig") != SIG.replace("%3D", "="):
            return Response("AuthenticationFailed", status=403)
        return None

    rp.guard = azure
    return rp, item


def pc_config(rp: Replay, **kw) -> StacSource:
    return StacSource(
        api_url=f"{rp.base}/v1",
        collection="sentinel-2-l2a",
        scl_masks=True,
        href_signing="planetary-computer",
        pc_sas_url=f"{rp.base}/sas/token",
        max_retries=1,
        retry_backoff_s=0,
        **kw,
    )


def test_planetary_computer_signed_reads_to_the_dn(pc, caplog) -> None:
    rp, _ = pc
    caplog.set_level(logging.DEBUG)
    prov = build_provider(pc_config(rp), Path("unused"))
    (s,) = prov.fetch([grid_at(PC_XY, PC_EPSG)], dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert rp.searches()[0]["collections"] == ["sentinel-2-l2a"]
    assert s.dates == [dt.date(2024, 4, 19)] and s.skipped == []
    assert s.products == ["S2B_MSIL2A_20240419T095549_N0510_R122_T47XML_20240419T123458"]
    for b in range(10):
        assert (s.data[0, b] == refl(b)).all(), BANDS[b]
    assert (s.masks[0, 0] == 0).all() and (s.masks[0, 1] == 65).all()  # SCL 8: medium cloud
    rec = s.provenance["dates"][0]["items"][0]
    assert rec["boa_offset_removed_dn"] == 1000 and rec["masks"] == "derived from SCL"
    assert rp.count(f"{rp.base}/sas/token/sentinel-2-l2a") == 1  # one token for 11 assets
    reads = [p for _, p, _ in rp.hits if "/blob/" in p]
    assert len({p for p in reads}) == 11  # 10 bands and SCL, each read with the token
    assert SIG not in json.dumps(s.provenance) and "sig=" not in json.dumps(s.provenance)
    # every log record of the process is masked once signing is on (the loopback server's
    # access log names each signed URL it served)
    signed = [r for r in caplog.records if "/blob/" in r.getMessage()]
    assert signed and not any("Zm9vYmFy" in r.getMessage() for r in caplog.records)


def test_planetary_computer_unsigned_is_refused_and_the_token_never_shown(pc) -> None:
    rp, item = pc
    grid, when = grid_at(PC_XY, PC_EPSG), (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    unsigned = pc_config(rp).model_copy(update={"href_signing": "none"})
    (res,) = build_provider(unsigned, Path("unused")).fetch_each([grid], *when)
    assert isinstance(res, InputError) and "403" in str(res)
    rp.files.pop(urlparse(item["assets"]["B04"]["href"]).path)  # B04 is gone
    (res,) = build_provider(pc_config(rp), Path("unused")).fetch_each([grid], *when)
    assert isinstance(res, InputError) and "'B04' unreadable" in str(res) and "404" in str(res)
    assert "B04_10m.tif?***" in str(res) and "Zm9vYmFy" not in str(res)  # the whole token


def test_planetary_computer_token_endpoint_down_is_one_clear_line(pc) -> None:
    rp, _ = pc
    rp.fail[f"{rp.prefix}/sas/token/sentinel-2-l2a"] = [503] * 5
    prov = build_provider(pc_config(rp), Path("unused"))
    url = f"{rp.base}/sas/token/sentinel-2-l2a"
    with pytest.raises(InputError, match=rf"SAS token endpoint {url}: failed.*retried 1 times"):
        prov.fetch([grid_at(PC_XY, PC_EPSG)], dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert rp.count(url) == 2  # the request and its one retry (sentinel2.source.max_retries: 1)


# -- CDSE ----------------------------------------------------------------------------------
CDSE_XY, CDSE_EPSG = (555000.0, 6944600.0), 32613
#: each band at its native resolution (CDSE also lists resampled copies, never to be used)
CDSE_KEYS = {b: f"{b}_{'10m' if b in ('B02', 'B03', 'B04', 'B08') else '20m'}" for b in BANDS}


@pytest.fixture
def cdse(httpserver: HTTPServer, monkeypatch) -> tuple[Replay, dict]:
    rp = Replay(httpserver, FIXTURES / "cdse", CDSE_API, {})
    item = rp.item(CDSE_ITEM)
    under = f"{rp.prefix}/s3/"  # the S3 endpoint's path: <endpoint>/<bucket>/<key>
    serve(
        rp,
        item,
        CDSE_KEYS.__getitem__,
        "SCL_20m",
        11,
        CDSE_XY,
        CDSE_EPSG,
        "JP2OpenJPEG",
        path_of=lambda h: under + h.removeprefix("s3://"),
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "CDSETESTKEYID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "cdse-test-secret-key-0123456789")
    return rp, item


def cdse_config(rp: Replay, **kw) -> StacSource:
    return StacSource(
        api_url=f"{rp.base}/v1",
        collection="sentinel-2-l2a",
        scl_masks=True,
        s3_endpoint=f"{rp.base}/s3",
        max_retries=1,
        retry_backoff_s=0,
        **kw,
    )


def test_cdse_jp2_through_vsis3_to_the_dn(cdse) -> None:
    rp, item = cdse
    prov = build_provider(cdse_config(rp), Path("unused"))
    (s,) = prov.fetch([grid_at(CDSE_XY, CDSE_EPSG)], dt.date(2022, 1, 1), dt.date(2022, 12, 31))
    assert s.dates == [dt.date(2022, 2, 17)] and s.skipped == []
    assert s.products == [CDSE_ITEM]
    for b in range(10):
        assert (s.data[0, b] == refl(b)).all(), BANDS[b]
    assert (s.masks[0, 0] == 100).all() and (s.masks[0, 1] == 0).all()  # SCL 11: snow
    rec = s.provenance["dates"][0]["items"][0]
    assert rec["boa_offset_removed_dn"] == 1000 and "wins over" not in rec["boa_offset_rule"]
    assert rec["boa_offset_rule"].startswith("baseline 05.10")  # processing:version, not guessed
    s3 = [(p, h) for (_, p, _), h in zip(rp.hits, rp.headers, strict=True) if "/s3/eodata/" in p]
    assert {p.rsplit("_", 1)[-1] for p, _ in s3} >= {"10m.jp2", "20m.jp2"}
    assert all(
        h["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=CDSETESTKEYID/") for _, h in s3
    )
    assert not any("cdse-test-secret" in json.dumps(h) for _, h in s3)
    # the 10 m keys were used, never the resampled copies (B02_20m, B02_60m)
    assert not any(p.endswith(("B02_20m.jp2", "B02_60m.jp2")) for p, _ in s3)
    assert np.isin(list(CDSE_KEYS.values()), list(item["assets"])).all()


def test_cdse_without_endpoint_or_keys_says_what_to_set(cdse, monkeypatch) -> None:
    rp, _ = cdse
    grid, when = grid_at(CDSE_XY, CDSE_EPSG), (dt.date(2022, 1, 1), dt.date(2022, 12, 31))
    no_s3 = cdse_config(rp).model_copy(update={"s3_endpoint": None})
    with pytest.raises(
        InputError, match=r"readable scene classification.*sentinel2\.source\.s3_endpoint"
    ):
        build_provider(no_s3, Path("unused")).fetch([grid], *when)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(InputError, match=r"s3_endpoint is .* but AWS_SECRET_ACCESS_KEY is not set"):
        build_provider(cdse_config(rp), Path("unused")).fetch([grid], *when)
    assert not any("/s3/" in p for _, p, _ in rp.hits)  # nothing was read in either case
