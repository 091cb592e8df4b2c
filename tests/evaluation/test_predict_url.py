"""predict_map reads an ortho in place from a URL (loopback HTTP server with ranges)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from pytest_httpserver import HTTPServer
from rasterio.transform import from_origin

from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.raster_input import ImageSource
from flair_pipeline.storage import gdal_path, is_remote
from tests.evaluation.test_predict import RES, X0, Y0, PixelModel, _image, _predict
from tests.range_server import Ranges

_Ranges = Ranges


def _tiled(path: Path, arr: np.ndarray) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype="uint8",
        crs="EPSG:2154",
        transform=from_origin(X0, Y0, RES, RES),
        tiled=True,
        blockxsize=64,
        blockysize=64,
        compress="deflate",
    ) as dst:
        dst.write(arr)
    return path


def _content(path: Path, source: str) -> tuple[bytes, dict[str, str], dict]:
    """Pixels, tags (the ortho's name, given in the decision line, cut out) and profile."""
    with rasterio.open(path) as src:
        tags = {k: v.replace(source, "<ortho>") for k, v in src.tags().items()}
        return src.read().tobytes(), tags, dict(src.profile)


@pytest.fixture
def served(httpserver: HTTPServer) -> _Ranges:
    return _Ranges(httpserver)


def test_url_forms_map_to_gdal_paths() -> None:
    assert gdal_path("https://h/a.tif") == "/vsicurl/https://h/a.tif"
    assert gdal_path("s3://bucket/raw/a.tif") == "/vsis3/bucket/raw/a.tif"
    assert gdal_path("/vsicurl/http://h/a.tif") == "/vsicurl/http://h/a.tif"
    assert is_remote("/vsis3/b/k.tif") and is_remote("http://h/a.tif")
    assert not is_remote(Path("/data/a.tif")) and not is_remote("memory://x/a.tif")


def test_predicting_a_served_ortho_equals_predicting_the_local_file(
    tmp_path: Path, served: _Ranges
) -> None:
    local = _tiled(tmp_path / "ortho.tif", _image(192, 160))
    served.files["/ortho-a.tif"] = local.read_bytes()
    model = PixelModel(4)
    _predict(model, local, tmp_path / "local.tif", readers=2)
    for i, url in enumerate([served.url + "ortho-a.tif", "/vsicurl/" + served.url + "ortho-a.tif"]):
        out = tmp_path / f"url{i}.tif"
        report = _predict(model, url, out, readers=2)
        assert _content(out, url) == _content(tmp_path / "local.tif", str(local))
        assert report.height == 192 and report.width == 160


def test_a_window_fetches_its_bytes_not_the_file(tmp_path: Path, served: _Ranges) -> None:
    arr = np.random.default_rng(3).integers(0, 255, (4, 1024, 1024), dtype=np.uint8)
    local = _tiled(tmp_path / "big.tif", arr)  # noise: ~4 MB that DEFLATE cannot shrink
    served.files["/big.tif"] = size = local.read_bytes()
    with ImageSource(served.url + "big.tif") as src:
        window = src.read(500, 300, 64, 64, 4)
    np.testing.assert_array_equal(window, arr[:, 500:564, 300:364])
    # a 64² window spans at most 4 blocks of 64² x 4 bands (64 KiB) plus the header
    assert served.sent < len(size) / 20, (served.requests, served.sent, len(size))


def test_unreachable_url_is_one_line_naming_it(tmp_path: Path, served: _Ranges) -> None:
    url = served.url + "missing.tif"
    with pytest.raises(InputError, match=r"missing\.tif: cannot open as a raster") as err:
        _predict(PixelModel(4), url, tmp_path / "m.tif")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "m.tif").exists()


def test_cli_predict_maps_a_url_as_the_local_file(tmp_path: Path, served: _Ranges, capsys) -> None:
    from flair_pipeline.cli import main
    from tests.evaluation.test_predict import _checkpoint

    ckpt = _checkpoint(tmp_path / "unet.ckpt")
    local = _tiled(tmp_path / "ortho.tif", _image(128, 128))
    served.files["/cli/ortho.tif"] = local.read_bytes()
    maps = {}
    for name, image in (("local", str(local)), ("url", served.url + "cli/ortho.tif")):
        out = tmp_path / f"{name}.tif"
        args = ["--image", image, "--out", str(out), "--device", "cpu", "--readers", "2"]
        rc = main(["predict", "--checkpoint", str(ckpt), *args])
        captured = capsys.readouterr()
        assert rc == 0, captured.err
        maps[name] = _content(out, image)
    assert maps["url"] == maps["local"]
    assert served.requests > 0
