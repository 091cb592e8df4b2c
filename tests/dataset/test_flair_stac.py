"""STAC description of a release (validated offline with pystac) and the QGIS style."""

from __future__ import annotations

import json
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pystac
import pytest
import rasterio
from pyproj import Transformer

from flair_pipeline.release.flair_stac import QML_NAME, validate_offline, write_stac
from tests.flair2_release import make_flair2_release

#: FLAIR's 19 classes as IGN describes the released MSK codes (dataset page, FLAIR-1 config,
#: FLAIR-2 display code; 16/17 differ in the datapaper: docs/data-format.md).
FLAIR_19 = {
    1: ("building", "db0e9a"),
    2: ("pervious surface", "938e7b"),
    3: ("impervious surface", "f80c00"),
    4: ("bare soil", "a97101"),
    5: ("water", "1553ae"),
    6: ("coniferous", "194a26"),
    7: ("deciduous", "46e483"),
    8: ("brushwood", "f3a60d"),
    9: ("vineyard", "660082"),
    10: ("herbaceous vegetation", "55ff00"),
    11: ("agricultural land", "fff30d"),
    12: ("plowed land", "e4df7c"),
    13: ("swimming pool", "3de6eb"),
    14: ("snow", "ffffff"),
    15: ("clear-cut", "8ab3a0"),
    16: ("mixed", "6b714f"),
    17: ("ligneous", "c5dc42"),
    18: ("greenhouse", "9999ff"),
    19: ("other", "000000"),
}


@pytest.fixture
def described(real_flair: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    release = make_flair2_release(real_flair, tmp_path / "FLAIR2")
    return release, write_stac(release.root)


def test_collection_and_items_validate_offline(described) -> None:
    release, path = described
    coll = pystac.Collection.from_file(str(path))
    uris = validate_offline(coll)
    assert "https://stac-extensions.github.io/label/v1.0.1/schema.json" in uris
    assert "https://stac-extensions.github.io/classification/v2.0.0/schema.json" in uris
    raw = json.loads(path.read_text())
    classes = raw["summaries"]["classification:classes"]
    assert {c["value"]: (c["title"], c["color_hint"].lower()) for c in classes} == FLAIR_19
    items = {i.id: i for i in coll.get_items(recursive=True)}
    assert sorted(items) == sorted(f"{f['domain']}-{f['zone']}" for f in release.facts.values())
    to_wgs84 = Transformer.from_crs("EPSG:2154", "EPSG:4326", always_xy=True)
    for pid, fact in release.facts.items():
        item = items[f"{fact['domain']}-{fact['zone']}"]
        assert item.properties["flair:split"] == (
            "validation" if pid == "000473" else fact["source_split"]
        )
        assert (
            item.datetime is not None
            and item.datetime.date().isoformat() == fact["acquired_utc"][:10]
        )
        lon, lat = to_wgs84.transform(fact["centroid_x"], fact["centroid_y"])
        w, s, e, n = item.bbox
        assert w < lon < e and s < lat < n
        assert {f"IMG_{pid}", f"MSK_{pid}", "SEN2_data", "SEN2_masks", "SEN2_products"} <= set(
            item.assets
        )
        msk = item.assets[f"MSK_{pid}"]
        with rasterio.open(msk.get_absolute_href()) as src:
            assert src.count == 1  # the href resolves to the release's file
        assert len(msk.extra_fields["classification:classes"]) == 19
        assert item.properties["label:type"] == "raster"


def test_broken_class_colour_fails_validation(described) -> None:
    _, path = described
    raw = json.loads(path.read_text())
    raw["summaries"]["classification:classes"][0]["color_hint"] = "#db0e9a"  # '#' not allowed
    coll = pystac.Collection.from_dict(raw)
    with pytest.raises(pystac.STACValidationError, match="classification"):
        validate_offline(coll)


def test_qml_palette(described) -> None:
    release, _ = described
    root = ET.parse(release.root / QML_NAME).getroot()
    entries = root.findall(".//colorPalette/paletteEntry")
    got = {
        int(e.get("value")): (e.get("label"), e.get("color").lstrip("#").lower()) for e in entries
    }
    assert got == FLAIR_19
    assert root.find(".//rasterrenderer").get("type") == "paletted"


def test_colours_match_ignf_flair_hub_style(described) -> None:
    """Colours by class name against IGNF's own QGIS style (FLAIR-HUB, other code order)."""
    release, _ = described
    hub = Path(__file__).resolve().parents[2].parent / (
        "shared/real-samples/flair-metadata/flair_hub_qml/flair-hub-qgis-style-flair-num.qml"
    )
    if not hub.is_file():
        pytest.skip(f"{hub} absent (../shared is absent)")
    fix = {"swimmin pool": "swimming pool", "clear cut": "clear-cut"}
    ignf = {
        fix.get(lab, lab): e.get("color").lower()
        for e in ET.parse(hub).getroot().iter("paletteEntry")
        for lab in [e.get("label").split(" - ", 1)[1]]
    }
    ours = {
        e.get("label"): e.get("color").lower()
        for e in ET.parse(release.root / QML_NAME).getroot().iter("paletteEntry")
    }
    assert ours == ignf
