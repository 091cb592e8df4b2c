"""Sentinel-1 from a STAC API shaped like Planetary Computer's ``sentinel-1-rtc``, replayed.

Items in PC's shape (fixtures/README.md) behind a loopback STAC API with a SAS token
endpoint; float32 γ0 COGs written here behind the signed hrefs. Expected backscatter comes
from the values written, converted by hand (10·log10) — never from the provider.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer
from pytest_httpserver import HTTPServer
from rasterio.io import MemoryFile
from rasterio.shutil import copy as rio_copy
from rasterio.transform import from_origin
from werkzeug import Request, Response

from flair_pipeline.errors import InputError
from flair_pipeline.sentinel1.stac import StacS1Provider
from flair_pipeline.sentinel2.provider import Grid
from flair_pipeline.sentinel2.stac_hrefs import Hrefs
from tests.sentinel2.stac_replay import Replay, raster

FIX = Path(__file__).resolve().parent / "fixtures" / "planetary_computer"
PC_API = "https://planetarycomputer.microsoft.com/api/stac/v1"
HOSTS = {"https://sentinel1euwestrtc.blob.core.windows.net": "blob"}
ASC = "S1A_IW_GRDH_1SDV_20210304T174013_20210304T174038_036850_045591_rtc"
DESC = "S1B_IW_GRDH_1SDV_20210310T055842_20210310T055907_025957_0318DE_rtc"
SINGLE = "S1A_IW_GRDH_1SSV_20210316T174013_20210316T174038_037025_045B9A_rtc"
SIG = "UzFzZWNyZXRTaWduYXR1cmU%3D"
TOKEN = (
    f"st=2021-01-01T00%3A00%3A00Z&se=2021-01-02T00%3A00%3A00Z&sp=rl&sv=2021-06-08&sr=c&sig={SIG}"
)
XY, EPSG = (525000.0, 5316000.0), 32631  # UTM 31N, inside the items' footprint
#: linear γ0 written behind each item's assets
VALUES = {ASC: {"vv": 0.12, "vh": 0.03}, DESC: {"vv": 0.2, "vh": 0.05}, SINGLE: {"vv": 0.5}}


def half_nodata(value: float) -> bytes:
    """A float32 COG around XY whose eastern half holds the declared nodata -32768."""
    tf = from_origin(XY[0] - 1000, XY[1] + 1000, 10.0, 10.0)
    arr = np.full((1, 200, 200), value, np.float32)
    arr[:, :, 100:] = -32768
    prof = dict(driver="GTiff", width=200, height=200, count=1, dtype="float32")
    with MemoryFile() as mem:
        with mem.open(**prof, crs=f"EPSG:{EPSG}", transform=tf, nodata=-32768) as dst:
            dst.write(arr)
        with mem.open() as src, MemoryFile(ext=".tif") as out:
            rio_copy(src, out.name, driver="COG")
            return out.read()


def grid_at(px: int = 12) -> Grid:
    x, y = Transformer.from_crs(f"EPSG:{EPSG}", "EPSG:2154", always_xy=True).transform(*XY)
    return Grid.around((x - px * 5, y - px * 5, x + px * 5, y + px * 5))


@pytest.fixture
def pc(httpserver: HTTPServer) -> Replay:
    rp = Replay(httpserver, FIX, PC_API, HOSTS)
    for stem, values in VALUES.items():
        item = rp.item(stem)
        for key, value in values.items():
            data = raster(value, (300000.0, 5500000.0), 10.0, EPSG, XY, "float32", nodata=-32768)
            if (stem, key) == (DESC, "vh"):
                data = half_nodata(value)
            rp.put(item["assets"][key]["href"], data)
    rp.routes[f"{rp.prefix}/sas/token/sentinel-1-rtc"] = lambda _: Response(
        json.dumps({"msft:expiry": "2099-01-01T00:00:00Z", "token": TOKEN}),
        content_type="application/json",
    )

    def azure(request: Request) -> Response | None:  # Azure answers 403 to unsigned reads
        if request.args.get("sig") != SIG.replace("%3D", "="):
            return Response("AuthenticationFailed", status=403)
        return None

    rp.guard = azure
    return rp


def provider(rp: Replay, **kw) -> StacS1Provider:
    hrefs = Hrefs("planetary-computer", sas_url=f"{rp.base}/sas/token", retries=1, backoff_s=0)
    return StacS1Provider(api_url=f"{rp.base}/v1", hrefs=hrefs, retries=1, backoff_s=0, **kw)


def db(x: float) -> float:
    return 10 * math.log10(x)


def test_pc_rtc_orbits_values_and_records(pc: Replay) -> None:
    g = grid_at()
    (zone,) = provider(pc).fetch([g], dt.date(2021, 1, 1), dt.date(2021, 12, 31))
    asc, desc = zone["ascending"], zone["descending"]
    assert pc.searches()[0]["collections"] == ["sentinel-1-rtc"]
    assert asc.orbit == "ascending" and asc.dates == [dt.date(2021, 3, 4)]
    assert desc.orbit == "descending" and desc.dates == [dt.date(2021, 3, 10)]
    assert asc.data.shape == (1, 2, g.height, g.width) and asc.data.dtype == np.float32
    np.testing.assert_allclose(asc.data[0, 0], 0.12, rtol=1e-6)  # VV first (FLAIR-HUB order)
    np.testing.assert_allclose(asc.data[0, 1], 0.03, rtol=1e-6)
    # the single-polarisation item is one line naming it, not a date
    assert [p for p, _ in asc.skipped] == [SINGLE]
    assert "VV and VH both needed" in asc.skipped[0][1]
    # descending VH has nodata over its eastern half: nodata -32768 honoured as NaN, not a value
    np.testing.assert_allclose(desc.data[0, 0], 0.2, rtol=1e-6)
    assert np.isnan(desc.data[0, 1, :, -1]).all() and np.isfinite(desc.data[0, 1, :, 0]).all()
    np.testing.assert_allclose(desc.data[0, 1, :, 0], 0.05, rtol=1e-6)
    rec = desc.records[0]
    assert rec["product"] == DESC and rec["relative_orbit"] == 110
    assert (rec["coefficient"], rec["units"], rec["nodata"]) == ("gamma0", "linear", -32768)
    assert rec["polarizations"] == ["VV", "VH"] and rec["orbit_state"] == "descending"
    assert asc.records[0]["relative_orbit"] == 132
    assert SIG not in json.dumps(asc.records + desc.records)


def test_pc_rtc_in_db_is_ten_log10_of_the_linear_value(pc: Replay) -> None:
    (zone,) = provider(pc, units="dB").fetch(
        [grid_at()], dt.date(2021, 1, 1), dt.date(2021, 12, 31)
    )
    asc = zone["ascending"]
    row, col = 3, 5
    assert asc.data[0, 0, row, col] == pytest.approx(db(0.12), abs=1e-5)  # -9.2082 dB
    assert asc.data[0, 1, row, col] == pytest.approx(db(0.03), abs=1e-5)  # -15.2288 dB
    assert asc.records[0]["units"] == "dB" and "10*log10" in asc.records[0]["converted"]


def test_a_catalogue_declaring_sigma0_items_is_not_mixed_into_gamma0(pc: Replay) -> None:
    pc.edit[ASC] = lambda f: f["properties"].update({"s1:backscatter": "sigma0_ellipsoid"})
    prov = provider(pc, coefficient_property="s1:backscatter")
    (zone,) = prov.fetch_each([grid_at()], dt.date(2021, 1, 1), dt.date(2021, 12, 31))
    err = zone["ascending"]
    assert isinstance(err, InputError)  # its only dual-pol date was σ0: no γ0 date left
    assert ASC in str(err) and "never mixed" in str(err)
    assert not isinstance(zone["descending"], InputError)  # the other orbit is built


def test_item_and_file_disagreeing_on_nodata_is_one_line_never_overridden(pc: Replay) -> None:
    def nodata_zero(f: dict) -> None:
        f["assets"]["vv"]["raster:bands"][0]["nodata"] = 0

    pc.edit[DESC] = nodata_zero
    (zone,) = provider(pc).fetch_each([grid_at()], dt.date(2021, 1, 1), dt.date(2021, 12, 31))
    err = zone["descending"]
    assert isinstance(err, InputError)
    assert DESC in str(err) and "raster:bands nodata 0 but the file says -32768" in str(err)
    assert not isinstance(zone["ascending"], InputError)


def test_an_item_without_orbit_state_is_one_line_in_each_direction(pc: Replay) -> None:
    pc.edit[DESC] = lambda f: f["properties"].pop("sat:orbit_state")
    (zone,) = provider(pc).fetch_each([grid_at()], dt.date(2021, 1, 1), dt.date(2021, 12, 31))
    asc, desc = zone["ascending"], zone["descending"]
    assert isinstance(desc, InputError) and "sat:orbit_state None" in str(desc)
    assert not isinstance(asc, InputError)
    assert (DESC, "sat:orbit_state None: not ascending/descending") in asc.skipped
