"""RPG crop-code tables (issue 25 item 2): IGN's level-1 list shipped, users' tables checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flair_pipeline.errors import InputError
from flair_pipeline.geo.crop_tables import (
    BACKGROUND_L1,
    NODATA,
    level1_classes,
    load_crop_tables,
    read_crop_table,
)
from flair_pipeline.models.hub_inputs import LPIS_L1_NAMES

LPIS_DIR = Path(__file__).parents[2] / "flair_pipeline" / "geo" / "lpis"


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_level1_list_is_igns_config_order() -> None:
    """The shipped list has IGN's 23 classes in config_supervision.yaml's order, 22 background.

    Compared with the names hub_inputs copied from IGN's config (an independent copy),
    ignoring case and the order of "flax/hemp/tobacco" and the README's plural "Fruit".
    """
    classes = level1_classes()
    assert [c.index for c in classes] == list(range(23))

    def norm(s: str) -> str:
        return "/".join(sorted(re.sub(r"s\b", "", s.lower()).split("/")))

    assert [norm(c.name) for c in classes] == [norm(n) for n in LPIS_L1_NAMES]
    assert classes[BACKGROUND_L1].name == "Background"
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c.colour) for c in classes)
    readme = (LPIS_DIR / "README.md").read_text(encoding="utf-8")
    assert "3d5693b5981de9ba4ab851ed631352b814c1d554" in readme  # the source is named


def test_table_read_by_code_or_group(tmp_path: Path) -> None:
    """A code_cultu table reads CODE_CULTU, a code_group one CODE_GROUP; cells are stripped."""
    t = read_crop_table(_csv(tmp_path / "l1.csv", "code_cultu,class\nBTH,1\n MIS ,3\nPPH,0\n"), 1)
    assert (t.field, dict(t.classes)) == ("CODE_CULTU", {"BTH": 1, "MIS": 3, "PPH": 0})
    g = read_crop_table(_csv(tmp_path / "g.csv", "code_group,class\n1,1\n2,3\n"), 2)
    assert (g.field, dict(g.classes)) == ("CODE_GROUP", {"1": 1, "2": 3})


@pytest.mark.parametrize(
    ("level", "text", "expected"),
    [
        (
            1,
            "code_cultu,class\nBTH,1\nMIS,23\n",
            r"line 3: class '23' of code_cultu 'MIS' is not IGN's level-1",
        ),
        (1, "code_cultu,class\nBTH,1\nBTH,2\n", r"line 3: code_cultu 'BTH' is already on line 2"),
        (1, "code_cultu,class\n,1\n", r"line 2: empty code_cultu"),
        (1, "code_cultu,class\nBTH,wheat\n", r"line 2: class 'wheat'"),
        (2, "code_cultu,class\nBTH,255\n", r"line 2: class '255' .* not a class 0\.\.254"),
        (
            1,
            "culture,class\nBTH,1\n",
            r"needs the columns `code_cultu,class` or `code_group,class`",
        ),
    ],
)
def test_bad_table_is_one_line_naming_file_and_row(
    tmp_path: Path, level: int, text: str, expected: str
) -> None:
    """Unknown class, duplicate code, empty code, bad header: one line naming file and row."""
    path = _csv(tmp_path / "table.csv", text)
    with pytest.raises(InputError, match=expected) as err:
        read_crop_table(path, level)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_levels_2_3_need_their_background(tmp_path: Path) -> None:
    """Levels without a table are NODATA; a level-2 table without a background is refused."""
    l1 = _csv(tmp_path / "l1.csv", "code_cultu,class\nBTH,1\n")
    l2 = _csv(tmp_path / "l2.csv", "code_cultu,class\nBTH,4\n")
    only1 = load_crop_tables(l1)
    assert only1.background == (BACKGROUND_L1, NODATA, NODATA)
    assert only1.tables[1] is None and "not labelled" in only1.describe()["level_2"]["decision"]
    with pytest.raises(InputError, match=r"l2\.csv \(level 2\): its background class is not given"):
        load_crop_tables(l1, l2)
    both = load_crop_tables(l1, l2, background2=0)
    assert both.background == (BACKGROUND_L1, 0, NODATA)
    assert both.describe()["level_2"]["table"] == str(l2)


def test_raw_rpg_folder_tables(tmp_path: Path) -> None:
    """<raw>/rpg/: level 1 required, level 2 with its background from lpis_backgrounds.json."""
    from flair_pipeline.dataset.crop_step import domain_tables

    rpg = tmp_path / "rpg"
    rpg.mkdir()
    with pytest.raises(
        InputError, match=r"lpis_level1\.csv does not exist: the RPG's level-1 table"
    ):
        domain_tables(tmp_path)
    _csv(rpg / "lpis_level1.csv", "code_cultu,class\nBTH,1\n")
    _csv(rpg / "lpis_level2.csv", "code_group,class\n1,7\n")
    with pytest.raises(
        InputError, match=r"lpis_level2\.csv \(level 2\): its background class is not given"
    ):
        domain_tables(tmp_path)
    (rpg / "lpis_backgrounds.json").write_text('{"2": 9}')
    tables = domain_tables(tmp_path)
    assert tables.background == (BACKGROUND_L1, 9, NODATA)
    assert tables.fields == ["CODE_CULTU", "CODE_GROUP"]
    (rpg / "lpis_backgrounds.json").write_text("[2, 9]")
    with pytest.raises(InputError, match=r"lpis_backgrounds\.json: not a JSON object"):
        domain_tables(tmp_path)
