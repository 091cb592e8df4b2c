"""Index an official FLAIR #1 / #2 release folder into a manifest (one row per patch).

Training on the official release should not depend on how a given download was unpacked,
so the folder is searched liberally: every ``IMG_<id>.tif`` and ``MSK_<id>.tif`` below the
release root, with domain and zone taken from the ``<domain>/<zone>/`` components of its
path and the release split from the folder above the domain (``flair_aerial_train``,
``flair_1_aerial_test``, ``flair_aerial_val`` …). Each IMG is paired with its MSK by patch
id and the pair is checked the way training will use it (bands, dtype, same grid, class
codes), so a bad file shows up here, in a report, rather than mid-epoch. One bad patch never
sinks the index (DESIGN §7, eo-learn): it is listed as a :class:`Problem` and left out.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window
from tqdm import tqdm

from flair_pipeline.dataset.rasterize import grid_problem, normalize_crs
from flair_pipeline.domains import DomainId, ZoneId, official_split
from flair_pipeline.errors import DomainIdError, InputError
from flair_pipeline.io import atomic_path

_FILE_RE = re.compile(r"^(IMG|MSK)_(\w+)\.tiff?$", re.IGNORECASE)
#: Grid tolerances: real files carry pixel sizes such as 0.19999999999981.
IMG_BANDS = 5
CODE_MIN, CODE_MAX = 1, 19


@dataclass(frozen=True)
class ManifestRow:
    """One patch of the release: where its files are and the grid facts training needs."""

    patch_id: str
    domain: str
    zone: str
    split: str  # the release's own split, from the folder name ("" if none)
    official_split: str  # FLAIR's split of the domain (DESIGN §5), "" if not a FLAIR domain
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


@dataclass(frozen=True)
class _Found:
    kind: str  # "IMG" or "MSK"
    patch_id: str
    domain: str
    zone: str
    split: str
    rel: str


def normalise_crs(crs: CRS | None) -> str:
    """``EPSG:<n>`` where possible (the Lambert-93 LOCAL_CS quirk included), else the WKT."""
    crs = normalize_crs(crs)
    if crs is None:
        return ""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else crs.to_wkt()


def release_split(folder: str) -> str:
    """The split a release folder name announces (``flair_1_aerial_test`` → test)."""
    name = folder.lower()
    for key, split in (("train", "train"), ("test", "test"), ("val", "validation")):
        if key in name:
            return split
    return ""


def _locate(rel: PurePosixPath, root_name: str) -> tuple[str, str, str]:
    """Domain, zone and release split from a relative path; DomainIdError if they are absent."""
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
    """FLAIR's split of a domain as plain text ("" outside FLAIR), for the CSV."""
    split = official_split(domain)
    return split.value if split is not None else ""


def _grid_problem(img: rasterio.DatasetReader, msk: rasterio.DatasetReader) -> str | None:
    """Why MSK does not sit on IMG's pixel grid, or None if it does."""
    problem = grid_problem(img, msk)
    return f"grid mismatch: MSK {problem}" if problem else None


def _check_pair(
    root: Path, img: _Found, msk: _Found | None
) -> tuple[ManifestRow | None, Problem | None]:
    """Validate one IMG (and its MSK); return the row (None if dropped) and any problem."""
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
            img.patch_id, img.domain, img.zone, img.split,
            _official(img.domain), img.rel, msk.rel if msk else "",
            src.width, src.height, src.count, normalise_crs(src.crs), round(cx, 3), round(cy, 3),
            (root / img.rel).as_posix(), (root / msk.rel).as_posix() if msk else "",
        )  # fmt: skip
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


def index_release(
    release_dir: str | Path, *, workers: int = 8, progress: bool = False
) -> ReleaseIndex:
    """Find, pair and check every IMG/MSK of a release folder (threads: rasterio drops the GIL)."""
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
        for row, problem in tqdm(results, total=len(imgs), disable=not progress, desc="index"):
            if row is not None:
                index.rows.append(row)
            if problem is not None:
                index.problems.append(problem)
    index.rows.sort(key=lambda r: (r.domain, r.zone, r.patch_id))
    index.problems.sort(key=lambda p: p.path)
    return index


def write_manifest(index: ReleaseIndex, out_csv: str | Path) -> Path:
    """Write the manifest CSV atomically, rows sorted by (domain, zone, patch_id)."""
    rows = sorted(index.rows, key=lambda r: (r.domain, r.zone, r.patch_id))
    with atomic_path(out_csv) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(FIELDS)
        for r in rows:
            writer.writerow(repr(v) if isinstance(v, float) else v for v in dataclasses.astuple(r))
    return Path(out_csv)


def read_manifest(csv_path: str | Path) -> list[ManifestRow]:
    """Read a manifest written by :func:`write_manifest`; InputError if it is not one."""
    path = Path(csv_path)
    if not path.is_file():
        raise InputError(f"manifest {path} does not exist")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != FIELDS:
            raise InputError(f"{path}: expected columns {list(FIELDS)}, found {reader.fieldnames}")
        types = {f.name: f.type for f in dataclasses.fields(ManifestRow)}
        conv = {"int": int, "float": float, "str": str}
        try:
            return [ManifestRow(**{k: conv[types[k]](v) for k, v in rec.items()}) for rec in reader]  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: malformed manifest row ({exc})") from exc


def format_report(index: ReleaseIndex) -> str:
    """Counts per split and domain, then every problem: what a user reads after indexing."""
    labelled = sum(1 for r in index.rows if r.msk)
    lines = [
        f"FLAIR release {index.release_dir}: {len(index.rows)} patches "
        f"({labelled} with MSK), {len(index.problems)} problem(s)"
    ]
    by_split: Counter[str] = Counter(r.split or "(no split)" for r in index.rows)
    by_domain: Counter[tuple[str, str]] = Counter(
        (r.split or "(no split)", r.domain) for r in index.rows
    )
    for split, n in sorted(by_split.items()):
        lines.append(f"  {split}: {n} patches")
        lines.extend(f"    {d}: {k}" for (s, d), k in sorted(by_domain.items()) if s == split)
    if index.problems:
        lines.append("problems:")
        lines.extend(f"  {p.path}: {p.reason}" for p in index.problems)
    return "\n".join(lines)
