"""Index an official FLAIR #1 / #2 release folder into a manifest (one row per patch).

Training on the official release should not depend on how a given download was unpacked,
so the folder is searched liberally: every ``IMG_<id>.tif`` and ``MSK_<id>.tif`` below the
release root, with domain and zone taken from the ``<domain>/<zone>/`` components of its
path and the release split from the folder above the domain (``flair_aerial_train``,
``flair_1_aerial_test``, ``flair_aerial_val`` …). Each IMG is paired with its MSK by patch
id and the pair is checked the way training will use it (bands, dtype, same grid, class
codes), so a bad file shows up here, in a report, rather than mid-epoch. One bad patch never
sinks the index (docs/architecture.md; as eo-learn does): it is listed as a :class:`Problem` and left out.

The side files of the release (:mod:`flair_release_extras`: Sentinel-2 super-areas, the
centroids and aerial-metadata JSONs, FLAIR #1's split CSVs) are joined to each patch; the
row says what the patch has (``has``), and a patch whose Sentinel-2 window leaves its
super-area, or whose metadata or centroid is missing, is reported and kept.

The split a row trains with (``split``) is, first, the official split file listing it;
else the release folder when it says test or validation; else FLAIR's domain split
(FLAIR #1 datapaper, Garioud et al. 2022) for a patch of a validation domain unpacked in a train folder, as FLAIR-2
ships its validation domains; else the folder's split; else FLAIR's domain split.
``split_source`` records which of these decided.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window

from flair_pipeline.domains import DomainId, ZoneId, official_split
from flair_pipeline.errors import DomainIdError, InputError
from flair_pipeline.geo.crs import normalize_crs
from flair_pipeline.geo.grid import grid_problem
from flair_pipeline.io import atomic_path
from flair_pipeline.progress import Progress, each
from flair_pipeline.sources.flair_release_extras import ReleaseExtras, find_extras

_FILE_RE = re.compile(r"^(IMG|MSK)_(\w+)\.tiff?$", re.IGNORECASE)
#: Grid tolerances: real files carry pixel sizes such as 0.19999999999981.
IMG_BANDS = 5
CODE_MIN, CODE_MAX = 1, 19
#: FLAIR-2's Sentinel-2 window (``sat_patch_size: 40`` in flair-2-config.yml), in S2 pixels.
SAT_WINDOW = 40


@dataclass(frozen=True)
class ManifestRow:
    """One patch of the release: where its files are and the grid facts training needs."""

    patch_id: str
    domain: str
    zone: str
    split: str  # the split training uses (see the module docstring)
    split_source: str  # what decided it: "file <relpath>", "folder" or "domain"
    folder_split: str  # the release's own split, from the folder name ("" if none)
    official_split: str  # FLAIR's split of the domain (FLAIR #1 datapaper, Garioud et al. 2022), "" if not a FLAIR domain
    img: str  # POSIX path relative to the release dir
    msk: str  # idem, "" when the release has no MSK for this patch
    width: int
    height: int
    img_bands: int
    crs: str
    x_centroid: float
    y_centroid: float
    img_path: str  # absolute, so a manifest can be used without knowing the release dir
    msk_path: str
    sen_prefix: str = ""  # absolute SEN2_sp_<domain>-<zone> prefix, "" without S2
    sp_row: int | None = None  # patch centre in the super-area (centroids JSON)
    sp_col: int | None = None
    metadata: str = ""  # the release's aerial-metadata entry as compact JSON, "" if none
    has: str = ""  # what the patch has: img msk sen2 centroid metadata (space-separated)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ManifestRow))


@dataclass(frozen=True)
class Problem:
    """A file that could not be indexed, or a pair that would mislead training."""

    path: str
    reason: str


@dataclass
class ReleaseIndex:
    """The indexed patches of one release folder and what was wrong with the rest."""

    release_dir: Path
    rows: list[ManifestRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    side_files: list[str] = field(default_factory=list)  # JSON/npy/CSV read, relative


@dataclass(frozen=True)
class _Found:
    kind: str  # "IMG" or "MSK"
    patch_id: str
    domain: str
    zone: str
    split: str
    rel: str


def normalise_crs(crs: CRS | None) -> str:
    """``EPSG:<n>`` where possible (the Lambert-93 LOCAL_CS quirk included), else the WKT.

    Args:
        crs: A file's CRS, or None.

    Returns:
        The CRS text; "" for None.
    """
    crs = normalize_crs(crs)
    if crs is None:
        return ""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else crs.to_wkt()


def release_split(folder: str) -> str:
    """The split a release folder name announces (``flair_1_aerial_test`` → test).

    Args:
        folder: A folder name of the release.

    Returns:
        ``train``, ``test``, ``validation``, or "" when it names none.
    """
    name = folder.lower()
    for key, split in (("train", "train"), ("test", "test"), ("val", "validation")):
        if key in name:
            return split
    return ""


def _locate(rel: PurePosixPath, root_name: str) -> tuple[str, str, str]:
    """Domain, zone and release split from a relative path.

    Args:
        rel: A patch file's path relative to the release root.
        root_name: The release folder's name (read for the split when the domain folder
            is at the top).

    Returns:
        (domain id, zone, split the folder above the domain announces, or "").

    Raises:
        DomainIdError: No folder of the path is a domain id followed by a zone.
    """
    parts = rel.parts[:-1]
    for i, part in enumerate(parts[:-1]):
        try:
            DomainId.parse(part)
            ZoneId.parse(parts[i + 1])
        except DomainIdError:
            continue
        return part, parts[i + 1], release_split(parts[i - 1] if i > 0 else root_name)
    raise DomainIdError("path lacks the <domain>/<zone>/ folders (e.g. D006_2020/Z1_UA/)")


def _official(domain: str) -> str:
    """FLAIR's split of a domain as plain text ("" outside FLAIR), for the CSV.

    Args:
        domain: Domain id.

    Returns:
        ``train``, ``validation``, ``test`` or "".
    """
    split = official_split(domain)
    return split.value if split is not None else ""


def _grid_problem(img: rasterio.DatasetReader, msk: rasterio.DatasetReader) -> str | None:
    """Why MSK does not sit on IMG's pixel grid, or None if it does.

    Args:
        img: The IMG, open.
        msk: The MSK, open.

    Returns:
        ``grid mismatch: MSK …``, or None.
    """
    problem = grid_problem(img, msk)
    return f"grid mismatch: MSK {problem}" if problem else None


def _check_pair(
    root: Path, img: _Found, msk: _Found | None
) -> tuple[ManifestRow | None, Problem | None]:
    """Validate one IMG (and its MSK); return the row (None if dropped) and any problem.

    Args:
        root: The release folder.
        img: The IMG found.
        msk: Its MSK, or None.

    Returns:
        (the manifest row or None, the problem or None).
    """
    try:
        src = rasterio.open(root / img.rel)
    except (RasterioError, OSError) as exc:
        return None, Problem(img.rel, f"unreadable IMG: {exc}")
    with src:
        if src.count != IMG_BANDS or set(src.dtypes) != {"uint8"}:
            return None, Problem(
                img.rel, f"expected {IMG_BANDS} uint8 bands, found {src.count} {src.dtypes}"
            )
        try:  # the last row lies at the end of most files: a cheap test for truncation
            src.read(window=Window(0, src.height - 1, src.width, 1))
        except (RasterioError, OSError) as exc:
            return None, Problem(img.rel, f"unreadable IMG pixels: {exc}")
        t: Affine = src.transform
        cx, cy = t @ (src.width / 2, src.height / 2)
        row = ManifestRow(  # centroids to the mm: the transforms carry 1e-8 m noise
            img.patch_id,
            img.domain,
            img.zone,
            img.split,
            "folder",
            img.split,
            _official(img.domain),
            img.rel,
            msk.rel if msk else "",
            src.width,
            src.height,
            src.count,
            normalise_crs(src.crs),
            round(cx, 3),
            round(cy, 3),
            (root / img.rel).as_posix(),
            (root / msk.rel).as_posix() if msk else "",
        )
        if msk is None:
            return row, Problem(img.rel, "no MSK for this IMG (kept without labels)")
        if (msk.domain, msk.zone) != (img.domain, img.zone):
            return None, Problem(
                msk.rel, f"MSK in {msk.domain}/{msk.zone}, IMG in {img.domain}/{img.zone}"
            )
        try:
            with rasterio.open(root / msk.rel) as m:
                if m.count != 1 or m.dtypes[0] != "uint8":
                    return None, Problem(
                        msk.rel, f"expected 1 uint8 band, found {m.count} {m.dtypes}"
                    )
                if (why := _grid_problem(src, m)) is not None:
                    return None, Problem(msk.rel, why)
                codes = np.unique(m.read(1))
        except (RasterioError, OSError) as exc:
            return None, Problem(msk.rel, f"unreadable MSK: {exc}")
        bad = codes[(codes < CODE_MIN) | (codes > CODE_MAX)]
        if bad.size:
            return None, Problem(
                msk.rel, f"MSK values outside {CODE_MIN}..{CODE_MAX}: {bad.tolist()}"
            )
        return row, None


def _final_split(row: ManifestRow, extras: ReleaseExtras) -> tuple[str, str]:
    """(split, split_source) by the precedence of the module docstring.

    Args:
        row: A manifest row.
        extras: The side files read (split files).

    Returns:
        (split, where it comes from: ``file …``, ``folder`` or ``domain``).
    """
    listed = extras.split_of.get(row.patch_id)
    if listed is not None:
        return listed[0], f"file {listed[1]}"
    if row.folder_split in ("test", "validation"):
        return row.folder_split, "folder"
    if row.folder_split == "train" and row.official_split == "validation":
        return "validation", "domain"
    if row.folder_split:
        return row.folder_split, "folder"
    return row.official_split, "domain" if row.official_split else "folder"


def _join_extras(
    row: ManifestRow, extras: ReleaseExtras, window: int
) -> tuple[ManifestRow, list[Problem]]:
    """The row with its split, S2 super-area, centroid and metadata; what is missing.

    Args:
        row: A manifest row.
        extras: The side files read.
        window: The Sentinel-2 window side, px at 10 m.

    Returns:
        The completed row and the problems met.
    """
    problems: list[Problem] = []
    split, source = _final_split(row, extras)
    has = ["img"] + (["msk"] if row.msk else [])
    changes: dict[str, object] = {"split": split, "split_source": source}
    meta = extras.metadata.get(row.patch_id)
    if meta is not None:
        changes["metadata"] = json.dumps(meta, sort_keys=True, separators=(",", ":"))
        has.append("metadata")
        where = (meta.get("domain"), meta.get("zone"))
        if where != (row.domain, row.zone):
            problems.append(
                Problem(
                    row.img,
                    f"metadata says {where[0]}/{where[1]}, path says "
                    f"{row.domain}/{row.zone} (path kept)",
                )
            )
    elif extras.metadata:
        problems.append(Problem(row.img, "no aerial-metadata entry (unet-meta encodes it unknown)"))
    area = extras.super_areas.get((row.domain, row.zone))
    rc = extras.centroids.get(row.patch_id)
    if rc is not None:
        changes.update(sp_row=rc[0], sp_col=rc[1])
        has.append("centroid")
    if area is not None and rc is None:
        problems.append(Problem(row.img, "no entry in the centroids JSON: no Sentinel-2 window"))
    elif area is not None and rc is not None:
        r0, c0 = rc[0] - window // 2, rc[1] - window // 2
        if r0 < 0 or c0 < 0 or r0 + window > area.height or c0 + window > area.width:
            problems.append(
                Problem(
                    row.img,
                    (
                        f"{window} px Sentinel-2 window at [row, col] {list(rc)} leaves the "
                        f"{area.height}×{area.width} super-area {area.prefix.name}: kept without S2"
                    ),
                )
            )
        else:
            changes["sen_prefix"] = area.prefix.as_posix()
            has.append("sen2")
    changes["has"] = " ".join(has)
    return dataclasses.replace(row, **changes), problems  # type: ignore[arg-type]


def index_release(
    release_dir: str | Path,
    *,
    workers: int = 8,
    progress: Progress | None = None,
    window: int = SAT_WINDOW,
    metadata: list[Path] | None = None,
    centroids: list[Path] | None = None,
    split_files: list[Path] | None = None,
) -> ReleaseIndex:
    """Index a release folder: pair and check every IMG/MSK, join the side files.

    Find, pair and check every IMG/MSK of a release folder (threads: rasterio drops the GIL),
    then join the side files (found below the folder, or given: `metadata`, `centroids`,
    `split_files`). `window` is the Sentinel-2 window side (px) checked against each
    super-area; `progress` counts the patches checked.

    Returns:
        The manifest rows, the problems (one per dropped file or missing side entry) and
        what the side files gave.

    Raises:
        InputError: The folder is missing or holds no IMG/MSK.
    """
    root = Path(release_dir).resolve()
    if not root.is_dir():
        raise InputError(f"FLAIR release folder {root} does not exist or is not a folder")
    index = ReleaseIndex(root)
    found: dict[str, dict[str, _Found]] = {"IMG": {}, "MSK": {}}
    paths = sorted(p for p in root.rglob("*") if _FILE_RE.match(p.name) and p.is_file())
    if not paths:
        raise InputError(f"no IMG_*.tif or MSK_*.tif files under {root}: is it a FLAIR release?")
    for path in paths:
        rel = PurePosixPath(path.relative_to(root).as_posix())
        kind, pid = _FILE_RE.match(path.name).groups()  # type: ignore[union-attr]
        kind = kind.upper()
        try:
            domain, zone, split = _locate(rel, root.name)
        except DomainIdError as exc:
            index.problems.append(Problem(str(rel), str(exc)))
            continue
        if pid in found[kind]:
            index.problems.append(
                Problem(str(rel), f"duplicate {kind} id, also {found[kind][pid].rel}")
            )
            continue
        found[kind][pid] = _Found(kind, pid, domain, zone, split, str(rel))
    for pid, msk in found["MSK"].items():
        if pid not in found["IMG"]:
            index.problems.append(Problem(msk.rel, "no IMG for this MSK"))
    imgs = list(found["IMG"].values())
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = pool.map(lambda f: _check_pair(root, f, found["MSK"].get(f.patch_id)), imgs)
        for row, problem in each(progress, "patches", results, "patches", len(imgs)):
            if row is not None:
                index.rows.append(row)
            if problem is not None:
                index.problems.append(problem)
    extras = find_extras(root, metadata=metadata, centroids=centroids, split_files=split_files)
    index.side_files = extras.files
    index.problems.extend(Problem(p, why) for p, why in extras.problems)
    joined = []
    for row in index.rows:
        new, problems = _join_extras(row, extras, window)
        joined.append(new)
        index.problems.extend(problems)
    index.rows = joined
    index.rows.sort(key=lambda r: (r.domain, r.zone, r.patch_id))
    index.problems.sort(key=lambda p: p.path)
    return index


def write_manifest(index: ReleaseIndex, out_csv: str | Path) -> Path:
    """Write the manifest CSV atomically, rows sorted by (domain, zone, patch_id).

    Args:
        index: The index.
        out_csv: The CSV written.

    Returns:
        `out_csv` as a Path.
    """
    rows = sorted(index.rows, key=lambda r: (r.domain, r.zone, r.patch_id))
    with atomic_path(out_csv) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(FIELDS)
        for r in rows:
            writer.writerow(_cell(v) for v in dataclasses.astuple(r))
    return Path(out_csv)


def _cell(v: object) -> object:
    """CSV text of a value: floats round-trip exactly (repr), None is empty.

    Args:
        v: A row's value.

    Returns:
        The value to write.
    """
    if v is None:
        return ""
    return repr(v) if isinstance(v, float) else v


def _opt_int(v: str) -> int | None:
    return int(v) if v.strip() else None


def read_manifest(csv_path: str | Path) -> list[ManifestRow]:
    """Read a manifest written by :func:`write_manifest`.

    Args:
        csv_path: The manifest CSV.

    Returns:
        Its rows, in file order.

    Raises:
        InputError: The file is missing or its columns are not a manifest's.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise InputError(f"manifest {path} does not exist")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise InputError(f"{path}: expected columns {list(FIELDS)}, found {reader.fieldnames}")
        # field annotations are strings here (``from __future__ import annotations``)
        types = {f.name: str(f.type) for f in dataclasses.fields(ManifestRow)}
        conv: dict[str, Callable[[str], object]] = {
            "int": int,
            "float": float,
            "str": str,
            "int | None": _opt_int,
        }
        try:
            return [ManifestRow(**{k: conv[types[k]](v) for k, v in rec.items()}) for rec in reader]  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: malformed manifest row ({exc})") from exc


def format_report(index: ReleaseIndex) -> str:
    """Counts per split and domain, then every problem: what a user reads after indexing.

    Args:
        index: The index.

    Returns:
        Multi-line text.
    """
    labelled = sum(1 for r in index.rows if r.msk)
    lines = [
        f"FLAIR release {index.release_dir}: {len(index.rows)} patches "
        f"({labelled} with MSK), {len(index.problems)} problem(s)"
    ]
    by_split: Counter[str] = Counter(r.split or "(no split)" for r in index.rows)
    by_domain: Counter[tuple[str, str]] = Counter(
        (r.split or "(no split)", r.domain) for r in index.rows
    )
    haves: Counter[str] = Counter(h for r in index.rows for h in r.has.split())
    lines.append(
        "  has: "
        + ", ".join(f"{k} {haves[k]}" for k in ("img", "msk", "sen2", "centroid", "metadata"))
    )
    if index.side_files:
        lines.append("  side files: " + ", ".join(index.side_files))
    for split, n in sorted(by_split.items()):
        lines.append(f"  {split}: {n} patches")
        lines.extend(f"    {d}: {k}" for (s, d), k in sorted(by_domain.items()) if s == split)
    if index.problems:
        lines.append("problems:")
        lines.extend(f"  {p.path}: {p.reason}" for p in index.problems)
    return "\n".join(lines)
