"""demo_map on URL roots: the test domain's ortho, DSM and DTM fetched alone, the map unchanged.

A raw root on a real S3-compatible server (moto's, on 127.0.0.1) named as ``s3://`` and as
GDAL's ``/vsis3/``, and on a loopback HTTP server with folder index pages named as
``https://``-style ``http://`` and ``/vsicurl/``: the files fetched are exactly the domain's
ortho tiles, DSM and DTM (bytes counted by the server, compared with the files' sizes on
disk), nothing of the other domain or of the labels, and the map of the fetched inputs has
the bytes of the map of the local ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pytest_httpserver import HTTPServer
from rasterio.transform import from_origin
from werkzeug import Request, Response

from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.predict_inputs import domain_map_inputs, splits_file, storage_url
from flair_pipeline.io import write_geotiff
from flair_pipeline.storage import filesystem
from tests.evaluation.test_predict import (
    MEAN5,
    RES,
    STD5,
    X0,
    Y0,
    PixelModel,
    _image,
    _predict,
    _surfaces,
)
from tests.range_server import Ranges
from tests.scale.helpers import free_port

D, OTHER = "D033_2021", "D034_2021"


def _raw(root: Path) -> Path:
    """Two domains, each with two ortho tiles, a DSM, a DTM and a labels file."""
    for k, d in enumerate((D, OTHER)):
        ortho = root / "domains" / d / "ortho"
        ortho.mkdir(parents=True)
        img = _image(64, 96, seed=k)
        for c in (0, 48):
            t = from_origin(X0 + c * RES, Y0, RES, RES)
            write_geotiff(ortho / f"t_{c}.tif", img[:, :, c : c + 48], t, "EPSG:2154")
        _surfaces(root / "domains" / d, 64, 96)
        (root / "domains" / d / "labels.gpkg").write_bytes(b"not read by a map" * 1000)
    (root / "sentinel2").mkdir()
    (root / "sentinel2" / "catalog.json").write_text("{}")
    return root


def _domain_files(raw: Path) -> dict[str, bytes]:
    base = raw / "domains" / D
    return {
        p.relative_to(raw).as_posix(): p.read_bytes()
        for p in [*sorted((base / "ortho").iterdir()), base / "dsm.tif", base / "dtm.tif"]
    }


def _fetched(folder: Path, raw_local: Path) -> dict[str, bytes]:
    root = folder.parents[2]  # <tmp>/domains/<domain>/ortho
    assert root != raw_local
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _map(ortho: Path, dsm: Path, dtm: Path, out: Path) -> tuple[bytes, dict[str, str], dict]:
    """The map's pixels, tags (the ortho's folder, named in them, cut out) and profile."""
    kw = dict(mean=MEAN5, std=STD5, dsm=dsm, dtm=dtm, readers=2)
    _predict(PixelModel(5), ortho, out, **kw)
    with rasterio.open(out) as src:
        tags = {k: v.replace(str(ortho), "<ortho>") for k, v in src.tags().items()}
        return src.read().tobytes(), tags, dict(src.profile)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The raw root on a local S3 server, at s3://maps/raw; yields (URL, local copy)."""
    from moto.server import ThreadedMotoServer

    raw = _raw(tmp_path_factory.mktemp("raw"))
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        fs, _ = filesystem("s3://maps")
        fs.mkdir("maps")
        fs.put(str(raw) + "/", "maps/raw", recursive=True)
        fs.invalidate_cache()
        try:
            yield "s3://maps/raw", raw
        finally:
            server.stop()


def test_url_forms_of_predict_name_the_same_roots() -> None:
    assert storage_url("/vsis3/maps/raw") == "s3://maps/raw"
    assert storage_url("/vsicurl/https://h/raw") == "https://h/raw"
    assert storage_url("s3://maps/raw") == "s3://maps/raw"
    assert storage_url("https://h/raw") == "https://h/raw"
    assert storage_url("/data/raw") is None and storage_url(Path("/data/raw")) is None


@pytest.mark.parametrize("form", ["s3://maps/raw", "/vsis3/maps/raw"])
def test_s3_root_fetches_the_domain_map_inputs_only(
    s3: tuple[str, Path], tmp_path: Path, form: str
) -> None:
    _, raw = s3
    want = _domain_files(raw)
    with domain_map_inputs(form, D) as inputs:
        assert _fetched(inputs.ortho, raw) == want  # the domain's tiles, DSM, DTM: no more
        assert inputs.fetched_files == len(want) == 4
        assert inputs.fetched_bytes == sum(len(b) for b in want.values())
        remote_map = _map(inputs.ortho, inputs.dsm, inputs.dtm, tmp_path / "remote.tif")
        tmp = inputs.ortho.parents[2]
    assert not tmp.exists()  # the fetched files are deleted afterwards
    base = raw / "domains" / D
    local_map = _map(base / "ortho", base / "dsm.tif", base / "dtm.tif", tmp_path / "local.tif")
    assert remote_map == local_map


def test_missing_domain_at_the_url_is_named(s3: tuple[str, Path]) -> None:
    with (
        pytest.raises(InputError, match=r"s3://maps/raw/domains/D099_2021/ortho: nothing found"),
        domain_map_inputs("s3://maps/raw", "D099_2021"),
    ):
        pass


class _Indexed(Ranges):
    """The range server, with an HTML index page of links for each folder (as autoindex)."""

    def __init__(self, server: HTTPServer, raw: Path) -> None:
        super().__init__(server)
        self.pages: dict[str, bytes] = {}
        for p in sorted(raw.rglob("*")):
            rel = "/raw/" + p.relative_to(raw).as_posix()
            if p.is_file():
                self.files[rel] = p.read_bytes()
                continue
            links = "".join(
                f'<a href="{rel}/{c.name}{"/" if c.is_dir() else ""}">{c.name}</a>\n'
                for c in sorted(p.iterdir())
            )
            page = f"<html><body>\n{links}</body></html>".encode()
            self.pages[rel] = self.pages[rel + "/"] = page

    def __call__(self, request: Request) -> Response:
        page = self.pages.get(request.path)
        if page is None:
            return super().__call__(request)
        self.requests += 1
        self.sent += len(page) if request.method != "HEAD" else 0
        return Response(page, content_type="text/html")


def test_http_root_fetches_the_domain_map_inputs_only(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    raw = _raw(tmp_path / "raw")
    served = _Indexed(httpserver, raw)
    want = _domain_files(raw)
    for form in (served.url + "raw", "/vsicurl/" + served.url + "raw"):
        served.reset()
        with domain_map_inputs(form, D) as inputs:
            assert _fetched(inputs.ortho, raw) == want
            assert inputs.fetched_bytes == sum(len(b) for b in want.values())
        # bytes sent: the domain's files and the ortho folder's index page, nothing else
        index = len(served.pages["/raw/domains/" + D + "/ortho"])
        assert sum(len(b) for b in want.values()) <= served.sent
        assert served.sent <= sum(len(b) for b in want.values()) + 4 * index


def test_splits_of_a_url_dataset_root_are_fetched_alone(
    s3: tuple[str, Path], tmp_path: Path
) -> None:
    fs, _ = filesystem("s3://maps")
    fs.pipe("maps/dataset/metadata/splits.csv", b"domain,split\nD033_2021,test\n")
    fs.pipe("maps/dataset/aerial/big.bin", np.zeros(10_000, np.uint8).tobytes())
    fs.invalidate_cache()
    with splits_file("s3://maps/dataset") as csv:
        assert csv.read_bytes() == b"domain,split\nD033_2021,test\n"
        assert [p.name for p in csv.parents[1].rglob("*") if p.is_file()] == ["splits.csv"]
    assert not csv.exists()


def test_sentinel2_archive_is_fetched_only_when_a_model_reads_it(s3: tuple[str, Path]) -> None:
    _, raw = s3
    with domain_map_inputs("s3://maps/raw", D, sentinel2=True) as inputs:
        got = _fetched(inputs.ortho, raw)
        assert got == {**_domain_files(raw), "sentinel2/catalog.json": b"{}"}
        assert inputs.raw == inputs.ortho.parents[2]  # the local raw root of the provider
    with (
        pytest.raises(InputError, match=r"http://h/raw: the Sentinel-2 archive .* cannot be"),
        domain_map_inputs("http://h/raw", D, sentinel2=True),
    ):
        pass
