"""Index a FLAIR-HUB release (whole or any subset, zipped or not) into a manifest.

The release's layout is :mod:`flair_pipeline.sources.flair_hub_layout`. The index finds
every modality file below the release folder, and inside the download archives
(``D004-2021_AERIAL_RGBI.zip`` or ``…_IMS.zip``, read in place through GDAL's
``/vsizip/``), groups them by patch, and joins:

- **the split**, from ``GLOBAL_ALL_MTD/GLOBAL_ALL_MTD_SPLIT.gpkg`` (a column among
  ``split_1``…``split_5``, ``split_flairchallenge``) or from the per-split CSVs
  (``*_TRAIN.csv``, ``*_VALID.csv``, ``*_TEST.csv``: ``patch_id`` and one path column per
  modality), given or found in the release; a patch no split lists keeps an empty split;
- **the acquisition dates** of each time series, from ``GLOBAL_SENTINEL2_MTD_DATES.gpkg``
  and ``GLOBAL_SENTINEL1-{ASC,DESC}_MTD_DATES.gpkg`` (``patch_id``, ``acquisition_dates``
  as JSON ``{index: "YYYYMMDD"}``, ordered by index as IGN's ``sentinel_dates.py`` reads
  them).

Each file is checked the way training will read it (band count, size, dtype, a series'
band count against its dates row, the 0-based range of COSIA labels). A bad file is
listed as a problem naming it and left out of its patch; a modality missing for some
patches is listed, not fatal. Areas shared between splits are reported (IGN's toy split
puts 24 of its 46 validation areas in train too, with no patch shared); with
``area_disjoint`` the shared areas' patches leave the lower split (test > validation >
train: evaluation splits are kept whole) and the manifest says so per patch.
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypedDict

import numpy as np
import pyogrio
import rasterio
from rasterio.errors import RasterioError

from flair_pipeline.errors import InputError
from flair_pipeline.io import atomic_path
from flair_pipeline.progress import Progress, each
from flair_pipeline.sources.flair_hub_layout import (
    ARCHIVE_RE,
    DATES_FILES,
    HISTORICAL_YEAR,
    MODALITIES,
    HubPatchId,
    parse_file_name,
    parse_patch_id,
)

SPLITS = ("train", "validation", "test")
#: Which split keeps an area shared between splits under ``area_disjoint``.
_PRIORITY = {"test": 0, "validation": 1, "train": 2}
_SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
}
SPLIT_GPKG = "GLOBAL_ALL_MTD_SPLIT.gpkg"
SPLIT_COLUMNS = ("split_1", "split_2", "split_3", "split_4", "split_5", "split_flairchallenge")


def dates_file(key: str) -> str:
    """The dates GeoPackage of a series (``GLOBAL_SENTINEL2_MTD_DATES.gpkg``).

    Args:
        key: A series key of ``DATES_FILES`` (``SENTINEL2``, …).

    Returns:
        The file name.
    """
    return f"GLOBAL_{key}_MTD_DATES.gpkg"


@dataclass(frozen=True)
class Problem:
    """A file or row that could not be used, and what to do."""

    path: str
    reason: str


@dataclass(frozen=True)
class HubRecord:
    """One patch of the release: its split, its modality files, its series' dates.

    paths: modality -> a path rasterio opens (absolute, or ``/vsizip/<zip>/<member>``);
    dates: ``SENTINEL2`` / ``SENTINEL1-ASC`` / ``SENTINEL1-DESC`` -> ``YYYYMMDD`` strings
    in the order of the series' bands.
    """

    patch_id: str
    domain: str
    area: str
    row: int
    col: int
    split: str
    split_source: str
    paths: dict[str, str]
    dates: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class HubIndex:
    """The indexed release: records, problems, what is missing, and the splits' overlap."""

    root: Path
    records: list[HubRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)  # modality -> patch ids
    shared_areas: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    modalities: tuple[str, ...] = ()
    split_origin: str = ""


def _key(pid: HubPatchId) -> tuple[str, str, int, int]:
    return (pid.departement, pid.roi, pid.row, pid.col)


class _Found(TypedDict):
    """What `_scan` found for one area: its year and its files by modality."""

    year: str
    files: dict[str, str]


def _scan(root: Path, problems: list[Problem]) -> dict[tuple[str, str, int, int], _Found]:
    """Every modality file below `root` and in its archives, by (dépt, ROI, row, col).

    Args:
        root: The release folder.
        problems: Where duplicate or inconsistent files are recorded.

    Returns:
        Area key -> its year and its files by modality (paths, ``zip://`` members included).
    """
    found: dict[tuple[str, str, int, int], _Found] = defaultdict(lambda: {"year": "", "files": {}})

    def add(pid: HubPatchId, mod: str, path: str) -> None:
        entry = found[_key(pid)]
        if pid.year != HISTORICAL_YEAR:
            if entry["year"] and entry["year"] != pid.year:
                problems.append(
                    Problem(path, f"year {pid.year} where the area has {entry['year']}")
                )
                return
            entry["year"] = pid.year
        if mod in entry["files"]:
            problems.append(Problem(path, f"duplicate {mod} file, also {entry['files'][mod]}"))
            return
        entry["files"][mod] = path

    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        parsed = parse_file_name(path.name)
        if parsed is not None:
            add(*parsed, str(path))
        elif ARCHIVE_RE.match(path.name):
            try:
                with zipfile.ZipFile(path) as zf:
                    members = zf.namelist()
            except (zipfile.BadZipFile, OSError) as exc:
                problems.append(
                    Problem(str(path), f"unreadable archive ({exc}); download it again")
                )
                continue
            for member in members:
                parsed = parse_file_name(member.rsplit("/", 1)[-1])
                if parsed is not None:
                    add(*parsed, f"/vsizip/{path}/{member}")
    return found


def _split_of_name(path: Path) -> str | None:
    words = re.split(r"[^a-z]+", path.stem.lower())
    hits = {_SPLIT_WORDS[w] for w in words if w in _SPLIT_WORDS}
    return hits.pop() if len(hits) == 1 else None


def _read_split_csvs(
    files: Iterable[Path], problems: list[Problem]
) -> tuple[dict[str, tuple[str, str]], dict[str, set[str]]]:
    """Patch id -> (split, source) and patch id -> modalities its row declares.

    Args:
        files: FLAIR-HUB's split CSVs (``*_TRAIN.csv``, ``*_VALID.csv``, ``*_TEST.csv``).
        problems: Where bad rows are recorded.

    Returns:
        The two maps.

    Raises:
        InputError: A file name names no split, or a file has no ``patch_id`` column.
    """
    splits: dict[str, tuple[str, str]] = {}
    declared: dict[str, set[str]] = {}
    for path in files:
        split = _split_of_name(path)
        if split is None:
            raise InputError(
                f"{path}: cannot tell the split from the file name; name it *_TRAIN.csv, "
                "*_VALID.csv or *_TEST.csv as FLAIR-HUB's CSVs are"
            )
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if "patch_id" not in (reader.fieldnames or []):
                raise InputError(f"{path}: no patch_id column (found {reader.fieldnames})")
            for line, row in enumerate(reader, start=2):
                try:
                    pid = str(parse_patch_id(row["patch_id"], f"{path}:{line}"))
                except InputError as exc:
                    problems.append(Problem(f"{path}:{line}", str(exc)))
                    continue
                if pid in splits:
                    problems.append(
                        Problem(f"{path}:{line}", f"{pid} also listed in {splits[pid][1]}")
                    )
                    continue
                splits[pid] = (split, path.name)
                declared[pid] = {m for m in MODALITIES if (row.get(m) or "").strip()}
    return splits, declared


def _read_split_gpkg(
    path: Path, column: str, problems: list[Problem]
) -> dict[str, tuple[str, str]]:
    try:
        df = pyogrio.read_dataframe(path, columns=["patch_id", column], read_geometry=False)
    except Exception as exc:  # pyogrio's errors are many; the line names the file
        raise InputError(
            f"{path}: cannot read columns patch_id, {column} ({exc}); columns are "
            f"{', '.join(SPLIT_COLUMNS)}"
        ) from None
    out: dict[str, tuple[str, str]] = {}
    for pid, value in zip(df["patch_id"], df[column], strict=True):
        split = _SPLIT_WORDS.get(str(value).strip().lower())
        if split is None:
            problems.append(Problem(f"{path}:{pid}", f"{column} value {value!r} is not a split"))
            continue
        out[str(pid)] = (split, f"{path.name}:{column}")
    return out


def read_dates(path: Path, problems: list[Problem]) -> dict[str, tuple[str, ...]]:
    """A dates GeoPackage: patch id -> acquisition dates in band order.

    Args:
        path: ``GLOBAL_<series>_MTD_DATES.gpkg`` (``patch_id``, ``acquisition_dates`` as
            JSON ``{index: "YYYYMMDD"}``).
        problems: where a row that does not parse is listed (and left out).

    Returns:
        ``YYYYMMDD`` strings, ordered by their integer index.

    Raises:
        InputError: the file cannot be read or lacks the two columns.
    """
    try:
        df = pyogrio.read_dataframe(
            path, columns=["patch_id", "acquisition_dates"], read_geometry=False
        )
    except Exception as exc:
        raise InputError(
            f"{path}: cannot read columns patch_id, acquisition_dates ({exc})"
        ) from None
    out: dict[str, tuple[str, ...]] = {}
    for pid, text in zip(df["patch_id"], df["acquisition_dates"], strict=True):
        try:
            table = json.loads(text)
            ordered = [str(table[k]) for k in sorted(table, key=int)]
            for d in ordered:
                datetime.strptime(d, "%Y%m%d")
        except (TypeError, ValueError, json.JSONDecodeError) as exc:
            problems.append(Problem(f"{path}:{pid}", f"acquisition_dates do not parse ({exc})"))
            continue
        out[str(pid)] = tuple(ordered)
    return out


def _check_file(
    modality: str, path: str, n_dates: int | None, check_size: bool = True
) -> str | None:
    """What is wrong with one modality file, None when training can read it as is.

    Args:
        modality: A key of ``MODALITIES``.
        path: The file (or archive member).
        n_dates: Dates its series' dates file lists, or None when unknown.
        check_size: Also check the pixel size.

    Returns:
        One phrase (unreadable, bands, dtype, size, dates), or None.
    """
    spec = MODALITIES[modality]
    try:
        with rasterio.open(path) as src:
            if spec.per_date is not None:
                if n_dates is None:
                    return (
                        f"{modality}: no dates row for this patch in {dates_file(spec.dates or '')}"
                    )
                want = spec.per_date * n_dates
                if src.count != want:
                    return (
                        f"{modality}: {src.count} bands where its dates row has {n_dates} dates "
                        f"({spec.per_date} bands a date: {want})"
                    )
            elif spec.bands is not None and src.count != spec.bands:
                return f"{modality}: {src.count} bands, expected {spec.bands}"
            size = spec.size if check_size and spec.size is not None else None
            if size is not None and (src.width, src.height) != (size, size):
                return f"{modality}: {src.width} x {src.height} px, expected {size} x {size}"
            if src.width != src.height:
                return f"{modality}: {src.width} x {src.height} px, patches are square"
            if spec.dtypes and src.dtypes[0] not in spec.dtypes:
                return f"{modality}: dtype {src.dtypes[0]}, expected {'/'.join(spec.dtypes)}"
            if spec.label_max is not None:
                top = int(np.max(src.read(1)))
                if top > spec.label_max:
                    return (
                        f"{modality}: class {top} above {spec.label_max}: a 1-based FLAIR #1/#2 "
                        f"MSK? FLAIR-HUB's labels are 0-based (0..{spec.label_max}); subtract 1"
                    )
    except RasterioError as exc:
        return f"{modality}: unreadable ({exc})"
    return None


def _shared(records: list[HubRecord]) -> dict[tuple[str, str], list[str]]:
    areas: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.split in SPLITS:
            areas[r.split].add(r.area)
    out = {}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            both = sorted(areas[a] & areas[b])
            if both:
                out[(a, b)] = both
    return out


def index_hub(
    release_dir: str | Path,
    *,
    split_csvs: Iterable[Path] = (),
    split_gpkg: Path | None = None,
    split_column: str = "split_1",
    modalities: Iterable[str] = (),
    domains: Iterable[str] = (),
    area_disjoint: bool = False,
    check_size: bool = True,
    workers: int = 8,
    progress: Progress | None = None,
) -> HubIndex:
    """Index a FLAIR-HUB release folder (see the module docstring for the rules).

    Args:
        release_dir: the release (unzipped folders, download archives, or both).
        split_csvs: per-split CSVs; default: those found in the release, if any.
        split_gpkg: ``GLOBAL_ALL_MTD_SPLIT.gpkg``; default: the one in the release. The
            CSVs win when both are given.
        split_column: the split column of the GeoPackage (``split_1``…``split_5``,
            ``split_flairchallenge``).
        modalities: keep only these (default: every modality found).
        domains: keep only these domains (``D006-2020`` or ``D006_2020``).
        area_disjoint: move areas shared between splits out of the lower split.
        check_size: refuse files not at the release's pixel size (512 px aerial, 10 px
            Sentinel…); off for a dataset exported here from other patch sizes.
        workers: threads checking files (rasterio releases the GIL).
        progress: where to show the count of patches checked, or None.

    Returns:
        The index; problems and missing modalities are listed, not raised.

    Raises:
        InputError: the folder does not exist, holds no FLAIR-HUB file, a split file cannot
            be read, or an unknown modality or split column is asked for.
    """
    root = Path(release_dir).resolve()
    if not root.is_dir():
        raise InputError(f"FLAIR-HUB release folder {root} does not exist or is not a folder")
    wanted = tuple(modalities)
    unknown = [m for m in wanted if m not in MODALITIES]
    if unknown:
        raise InputError(f"unknown modality {unknown}; FLAIR-HUB's are {', '.join(MODALITIES)}")
    if split_column not in SPLIT_COLUMNS:
        raise InputError(f"split column {split_column!r}: one of {', '.join(SPLIT_COLUMNS)}")
    keep_domains = {d.replace("_", "-") for d in domains}
    index = HubIndex(root)
    found = _scan(root, index.problems)
    if not found:
        raise InputError(
            f"no FLAIR-HUB file ({{D}}-{{Y}}_{{MODALITY}}_{{ROI}}_{{r}}-{{c}}.tif) under {root}"
        )
    present = sorted({m for e in found.values() for m in e["files"]}, key=list(MODALITIES).index)
    index.modalities = wanted or tuple(present)

    csvs = list(split_csvs) or sorted(
        p for p in root.rglob("*.csv") if _split_of_name(p) is not None
    )
    declared: dict[str, set[str]] = {}
    if csvs:
        splits, declared = _read_split_csvs(csvs, index.problems)
        index.split_origin = ", ".join(p.name for p in csvs)
    else:
        gpkg = split_gpkg or next(iter(sorted(root.rglob(SPLIT_GPKG))), None)
        splits = _read_split_gpkg(gpkg, split_column, index.problems) if gpkg else {}
        index.split_origin = f"{gpkg.name}:{split_column}" if gpkg else ""

    dates: dict[str, dict[str, tuple[str, ...]]] = {}
    for key in DATES_FILES:
        path = next(iter(sorted(root.rglob(dates_file(key)))), None)
        if path is not None:
            dates[key] = read_dates(path, index.problems)

    candidates: list[tuple[HubPatchId, dict[str, str]]] = []
    for (dept, roi, r, c), entry in sorted(found.items()):
        files = {m: p for m, p in entry["files"].items() if m in index.modalities}
        if not entry["year"]:
            for p in files.values():
                index.problems.append(
                    Problem(p, "historical ortho with no other modality: year unknown")
                )
            continue
        pid = HubPatchId(dept, entry["year"], roi, r, c)
        if keep_domains and pid.domain not in keep_domains:
            continue
        candidates.append((pid, files))

    def check(
        item: tuple[HubPatchId, dict[str, str]],
    ) -> tuple[HubPatchId, dict[str, str], list[Problem]]:
        pid, files = item
        kept: dict[str, str] = {}
        bad: list[Problem] = []
        for mod, path in files.items():
            series = MODALITIES[mod].dates
            n = (
                len(dates[series][str(pid)])
                if series in dates and str(pid) in dates[series]
                else None
            )
            why = _check_file(mod, path, n, check_size)
            if why is None:
                kept[mod] = path
            else:
                bad.append(Problem(path, why))
        return pid, kept, bad

    missing: dict[str, list[str]] = defaultdict(list)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = pool.map(check, candidates)
        for pid, kept, bad in each(progress, "patches", results, "patches", len(candidates)):
            index.problems.extend(bad)
            sid = str(pid)
            expect = declared.get(sid, set(index.modalities)) & set(index.modalities)
            for mod in sorted(expect - set(kept), key=list(MODALITIES).index):
                missing[mod].append(sid)
            split, source = splits.get(sid, ("", ""))
            series = {
                k: v[sid]
                for k, v in dates.items()
                if sid in v and any(MODALITIES[m].dates == k for m in kept)
            }
            index.records.append(
                HubRecord(sid, pid.domain, pid.area, pid.row, pid.col, split, source, kept, series)
            )
    on_disk = {r.patch_id for r in index.records}
    for sid, (split, source) in sorted(splits.items()):
        dom = sid.split("_", 1)[0]
        if sid not in on_disk and (not keep_domains or dom in keep_domains):
            for mod in sorted(declared.get(sid, set(index.modalities)) & set(index.modalities)):
                missing[mod].append(sid)
            index.problems.append(Problem(source, f"{sid} ({split}): no file of it in the release"))
    index.missing = {m: sorted(v) for m, v in sorted(missing.items())}

    index.shared_areas = _shared(index.records)
    for (a, b), areas in index.shared_areas.items():
        n_b = len({r.area for r in index.records if r.split == b})
        index.warnings.append(
            f"{len(areas)} of the {n_b} {b} areas also appear in {a} (same area, other "
            f"patches): {b} scores are optimistic; --area-disjoint takes them out of {a}"
        )
    if area_disjoint:
        index.records = _area_disjoint(index.records)
        index.shared_areas = _shared(index.records)
    unsplit = sum(1 for r in index.records if not r.split)
    if splits and unsplit:
        index.warnings.append(f"{unsplit} patch(es) are in no split of {index.split_origin}")
    index.records.sort(key=lambda r: (r.domain, r.area, r.row, r.col))
    index.problems.sort(key=lambda p: p.path)
    return index


def _area_disjoint(records: list[HubRecord]) -> list[HubRecord]:
    """Each area shared by splits stays only in its highest split (test > validation > train).

    Args:
        records: The indexed patches.

    Returns:
        The records kept, in their order.
    """
    best: dict[str, str] = {}
    for r in records:
        if r.split in _PRIORITY and (
            r.area not in best or _PRIORITY[r.split] < _PRIORITY[best[r.area]]
        ):
            best[r.area] = r.split
    out = []
    for r in records:
        if r.split in _PRIORITY and r.split != best[r.area]:
            r = HubRecord(
                r.patch_id,
                r.domain,
                r.area,
                r.row,
                r.col,
                "excluded",
                f"area-disjoint: {r.split} patch of an area in {best[r.area]}",
                r.paths,
                r.dates,
            )
        out.append(r)
    return out


FIELDS = (
    "patch_id",
    "domain",
    "area",
    "row",
    "col",
    "split",
    "split_source",
    *MODALITIES,
    *(f"dates_{k}" for k in DATES_FILES),
)


def write_hub_manifest(index: HubIndex, out_csv: str | Path) -> Path:
    """Write the index as a CSV, atomically: one row per patch, one column per modality.

    Args:
        index: from :func:`index_hub`.
        out_csv: the manifest to write.

    Returns:
        `out_csv`. Dates columns hold ``YYYYMMDD`` strings joined by ``;``; a modality the
        patch lacks is an empty cell.
    """
    with atomic_path(out_csv) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(FIELDS)
        for r in index.records:
            writer.writerow(
                [
                    r.patch_id,
                    r.domain,
                    r.area,
                    r.row,
                    r.col,
                    r.split,
                    r.split_source,
                    *(r.paths.get(m, "") for m in MODALITIES),
                    *(";".join(r.dates.get(k, ())) for k in DATES_FILES),
                ]
            )
    return Path(out_csv)


def read_hub_manifest(path: str | Path) -> list[HubRecord]:
    """Read a manifest written by :func:`write_hub_manifest` back into records.

    Args:
        path: the manifest CSV.

    Returns:
        The records, in file order.

    Raises:
        InputError: the file is not such a manifest.
    """
    with Path(path).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise InputError(f"{path}: not a FLAIR-HUB manifest (columns {reader.fieldnames})")
        return [
            HubRecord(
                row["patch_id"],
                row["domain"],
                row["area"],
                int(row["row"]),
                int(row["col"]),
                row["split"],
                row["split_source"],
                {m: row[m] for m in MODALITIES if row[m]},
                {k: tuple(row[f"dates_{k}"].split(";")) for k in DATES_FILES if row[f"dates_{k}"]},
            )
            for row in reader
        ]


def format_hub_report(index: HubIndex) -> str:
    """A human summary: counts per split, modalities, missing files, problems, warnings.

    Args:
        index: The index.

    Returns:
        Multi-line text.
    """
    counts: dict[str, int] = defaultdict(int)
    for r in index.records:
        counts[r.split or "(none)"] += 1
    lines = [
        f"{len(index.records)} patches in {len({r.area for r in index.records})} areas of "
        f"{len({r.domain for r in index.records})} domains; splits from "
        f"{index.split_origin or '(none found)'}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        f"modalities: {', '.join(index.modalities)}",
    ]
    for mod, ids in index.missing.items():
        lines.append(f"missing {mod}: {len(ids)} patch(es), e.g. {', '.join(ids[:3])}")
    for w in index.warnings:
        lines.append(f"warning: {w}")
    for p in index.problems[:20]:
        lines.append(f"problem: {p.path}: {p.reason}")
    if len(index.problems) > 20:
        lines.append(f"… and {len(index.problems) - 20} more problem(s)")
    return "\n".join(lines)
