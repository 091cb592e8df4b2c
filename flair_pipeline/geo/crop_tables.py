"""RPG crop codes to FLAIR-HUB's three LPIS levels, through tables checked when read.

FLAIR-HUB's crop-type labels (``ALL_LABEL-LPIS``) hold one band per level of IGN's crop
nomenclature. IGN publishes the level-1 classes (23, 22 the background; shipped in
``lpis/lpis_level1_classes.csv`` with their source, see ``lpis/README.md``) but not the
tables from RPG codes to them, nor levels 2 and 3. So each level's table is the user's: a
CSV keyed on the RPG's crop code or its group code, one class per row::

    code_cultu,class
    BTH,1
    MIS,3

(or ``code_group,class`` to map whole groups by ``CODE_GROUP``). A table is refused in one
line naming the file and the row: an unknown class (level 1: not one of IGN's 0..22;
levels 2 and 3: not 0..254, 255 being the label nodata), a duplicate code, an empty code.
A level without a table is written as :data:`NODATA` everywhere (recorded in the labels'
metadata); a level-2 or level-3 table needs the background its user gives it.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from flair_pipeline.errors import InputError

#: The level-1 class list IGN publishes, shipped with its source (``lpis/README.md``).
LEVEL1_CLASSES_CSV = Path(__file__).with_name("lpis") / "lpis_level1_classes.csv"
#: Level-1 background: pixels of no parcel, as FLAIR-HUB codes them.
BACKGROUND_L1 = 22
#: The label nodata: a pixel not labelled at that level (no table for it).
NODATA = 255
#: Table key column -> the RPG field it is looked up in.
KEY_FIELDS = {"code_cultu": "CODE_CULTU", "code_group": "CODE_GROUP"}
#: The RPG field every crop layer must have.
CROP_FIELD = "CODE_CULTU"
_MAX_LISTED = 20


@dataclass(frozen=True)
class LpisClass:
    """One level-1 class of IGN's list."""

    index: int
    name: str
    name_fr: str
    colour: str


def level1_classes() -> tuple[LpisClass, ...]:
    """IGN's 23 level-1 classes, in index order (the shipped CSV).

    Returns:
        The classes, ``index`` 0..22.
    """
    with open(LEVEL1_CLASSES_CSV, newline="", encoding="utf-8") as fh:
        return tuple(
            LpisClass(int(r["class"]), r["name"], r["name_fr"], r["colour"])
            for r in csv.DictReader(fh)
        )


@dataclass(frozen=True)
class CropTable:
    """One level's table: the RPG field it reads and code -> class."""

    level: int
    path: Path
    field: str
    classes: Mapping[str, int]


def _code(value: object) -> str:
    """A code as a key: text stripped, an integral float without its ".0" (``CODE_GROUP``).

    Args:
        value: A table cell or an attribute value.

    Returns:
        The key text ("" for a null).
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def read_crop_table(path: str | Path, level: int) -> CropTable:
    """Read and check one level's table (module docstring: the format and the checks).

    Args:
        path: The CSV.
        level: 1, 2 or 3.

    Returns:
        The checked table.

    Raises:
        InputError: The file is unreadable, lacks its columns, or a row has an empty code,
            a code already given on an earlier row, or a class outside the level's list:
            one line naming the file and the row.
    """
    path = Path(path)
    top = BACKGROUND_L1 if level == 1 else NODATA - 1
    what = "IGN's level-1 classes 0..22" if level == 1 else f"a class 0..{top}"
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip().lower() for h in reader.fieldnames or []]
            rows = [list(r.values()) for r in reader]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"crop table {path} (level {level}) cannot be read: {exc}") from None
    keys = [k for k in KEY_FIELDS if k in header]
    if "class" not in header or len(keys) != 1:
        raise InputError(
            f"crop table {path} (level {level}): needs the columns `code_cultu,class` or "
            f"`code_group,class`, found {header}"
        )
    key_at, class_at = header.index(keys[0]), header.index("class")
    classes: dict[str, int] = {}
    first_line: dict[str, int] = {}
    for line, row in enumerate(rows, 2):
        code = _code(row[key_at])
        raw = (row[class_at] or "").strip() if class_at < len(row) else ""
        if not code:
            raise InputError(f"crop table {path}: line {line}: empty {keys[0]}; fill or delete it")
        if code in classes:
            raise InputError(
                f"crop table {path}: line {line}: {keys[0]} {code!r} is already on line "
                f"{first_line[code]}; keep one row per code"
            )
        value = int(raw) if raw.isdigit() else -1
        if not 0 <= value <= top:
            raise InputError(
                f"crop table {path}: line {line}: class {raw!r} of {keys[0]} {code!r} is not "
                f"{what} (level {level})"
            )
        classes[code], first_line[code] = value, line
    return CropTable(level, path, KEY_FIELDS[keys[0]], classes)


@dataclass(frozen=True)
class CropTables:
    """The tables of the three levels (None: the level is not labelled) and backgrounds."""

    tables: tuple[CropTable | None, CropTable | None, CropTable | None]
    background: tuple[int, int, int]

    @property
    def fields(self) -> list[str]:
        """The RPG fields the tables read, :data:`CROP_FIELD` first.

        Returns:
            Field names, no duplicates.
        """
        wanted = [CROP_FIELD] + [t.field for t in self.tables if t is not None]
        return list(dict.fromkeys(wanted))

    def describe(self) -> dict[str, Any]:
        """What each level was made from, for the labels' metadata.

        Returns:
            ``{"level_1": {"table": …, "field": …, "background": 22, "source": …}, …}``.
        """
        out: dict[str, Any] = {}
        for level, (table, bg) in enumerate(zip(self.tables, self.background, strict=True), 1):
            if table is None:
                out[f"level_{level}"] = {
                    "table": None,
                    "background": bg,
                    "decision": f"no level-{level} table given: band {level} is {NODATA} "
                    "(not labelled) in every pixel",
                }
            else:
                out[f"level_{level}"] = {
                    "table": str(table.path),
                    "field": table.field,
                    "codes": len(table.classes),
                    "background": bg,
                    "source": "user's table"
                    + (", classes of IGN's level-1 list" if level == 1 else ""),
                }
        return out


def load_crop_tables(
    level1: str | Path,
    level2: str | Path | None = None,
    level3: str | Path | None = None,
    *,
    background2: int | None = None,
    background3: int | None = None,
) -> CropTables:
    """Read the tables of the three levels; level 1's is required.

    Args:
        level1: The level-1 table (classes of IGN's list, background 22).
        level2: The level-2 table, or None (band 2 not labelled).
        level3: The level-3 table, or None (band 3 not labelled).
        background2: Level 2's background class, required with its table.
        background3: Level 3's background class, required with its table.

    Returns:
        The checked tables.

    Raises:
        InputError: A table is refused (:func:`read_crop_table`), or a level-2/3 table
            comes without its background, or a background is outside 0..254.
    """
    tables: list[CropTable | None] = [read_crop_table(level1, 1)]
    background = [BACKGROUND_L1]
    for level, path, bg in ((2, level2, background2), (3, level3, background3)):
        if path is None:
            tables.append(None)
            background.append(NODATA)
            continue
        if bg is None or not 0 <= bg < NODATA:
            raise InputError(
                f"crop table {path} (level {level}): its background class is "
                f"{'not given' if bg is None else bg}; IGN publishes none for level {level}, "
                f"declare one in 0..{NODATA - 1}"
            )
        tables.append(read_crop_table(path, level))
        background.append(bg)
    t1, t2, t3 = tables
    return CropTables((t1, t2, t3), (background[0], background[1], background[2]))


def rpg_fields(gdf: gpd.GeoDataFrame, tables: CropTables, path: Path) -> gpd.GeoDataFrame:
    """`gdf` with its RPG fields under their canonical names (matched ignoring case).

    Args:
        gdf: The parcels as read.
        tables: The tables (which fields they read).
        path: The RPG file, named in errors.

    Returns:
        `gdf`, the fields renamed to ``CODE_CULTU`` / ``CODE_GROUP``.

    Raises:
        InputError: A field the tables need (always ``CODE_CULTU``) is missing: one line
            naming the file and the fields it has.
    """
    by_upper = {str(c).upper(): c for c in gdf.columns if c != gdf.geometry.name}
    missing = [f for f in tables.fields if f not in by_upper]
    if missing:
        raise InputError(
            f"RPG file {path} has no field {', '.join(missing)} (fields: {list(by_upper.values())}); "
            "crop labels need the RPG's CODE_CULTU (and CODE_GROUP for a table keyed on it)"
        )
    return gdf.rename(columns={by_upper[f]: f for f in tables.fields})


def crop_classes(gdf: gpd.GeoDataFrame, tables: CropTables, path: Path) -> np.ndarray:
    """The class of each parcel at each level, through the tables.

    Args:
        gdf: The parcels, fields renamed by :func:`rpg_fields`, in a metric CRS.
        tables: The tables.
        path: The RPG file, named in errors.

    Returns:
        uint8 (n_parcels, 3); :data:`NODATA` for a level without a table.

    Raises:
        InputError: Codes missing from a table: every one listed with the parcels' area
            (m², largest first), per level, in one line.
    """
    out = np.full((len(gdf), 3), NODATA, np.uint8)
    problems = []
    metric = (
        gdf.to_crs(gdf.estimate_utm_crs()) if gdf.crs is not None and gdf.crs.is_geographic else gdf
    )
    area = metric.geometry.area.to_numpy()
    for i, table in enumerate(tables.tables):
        if table is None:
            continue
        codes = [_code(v) for v in gdf[table.field].tolist()]
        values = np.array([table.classes.get(c, -1) for c in codes], np.int64)
        bad = values < 0
        if bad.any():
            per = (
                pd.Series(area[bad])
                .groupby([c or "(empty)" for c, b in zip(codes, bad, strict=True) if b])
                .sum()
            )
            per = per.sort_values(ascending=False)
            listed = ", ".join(f"{k} ({a:,.0f} m²)" for k, a in per.head(_MAX_LISTED).items())
            more = f" and {len(per) - _MAX_LISTED} more" if len(per) > _MAX_LISTED else ""
            problems.append(
                f"level {i + 1}: {len(per)} {table.field} value(s) not in {table.path}: "
                f"{listed}{more}"
            )
        out[:, i] = np.where(bad, NODATA, values).astype(np.uint8)
    if problems:
        raise InputError(f"RPG file {path}: {'; '.join(problems)}; add a row for each to the table")
    return out
