"""Files the pipeline writes take the umask's mode (0o666 & ~umask), never mkstemp's 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from rasterio.transform import from_origin

from flair_pipeline.dataset import aerial_metadata as md
from flair_pipeline.dataset.splits import write_splits
from flair_pipeline.domains import Split
from flair_pipeline.io import atomic_path, file_mode, write_geotiff


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request: pytest.FixtureRequest):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_every_writer_follows_the_umask(tmp_path: Path, umask: int) -> None:
    expected = 0o666 & ~umask  # what `touch` would give
    assert file_mode() == expected
    tif = write_geotiff(
        tmp_path / "aerial" / "IMG_1.tif",
        np.ones((5, 32, 32), np.uint8),
        from_origin(0, 0, 0.2, 0.2),
        "EPSG:2154",
    )
    js = md.write_json({"a": 1}, tmp_path / "metadata" / "domains" / "D033_2021.json")
    csv = write_splits({"D033_2021": (Split.TRAIN, "official")}, tmp_path / "splits.csv")
    npy = tmp_path / "sen" / "SEN2_data.npy"
    with atomic_path(npy) as tmp, open(tmp, "wb") as f:
        np.save(f, np.zeros((2, 3), np.int16))
    plain = tmp_path / "touched"
    plain.touch()
    assert _mode(plain) == expected
    for p in (tif, js, csv, npy):
        assert _mode(p) == expected, f"{p.name}: {oct(_mode(p))} != {oct(expected)}"
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []  # no temp file left
