"""The side files of an official FLAIR release: Sentinel-2 super-areas, JSONs, split lists.

FLAIR-2 (IGNF/FLAIR-2 ``src/load_data.py``, ``flair-2-config.yml``) ships, besides the
aerial IMG and MSK patches:

* per zone, in ``flair_sen_{train,test}/<domain>/<zone>/sen/``, the Sentinel-2
  super-area ``SEN2_sp_<domain>-<zone>_data.npy`` (T×10×H×W uint16 reflectance),
  ``_masks.npy`` (T×2×H×W uint8 snow/cloud probability 0–100) and ``_products.txt`` (one
  ESA product name per line, the official reader takes the date at characters 15–18);
* ``flair-2_centroids_sp_to_patch.json``: ``{"IMG_<id>.tif": [row, col]}``, the patch
  centre in the super-area's pixel grid;
* ``flair-2_aerial_metadata.json``: ``{"IMG_<id>": {domain, zone, patch_centroid_x/y/z,
  camera, date "YYYY-MM-DD", time "HHhMM"}}`` (no ``.tif`` in these keys; FLAIR #1's
  ``flair-one_metadata.json`` has the same format).

FLAIR #1 publishes its split as headerless two-column CSVs of relative IMG and MSK paths
(``flair-1-paths-{train,val,test}.csv``, IGNF/FLAIR-1-AI-Challenge ``csv_full/``) whose
prefixes differ from file to file, so patches are matched by the IMG file name only.

Everything here reports problems as ``(path, reason)`` pairs and never raises on one bad
side file: a release with a broken Sentinel-2 zone still trains the aerial baselines.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: ``SEN2_sp_<domain>-<zone>_data.npy`` (IGNF/FLAIR-2 ``load_data.py``: domain and zone
#: joined by a hyphen).
SEN_RE = re.compile(r"^SEN2_sp_(D\d{3}_\d{4})-(Z\d+_[A-Z]{2})_data\.npy$")
_IMG_IN_CSV = re.compile(r"IMG_(\w+)\.tiff?$", re.IGNORECASE)
S2_BANDS = 10


@dataclass(frozen=True)
class SuperArea:
    """One zone's Sentinel-2 series: where it is and its shape (T dates, H×W pixels)."""

    prefix: Path  # absolute, without the _data.npy suffix
    dates: int
    height: int
    width: int


@dataclass
class ReleaseExtras:
    """What the side files of a release say, keyed the way the index looks them up."""

    super_areas: dict[tuple[str, str], SuperArea] = field(default_factory=dict)
    centroids: dict[str, tuple[int, int]] = field(default_factory=dict)  # patch id → row, col
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)  # patch id → entry
    split_of: dict[str, tuple[str, str]] = field(default_factory=dict)  # id → (split, file)
    files: list[str] = field(default_factory=list)  # side files read, relative to the root
    problems: list[tuple[str, str]] = field(default_factory=list)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _npy_shape(path: Path) -> tuple[int, ...]:
    """The array shape from the .npy header (memory-mapped: no pixel is read).

    Args:
        path: A ``.npy`` file.

    Returns:
        Its shape.
    """
    return tuple(np.load(path, mmap_mode="r").shape)


def find_super_areas(root: Path, extras: ReleaseExtras) -> None:
    """Every ``SEN2_sp_*_data.npy`` below `root`, checked against its masks and products."""
    for data_f in sorted(root.rglob("SEN2_sp_*_data.npy")):
        rel = _rel(data_f, root)
        m = SEN_RE.match(data_f.name)
        if m is None:
            extras.problems.append((rel, "not named SEN2_sp_<domain>-<zone>_data.npy; ignored"))
            continue
        key = (m.group(1), m.group(2))
        prefix = data_f.with_name(data_f.name.removesuffix("_data.npy"))
        masks_f = Path(f"{prefix}_masks.npy")
        products_f = Path(f"{prefix}_products.txt")
        try:
            shape = _npy_shape(data_f)
            mshape = _npy_shape(masks_f)
            products = products_f.read_text().split()
        except (OSError, ValueError) as exc:
            extras.problems.append(
                (rel, f"Sentinel-2 series unreadable ({exc}); zone left without S2")
            )
            continue
        why = None
        if len(shape) != 4 or shape[1] != S2_BANDS:
            why = f"data shape {shape}, expected T×{S2_BANDS}×H×W"
        elif mshape != (shape[0], 2, shape[2], shape[3]):
            why = f"masks shape {mshape}, expected {(shape[0], 2, shape[2], shape[3])}"
        elif len(products) != shape[0]:
            why = f"{len(products)} products in {products_f.name} for {shape[0]} dates"
        if why is not None:
            extras.problems.append((rel, f"{why}; zone left without S2"))
            continue
        if key in extras.super_areas:
            other = _rel(extras.super_areas[key].prefix, root)
            extras.problems.append((rel, f"second super-area for {key[0]}/{key[1]}, kept {other}"))
            continue
        extras.super_areas[key] = SuperArea(prefix, shape[0], shape[2], shape[3])
        extras.files.append(rel)


def _load_json(path: Path, root: Path, extras: ReleaseExtras) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        extras.problems.append((_rel(path, root), f"not readable JSON ({exc}); ignored"))
        return None
    if not isinstance(data, dict):
        extras.problems.append((_rel(path, root), "JSON is not an object keyed by IMG; ignored"))
        return None
    extras.files.append(_rel(path, root))
    return data


def _patch_key(key: str) -> str:
    """``IMG_000717.tif`` and ``IMG_000717`` → ``000717`` (the two JSONs differ here).

    Args:
        key: A key of a FLAIR JSON.

    Returns:
        The bare patch number.
    """
    return key.removeprefix("IMG_").removesuffix(".tif")


def read_centroids(path: Path, root: Path, extras: ReleaseExtras) -> None:
    """``{"IMG_<id>.tif": [row, col]}`` into ``extras.centroids``."""
    data = _load_json(path, root, extras)
    bad = 0
    for key, value in (data or {}).items():
        try:
            row, col = (int(v) for v in value)
        except (TypeError, ValueError):
            bad += 1
            continue
        extras.centroids[_patch_key(key)] = (row, col)
    if bad:
        extras.problems.append((_rel(path, root), f"{bad} entries are not [row, col]; ignored"))


def read_metadata(path: Path, root: Path, extras: ReleaseExtras) -> None:
    """``{"IMG_<id>": {...}}`` into ``extras.metadata``, entries kept verbatim."""
    data = _load_json(path, root, extras)
    bad = 0
    for key, value in (data or {}).items():
        if not isinstance(value, dict):
            bad += 1
            continue
        extras.metadata[_patch_key(key)] = value
    if bad:
        extras.problems.append((_rel(path, root), f"{bad} entries are not objects; ignored"))


def split_of_file(name: str) -> str:
    """The split a split file's name announces (``flair-1-paths-toy-val.csv`` → validation).

    Args:
        name: File name of a FLAIR #1 split file.

    Returns:
        ``train``, ``test``, ``validation``, or "" when the name announces none.
    """
    stem = name.lower()
    for key, split in (("train", "train"), ("test", "test"), ("val", "validation")):
        if re.search(rf"(^|[-_.]){key}", stem):
            return split
    return ""


def read_split_csv(path: Path, root: Path, extras: ReleaseExtras) -> None:
    """A FLAIR #1 split file: headerless rows ``<img path>,<msk path>``, matched by IMG id."""
    rel = _rel(path, root)
    split = split_of_file(path.name)
    if not split:
        extras.problems.append((rel, "split file name names no train/val/test split; ignored"))
        return
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        extras.problems.append((rel, f"unreadable split file ({exc}); ignored"))
        return
    ids = [m.group(1) for r in rows if r and (m := _IMG_IN_CSV.search(r[0].strip()))]
    if not ids:
        extras.problems.append((rel, "no IMG_<id>.tif path in the first column; not a split file"))
        return
    for pid in ids:
        prior = extras.split_of.get(pid)
        if prior is not None and prior[0] != split:
            extras.problems.append((rel, f"IMG_{pid} also in {prior[1]} ({prior[0]}); kept that"))
            continue
        extras.split_of.setdefault(pid, (split, rel))
    extras.files.append(rel)


def find_extras(
    root: Path,
    *,
    metadata: list[Path] | None = None,
    centroids: list[Path] | None = None,
    split_files: list[Path] | None = None,
) -> ReleaseExtras:
    """Read the side files found below `root`, plus any given explicitly.

    Found by name: ``*centroids*.json``, ``*metadata*.json`` and ``*paths*.csv`` (FLAIR #1's
    split files, which ship in the challenge repository, not the data archive: pass them).

    Args:
        root: The release folder.
        metadata: Aerial metadata JSONs outside `root`.
        centroids: Super-area centroid JSONs outside `root`.
        split_files: FLAIR #1 split CSVs.

    Returns:
        Super-areas, metadata, centroids and splits read, with the problems met (one
        line per file).
    """
    extras = ReleaseExtras()
    find_super_areas(root, extras)
    jsons = list(root.rglob("*.json"))  # one walk for both names (a release has ~200k files)
    found_c = [p for p in jsons if "centroid" in p.name.lower()]
    found_m = [p for p in jsons if "metadata" in p.name.lower()]
    found_s = [p for p in root.rglob("*.csv") if "paths" in p.name.lower()]
    for p in sorted(set(found_c) | set(centroids or [])):
        read_centroids(p, root, extras)
    for p in sorted(set(found_m) - set(found_c) | set(metadata or [])):
        read_metadata(p, root, extras)
    for p in sorted(set(found_s) | set(split_files or [])):
        read_split_csv(p, root, extras)
    return extras
