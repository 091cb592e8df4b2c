"""dataset.compression: each codec is written as asked, lossless, and FLAIR's own by default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from flair_pipeline.config import PipelineConfig, load_config
from flair_pipeline.dataset.patch_writers import COMPRESSIONS, compression_options
from flair_pipeline.errors import ConfigError
from flair_pipeline.io import write_geotiff

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("codec", COMPRESSIONS)
def test_each_codec_is_written_and_lossless(codec: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (5, 256, 256), dtype=np.uint8)
    out = write_geotiff(
        tmp_path / "IMG_1.tif",
        img,
        Affine(0.2, 0, 8e5, 0, -0.2, 6.5e6),
        "EPSG:2154",
        **compression_options(codec, zlevel=1),
    )
    with rasterio.open(out) as src:
        tags = src.tags(ns="IMAGE_STRUCTURE")
        np.testing.assert_array_equal(src.read(), img)
    if codec == "none":
        assert "COMPRESSION" not in tags
    else:
        assert tags["COMPRESSION"] == codec.upper() and tags["PREDICTOR"] == "2"


def test_default_is_the_flair_release_codec(real_flair: Path) -> None:
    assert PipelineConfig().dataset.compression == "zstd"
    assert load_config(REPO / "params.yaml", ()).dataset.compression == "zstd"
    files = sorted(real_flair.rglob("*.tif"))
    assert len(files) == 10
    for f in files:
        with rasterio.open(f) as src:
            assert src.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "ZSTD", f


def test_unknown_codec_is_refused(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("dataset:\n  compression: jpeg\n")
    with pytest.raises(ConfigError, match="compression"):
        load_config(params, ())
    with pytest.raises(ValueError, match="jpeg"):
        compression_options("jpeg")
