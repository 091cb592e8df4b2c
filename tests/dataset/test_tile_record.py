"""The tile headers the sources step records for later steps over a URL raw root
(dataset/tile_record.py) and their use by the VRT builder (``Product.known``).

Expected values come from ``inspect`` of the files themselves (rasterio's header read)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from flair_pipeline.dataset.tile_record import KEY, known_facts, to_record
from flair_pipeline.geo.raster_vrt import build_vrt, default_product, inspect


def _tile(path: Path, x0: float, nodata: float | None) -> Path:
    with rasterio.open(
        path, "w", driver="GTiff", width=64, height=64, count=4, dtype="uint8",
        crs="EPSG:2154", transform=from_origin(x0, 6_860_000.0, 0.2, 0.2), nodata=nodata,
    ) as dst:  # fmt: skip
        dst.write(np.full((4, 64, 64), 7, np.uint8))
    return path


@pytest.fixture
def tiles(tmp_path: Path) -> list[Path]:
    return [
        _tile(tmp_path / "a.tif", 650_000.0, 0.0),
        _tile(tmp_path / "b.tif", 650_012.8, None),
    ]


def test_recorded_facts_equal_the_headers_and_follow_the_versions(
    tiles: list[Path], tmp_path: Path
) -> None:
    """A round trip through the record gives inspect's facts back; a tile whose version
    moved since (re-uploaded) is left out, so it is opened again. Planted: the version
    not compared (the moved tile came back)."""
    facts = [inspect(t) for t in tiles]
    versions = {str(f.path): f"{i}:etag{i}" for i, f in enumerate(facts)}
    record = tmp_path / "sources.json"
    record.write_text(json.dumps({KEY: to_record(facts, versions)}))
    same = known_facts(record, versions)
    assert same == {str(f.path): replace(f, path=str(f.path)) for f in facts}
    moved = {**versions, str(facts[1].path): "1:another"}
    assert list(known_facts(record, moved)) == [str(facts[0].path)]
    assert known_facts(tmp_path / "absent.json", versions) == {}


def test_known_tiles_are_not_opened(tiles: list[Path]) -> None:
    """The VRT takes a known tile's facts as given: once the file is gone, the VRT still
    builds from the record (nothing opens it); without the record it names the file."""
    facts = {str(t.resolve()): inspect(t) for t in tiles}
    tiles[1].unlink()
    product = default_product(tiles)
    with pytest.raises(Exception, match=r"b\.tif"):
        build_vrt([product], lambert93=True)
    vrt = build_vrt([replace(product, known=facts)])
    assert vrt.width == 128 and len(vrt.tiles) == 2
