"""The legend of maps (issue 29): 13 merged classes, 13 = "other" in black, 0 = no data.

Expected names and colours come from FLAIR's own sources, not from our nomenclature: the
FLAIR-2 config's 13 class names (``flair-2-config.yml``) and the colours of FLAIR-HUB's
QGIS style (``flair-hub-qgis-style-flair-num.qml``), both in ``../shared/real-samples``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio

from flair_pipeline.evaluation.map_style import MAP_NODATA, map_qml
from flair_pipeline.io import write_geotiff
from flair_pipeline.release.flair_stac import write_qml
from tests.evaluation.test_predict import PixelModel, T, _image, _predict

META = Path(__file__).resolve().parents[2] / ".." / "shared/real-samples/flair-metadata"
#: FLAIR-2's 13 classes in order (its config's "agricutural" typo fixed)
FLAIR2_NAMES = [
    "building", "pervious surface", "impervious surface", "bare soil", "water", "coniferous",
    "deciduous", "brushwood", "vineyard", "herbaceous vegetation", "agricultural land",
    "plowed land", "other",
]  # fmt: skip


def _flair_sources() -> tuple[list[str], dict[str, str]]:
    config = META / "configs/flair-2-config.yml"
    qml = META / "flair_hub_qml/flair-hub-qgis-style-flair-num.qml"
    if not (config.is_file() and qml.is_file()):
        pytest.skip(f"FLAIR metadata samples not found at {META} (../shared is absent)")
    text = config.read_text()
    block = text[text.index("weights_aerial_satellite:") :].split("\n\n")[0]
    found = re.findall(r"^\s+([a-z ]+?)\s*:", block, re.M)
    names = [m.replace("agricutural", "agricultural") for m in found]
    colours = {}
    for e in ET.parse(qml).iter("paletteEntry"):
        colours[e.get("label", "").split(" - ", 1)[1]] = e.get("color", "").lower()
    return names, colours


def _palette(text: str) -> dict[int, tuple[str, str]]:
    return {
        int(e.get("value", "")): (e.get("label", ""), e.get("color", "").lower())
        for e in ET.fromstring(text.split("\n", 1)[1]).iter("paletteEntry")
    }


def test_written_map_has_the_13_class_legend(tmp_path: Path) -> None:
    names, colours = _flair_sources()
    assert names == FLAIR2_NAMES
    out = tmp_path / "map.tif"
    _predict(PixelModel(4), write_geotiff(tmp_path / "o.tif", _image(40, 40), T, "EPSG:2154"), out)
    with rasterio.open(out) as src:
        table = src.colormap(1)
        assert src.nodata == MAP_NODATA == 0 and table[0][3] == 0  # no data: transparent
    qml = _palette((tmp_path / "map.qml").read_text())
    assert sorted(qml) == list(range(1, 14))
    for code, name in enumerate(FLAIR2_NAMES, start=1):
        hexa = colours[name]
        rgb = tuple(int(hexa[i : i + 2], 16) for i in (1, 3, 5))
        assert table[code] == (*rgb, 255), (code, name)
        assert qml[code] == (name, hexa), code
    assert table[13] == (0, 0, 0, 255) and qml[13] == ("other", "#000000")
    assert map_qml() == (tmp_path / "map.qml").read_text()


def test_msk_style_is_still_the_19_code_one(tmp_path: Path) -> None:
    palette = _palette(write_qml(tmp_path / "flair-msk.qml").read_text())
    assert sorted(palette) == list(range(1, 20))
    assert palette[13] == ("swimming pool", "#3de6eb") and palette[19] == ("other", "#000000")


def test_map_without_style(tmp_path: Path) -> None:
    img = write_geotiff(tmp_path / "o.tif", _image(40, 40), T, "EPSG:2154")
    report = _predict(PixelModel(4), img, tmp_path / "m" / "map.tif", style=False)
    assert report.style is None and [p.name for p in (tmp_path / "m").iterdir()] == ["map.tif"]
    with rasterio.open(tmp_path / "m" / "map.tif") as src:
        assert np.isin(src.read(1), range(1, 14)).all()
