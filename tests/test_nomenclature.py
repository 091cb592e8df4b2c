from pathlib import Path

import numpy as np
import pytest
import yaml

from flair_pipeline.errors import InputError
from flair_pipeline.nomenclature import (
    BY_CODE,
    CLASSES,
    FLAIR_SHARES,
    MERGED_NAMES,
    OTHER_INDEX,
    colormap,
    merge_to_13,
)


def test_nineteen_codes_with_names_and_colours() -> None:
    assert [c.code for c in CLASSES] == list(range(1, 20))
    assert BY_CODE[1].name == "building" and BY_CODE[11].name == "agricultural land"
    assert BY_CODE[15].name == "clear-cut" and BY_CODE[16].name == "mixed"
    assert BY_CODE[17].name == "ligneous" and BY_CODE[19].name == "other"
    assert all(len(c.rgb) == 3 and all(0 <= v <= 255 for v in c.rgb) for c in CLASSES)
    assert len({c.colour for c in CLASSES}) == 19


def test_merge_keeps_1_to_12_and_folds_13_to_19_into_other() -> None:
    codes = np.arange(1, 20, dtype=np.uint8)
    merged = merge_to_13(codes)
    assert merged[:12].tolist() == list(range(12))
    assert (merged[12:] == OTHER_INDEX).all()
    assert len(MERGED_NAMES) == 13 and MERGED_NAMES[OTHER_INDEX] == "other"
    assert merge_to_13(np.array([[5, 14]], dtype=np.int64)).tolist() == [[4, 12]]


@pytest.mark.parametrize("bad", [0, 20, 255, -1, 300])
def test_merge_rejects_values_outside_1_to_19(bad: int) -> None:
    with pytest.raises(InputError, match=rf"MSK_1\.tif.*{bad}"):
        merge_to_13(np.array([1, bad, 3]), source="MSK_1.tif")


def test_flair_shares_sum_to_100() -> None:
    assert sum(FLAIR_SHARES.values()) == pytest.approx(100.0, abs=0.05)


def test_colormap_covers_every_code() -> None:
    cmap = colormap()
    assert set(cmap) == set(range(20))
    assert cmap[1] == (0xDB, 0x0E, 0x9A, 255)


FLAIR1_CONFIG = (
    Path(__file__).resolve().parents[1].parent
    / "shared/real-samples/flair-metadata/configs/flair-1-config.yaml"
)
#: IGN's FLAIR-2 display code (IGNF/FLAIR-2 visualisation/data_display.py, commit 738a44dc),
#: copied by hand: the names and colours it draws for the released MSK codes 16 and 17.
FLAIR2_DISPLAY = {16: ("mixed", "#6b714f"), 17: ("ligneous", "#c5dc42")}


def test_codes_16_and_17_follow_the_release_s_own_sources() -> None:
    """docs/data-format.md, "Codes 16 and 17": the names of IGN's config and display code
    for the released MSK files, not those of the datapaper's table or FLAIR-HUB's style."""
    for code, (name, colour) in FLAIR2_DISPLAY.items():
        assert (BY_CODE[code].name, BY_CODE[code].colour) == (name, colour)
    if not FLAIR1_CONFIG.is_file():
        pytest.skip(f"{FLAIR1_CONFIG} absent (../shared is absent)")
    classes = yaml.safe_load(FLAIR1_CONFIG.read_text())["classes"]  # code: [weight, name]
    assert {c: classes[c][1] for c in (16, 17)} == {16: "mixed", 17: "ligneous"}
    assert {c: BY_CODE[c].name for c in (16, 17)} == {c: classes[c][1] for c in (16, 17)}
