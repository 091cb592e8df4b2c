"""The catalogue-metadata rules of stac_meta / stac_select, on hand-written items.

Expected values are the rule tables of the modules' docstrings, written out by hand here.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pystac
import pytest

from flair_pipeline.sentinel2.stac_meta import (
    CatalogueContradiction,
    asset_crs,
    asset_meta,
    boa_offset,
    processing_baseline,
    product_name,
    scale_offset,
)
from flair_pipeline.sentinel2.stac_select import scl_to_masks, select_items


def _item(props: dict, asset: dict | None = None, iid: str = "x", col: str | None = None):
    item = pystac.Item(iid, None, None, dt.datetime(2025, 7, 31, 13, 3, 27), dict(props))
    item.add_asset("red", pystac.Asset("red.tif", extra_fields=dict(asset or {})))
    if col:
        item.collection_id = col
    return item


# baseline, boa_offset_applied, declared offset -> offset removed (DN), rule that won,
# does the winner override another declaration? (the table of stac_meta's docstring)
TABLE = [
    ("02.14", None, None, 0, "table", False),
    ("02.14", False, 0.0, 0, "flag", False),  # Earth Search l2a 2020 (recorded item)
    ("02.14", True, 0.0, 0, "flag", False),
    ("03.01", None, -0.1, 1000, "asset", True),  # the declaration wins over the table
    ("04.00", None, None, 1000, "table", False),  # Planetary Computer: nothing declared
    ("05.10", None, -0.1, 1000, "asset", False),  # CDSE / Earth Search c1-l2a
    ("05.10", None, 0.0, 0, "asset", True),  # harmonised: the catalogue removed it (#29)
    ("05.11", False, -0.1, 1000, "flag", False),
    ("05.11", False, 0.0, 1000, "flag", True),  # the flag says the DN are ESA's
    ("05.11", True, -0.1, 0, "flag", True),  # Earth Search l2a (earth-search#66)
    ("05.11", True, None, 0, "flag", False),
    ("05.11", True, 0.0, 0, "flag", False),
    (None, None, -0.1, 1000, "asset", False),  # baseline unknown: the declared offset
    (None, None, 0.0, 0, "asset", False),
    (None, None, None, 0, "none", False),
    (None, True, None, 0, "flag", False),
    (None, False, -0.1, 1000, "asset", False),  # flag false, no table: the declaration
]


@pytest.mark.parametrize("baseline, flag, declared, removed, rule, overrides", TABLE)
def test_boa_offset_applied_exactly_once(baseline, flag, declared, removed, rule, overrides):
    props = {}
    if baseline is not None:
        props["s2:processing_baseline"] = baseline
    if flag is not None:
        props["earthsearch:boa_offset_applied"] = flag
    off, won, why = boa_offset(_item(props), declared, 1e-4)
    assert off == pytest.approx(-removed * 1e-4, abs=1e-12)
    assert won == rule and ("wins over" in why) == overrides
    # a DN of 1500 (reflectance 0.05 once the offset is gone, if any) by hand
    assert round((1500 * 1e-4 + off) * 10000) == 1500 - removed


@pytest.mark.parametrize(
    "asset",
    [
        {"raster:offset": 0, "raster:scale": 1e-4},  # raster v2 (STAC 1.1), asset level
        {"raster:bands": [{"offset": 0, "scale": 1e-4}]},  # raster v1
        {"bands": [{"raster:offset": 0.0}]},  # STAC 1.1 bands array
    ],
)
def test_a_declared_zero_offset_at_baseline_0510_is_kept(asset) -> None:
    """Issue 29: red 500 with raster:offset 0 at 05.10 stays 500 (not 0 after -1000)."""
    m = asset_meta(_item({"s2:processing_baseline": "05.10"}, asset), "red")
    assert (m.scale, m.offset, m.rule) == (1e-4, 0.0, "asset")
    assert round((500 * m.scale + m.offset) * 10000) == 500
    assert "wins over ESA's baseline table, which would remove 1000 DN" in m.decision
    bare = asset_meta(_item({"s2:processing_baseline": "05.10"}, {}), "red")
    assert (bare.offset, bare.rule) == (pytest.approx(-0.1), "table")
    assert round((1500 * bare.scale + bare.offset) * 10000) == 500


@pytest.mark.parametrize(
    ("asset", "props", "words"),
    [
        ({"raster:bands": [{"offset": -0.1}], "raster:offset": 0}, {}, "disagree"),
        ({"raster:offset": -0.1, "bands": [{"raster:offset": 0}]}, {}, "disagree"),
        ({"raster:bands": [{"scale": 1e-4}], "raster:scale": 2e-4}, {}, "disagree"),
        ({"raster:offset": "0"}, {}, "not a number"),
        ({"raster:scale": 0}, {}, "not a positive scale"),
        ({}, {"earthsearch:boa_offset_applied": "yes"}, "not true or false"),
    ],
)
def test_declarations_no_rule_settles_are_one_line_naming_the_item(asset, props, words):
    item = _item({"s2:processing_baseline": "05.10", **props}, asset, iid="S2B_BAD", col="c")
    with pytest.raises(CatalogueContradiction) as err:
        asset_meta(item, "red")
    line = str(err.value)
    assert "\n" not in line and line.startswith("STAC item S2B_BAD (c)") and words in line
    assert "its date is dropped" in line


def test_agreeing_spellings_are_one_declaration() -> None:
    asset = {"raster:bands": [{"offset": 0, "scale": 1e-4}], "raster:offset": 0.0}
    m = asset_meta(_item({"s2:processing_baseline": "05.10"}, asset), "red")
    assert m.offset == 0.0 and "raster:bands[0].offset = raster:offset 0" in m.decision


def test_baseline_from_product_uri_when_property_missing() -> None:
    uri = "S2B_MSIL2A_20220714T105619_N0400_R094_T31TCJ_20220714T133441.SAFE"
    off, rule, why = boa_offset(_item({"s2:product_uri": uri}), None, 1e-4)
    assert off == pytest.approx(-0.1) and why.startswith("baseline 04.00") and rule == "table"


@pytest.mark.parametrize(
    "asset, props, expected",
    [
        (
            {"raster:bands": [{"scale": 2e-4, "offset": -0.1, "nodata": 0}]},
            {},
            (2e-4, 0, "EPSG:32631", -0.1),  # declared: wins over the table
        ),
        (
            {"raster:scale": 2e-4, "raster:offset": -0.1, "nodata": 65535},
            {},
            (2e-4, 65535, "EPSG:32631", -0.1),
        ),
        (
            {"bands": [{"raster:scale": 2e-4, "nodata": 7}], "proj:code": "EPSG:32630"},
            {},
            (2e-4, 7, "EPSG:32630", -0.2),  # no offset declared: 1000 DN x 2e-4
        ),
        ({}, {"proj:code": "EPSG:32629"}, (1e-4, None, "EPSG:32629", -0.1)),
    ],
)
def test_asset_meta_reads_every_spelling(asset, props, expected) -> None:
    base = {"s2:processing_baseline": "05.11", "proj:epsg": 32631, **props}
    if "proj:code" in props:
        base.pop("proj:epsg")
    m = asset_meta(_item(base, asset), "red")
    assert m.scale == pytest.approx(expected[0]) and m.nodata == expected[1]
    assert m.crs == expected[2]
    assert m.offset == pytest.approx(expected[3])


def test_asset_crs_epsg_integer_and_absent() -> None:
    assert asset_crs(_item({"proj:epsg": 32724}), "red") == "EPSG:32724"
    assert asset_crs(_item({}), "red") is None


def test_non_reflectance_assets_are_not_scaled() -> None:
    m = asset_meta(
        _item({"s2:processing_baseline": "05.11"}, {"raster:bands": [{"nodata": 0}]}),
        "red",
        reflectance=False,
    )
    assert (m.scale, m.offset, m.nodata) == (1.0, 0.0, 0.0)


def test_scl_mapping_table() -> None:
    scl = np.arange(12, dtype=np.uint8).reshape(3, 4)
    snw, cld = scl_to_masks(scl)
    assert snw.tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 100]]
    assert cld.tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [65, 100, 65, 0]]
    assert snw.dtype == cld.dtype == np.uint8


def test_reprocessed_baselines_keep_the_newest_one_item_per_scene() -> None:
    tile = {"grid:code": "MGRS-31TCJ", "platform": "sentinel-2b"}
    old = _item({**tile, "s2:processing_baseline": "04.00"}, iid="b_old", col="c")
    new = _item({**tile, "s2:processing_baseline": "05.10"}, iid="a_new", col="c")
    other_tile = _item(
        {**tile, "grid:code": "MGRS-31TCK", "s2:processing_baseline": "04.00"},
        iid="c_other",
        col="c",
    )
    l1c = _item(tile, iid="d_l1c", col="sentinel-2-l1c")
    for order in ([old, new, other_tile, l1c], [new, l1c, other_tile, old]):
        kept, dropped = select_items(order, ["c"])
        assert [i.id for i in kept] == ["a_new", "c_other"]
        assert dropped == [("b_old", "duplicate of a_new (c)")]


def test_baseline_of_cdse_items_from_processing_version_else_the_id() -> None:
    """CDSE items carry ``processing:version`` and no ``s2:product_uri``; their id is the
    product name, whose ``_N0510_`` field is the last resort."""
    cdse_id = "S2A_MSIL2A_20220217T183431_N0510_R027_T13VEK_20240516T022440"
    assert processing_baseline(_item({"processing:version": "05.10"})) == 5.10
    assert processing_baseline(_item({}, iid=cdse_id)) == 5.10
    assert processing_baseline(_item({}, iid="S2B_T24MUV_20250731T130245_L2A")) is None
    off, rule, why = boa_offset(_item({}, iid=cdse_id), -0.1, 1e-4)
    assert off == pytest.approx(-0.1) and why.startswith("baseline 05.10") and rule == "asset"


@pytest.mark.parametrize(
    ("baseline", "asset", "expected"),
    [
        ("05.11", {}, (1e-4, -0.1)),  # default scale 1e-4; DN carry +1000: -1000 x 1e-4
        ("02.14", {}, (1e-4, 0.0)),
        ("05.11", {"raster:bands": [{"scale": 2e-4}]}, (2e-4, -0.2)),
    ],
)
def test_scale_offset_turns_dn_into_reflectance(baseline, asset, expected) -> None:
    item = _item({"s2:processing_baseline": baseline}, asset)
    scale, offset = scale_offset(item, "red")
    assert (scale, offset) == pytest.approx(expected, abs=1e-12)
    assert 2152 * scale + offset == pytest.approx(2152 * expected[0] + expected[1])


def test_product_name_is_the_safe_name_without_its_suffix_else_the_item_id() -> None:
    safe = "S2B_MSIL2A_20250731T103629_N0511_R008_T31TDH_20250731T132207"
    assert product_name(_item({"s2:product_uri": safe + ".SAFE"}, iid="a")) == safe
    assert product_name(_item({"s2:product_uri": safe}, iid="a")) == safe
    assert product_name(_item({}, iid="S2B_31TDH_20250731_0_L2A")) == "S2B_31TDH_20250731_0_L2A"
    assert product_name(_item({"s2:product_uri": ""}, iid="b")) == "b"


@pytest.mark.parametrize(
    ("asset", "spelling"),
    [
        ({"raster:bands": [{"offset": -0.1}]}, "raster:bands[0].offset"),  # raster v1
        ({"raster:offset": -0.1}, "raster:offset"),  # raster v2 (STAC 1.1)
        ({"bands": [{"raster:offset": -0.1}]}, "bands[0].raster:offset"),  # STAC 1.1 bands
    ],
)
def test_declared_offset_is_read_in_every_spelling_when_the_baseline_is_unknown(
    asset, spelling
) -> None:
    m = asset_meta(_item({}, asset), "red")  # no baseline: the declared offset is used
    assert (m.scale, m.offset) == (1e-4, -0.1)
    assert m.decision == f"baseline unknown: the asset's {spelling} -0.1 used"


@pytest.mark.parametrize("asset", [{"raster:bands": []}, {"bands": []}, {"raster:bands": ["x"]}])
def test_empty_or_odd_band_lists_fall_back_to_the_defaults(asset) -> None:
    m = asset_meta(_item({}, asset), "red")
    assert (m.scale, m.offset, m.nodata) == (1e-4, 0.0, None)


def test_non_reflectance_assets_keep_their_crs_and_say_why_unscaled() -> None:
    item = _item(
        {"s2:processing_baseline": "05.11", "proj:epsg": 32631},
        {"raster:bands": [{"scale": 2e-4, "offset": -0.1, "nodata": 0}]},
    )
    m = asset_meta(item, "red", reflectance=False)
    assert (m.scale, m.offset, m.nodata) == (1.0, 0.0, 0.0)
    assert (m.crs, m.decision) == ("EPSG:32631", "not a reflectance")


def test_baseline_digits_of_the_product_name_are_major_and_hundredths() -> None:
    uri = "S2B_MSIL2A_20250731T103629_N0511_R008_T31TDH_20250731T132207.SAFE"
    assert processing_baseline(_item({"s2:product_uri": uri})) == pytest.approx(5.11)


def test_the_flag_overriding_a_declared_offset_says_so() -> None:
    item = _item({"s2:processing_baseline": "05.11", "earthsearch:boa_offset_applied": True})
    assert boa_offset(item, -0.1, 1e-4, "raster:bands[0].offset") == (
        0.0,
        "flag",
        "baseline 05.11, earthsearch:boa_offset_applied: true: the catalogue already removed "
        "the BOA offset; the flag wins over the asset's raster:bands[0].offset -0.1 "
        "(Element84/earth-search#66)",
    )
