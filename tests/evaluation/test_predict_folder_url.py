"""predict_map on a folder of tiles and a DSM/DTM read in place from ``s3://`` (issue 27
item 7): the map equals the map of the same local files, each tile is fetched by ranges
(the folder listed once), and a folder URL with no tile is one line naming it.

The S3 server (moto) runs in its own process and logs what it sends
(tests/s3_process.py). Expected maps come from predicting the local files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.raster_input import ImageSource, is_folder_url
from flair_pipeline.storage import filesystem
from tests.evaluation.test_predict import (
    MEAN5,
    STD5,
    PixelModel,
    _image,
    _predict,
    _read,
    _surfaces,
)
from tests.evaluation.test_predict_readers import _tiles
from tests.s3_process import CountingS3, counting_s3
from tests.scale.helpers import free_port


@pytest.fixture(scope="module")
def s3() -> Iterator[CountingS3]:
    with counting_s3(free_port()) as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", server.endpoint)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        fs, _ = filesystem("s3://maps")
        fs.mkdir("maps")
        yield server


def test_folder_and_surface_urls_map_as_the_local_files(tmp_path: Path, s3: CountingS3) -> None:
    """A 5-channel model on 2 x 2 tiles and a DSM/DTM, all in a bucket: the same map as
    from the local files. Planted: the reads outside GDAL's options (the VRT then opens its
    tiles at AWS's endpoint: the map failed)."""
    img = _image(128, 128)
    folder = _tiles(tmp_path / "tiles", img, 64)
    dsm, dtm = _surfaces(tmp_path, 128, 128)
    fs, _ = filesystem("s3://maps")
    fs.put(str(folder) + "/", "maps/ortho/tiles", recursive=True)
    fs.put(str(dsm), "maps/dem/dsm.tif")
    fs.put(str(dtm), "maps/dem/dtm.tif")
    kw = {"mean": MEAN5, "std": STD5}
    _predict(PixelModel(5), folder, tmp_path / "local.tif", dsm=dsm, dtm=dtm, **kw)
    s3.reset()
    report = _predict(
        PixelModel(5), "s3://maps/ortho/tiles", tmp_path / "url.tif",
        dsm="s3://maps/dem/dsm.tif", dtm="s3://maps/dem/dtm.tif", **kw,
    )  # fmt: skip
    np.testing.assert_array_equal(_read(tmp_path / "url.tif"), _read(tmp_path / "local.tif"))
    assert (report.height, report.width) == (128, 128)
    log = s3.log()
    tiles = {p for _, p, _ in log if p.startswith("/maps/ortho/tiles/")}
    assert tiles == {f"/maps/ortho/tiles/{p.name}" for p in folder.iterdir()}
    assert any(p == "/maps/dem/dsm.tif" for _, p, _ in log)


def test_folder_url_forms_and_an_empty_folder(tmp_path: Path, s3: CountingS3) -> None:
    assert is_folder_url("s3://b/ortho") and is_folder_url("https://h/ortho/")
    assert not is_folder_url("s3://b/ortho/a.TIF") and not is_folder_url("s3://b/m.vrt")
    assert not is_folder_url(str(tmp_path))
    with pytest.raises(InputError, match=r"^s3://maps/nothing: no ortho tiles .* there$"):
        ImageSource("s3://maps/nothing")
