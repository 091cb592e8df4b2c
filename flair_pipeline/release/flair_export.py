"""Write a dataset built here in the FLAIR-2 release layout, readable by FLAIR's own code.

The layout and formats are those IGNF/FLAIR-2's loader expects (``flair-2-config.yml``,
``src/load_data.py``, ``src/dataset.py``; https://github.com/IGNF/FLAIR-2)::

    RELEASE_DIR/
      flair_aerial_train/<domain>/<zone>/img/IMG_<id>.tif      train AND validation domains,
      flair_labels_train/<domain>/<zone>/msk/MSK_<id>.tif      as the release ships them
      flair_sen_train/<domain>/<zone>/sen/SEN2_sp_<domain>-<zone>_{data,masks}.npy, _products.txt
      flair_2_aerial_test/ flair_2_labels_test/ flair_2_sen_test/   (same inside)
      flair-2_centroids_sp_to_patch.json   {"IMG_<id>.tif": [row, col]}
      flair-2_aerial_metadata.json         {"IMG_<id>": {..., "date": "YYYY-MM-DD", "time": "HHhMM"}}
      flair-2-paths-{train,val,test}.csv   headerless "<img>,<msk>" relative paths (FLAIR #1 style)

FLAIR's loader reads a product's date at characters 15–18 of each ``_products.txt`` line
(``file[15:19]`` as MMDD), which holds for ESA names ``S2A_MSIL2A_YYYYMMDDT…``: a product
name of another shape cannot be exported silently and raises :class:`InputError`.
Our aerial metadata writes ``time`` as ``HH:MM[:SS]``; the release writes ``HHhMM``.
Every file is written through a temporary name (DESIGN §6), with umask-following modes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flair_pipeline.errors import InputError
from flair_pipeline.io import atomic_path
from flair_pipeline.sentinel2.series import product_date
from flair_pipeline.training.records import PatchRecord, from_dataset

#: Top folders per release part (train also holds the validation domains).
FOLDERS = {
    "train": ("flair_aerial_train", "flair_labels_train", "flair_sen_train"),
    "test": ("flair_2_aerial_test", "flair_2_labels_test", "flair_2_sen_test"),
}
CENTROIDS_JSON = "flair-2_centroids_sp_to_patch.json"
METADATA_JSON = "flair-2_aerial_metadata.json"
SPLIT_CSV = {
    "train": "flair-2-paths-train.csv",
    "validation": "flair-2-paths-val.csv",
    "test": "flair-2-paths-test.csv",
}
_ESA = re.compile(r"^S2[A-D]_MSI(L1C|L2A)_(\d{8})T\d{6}_")
_TIME = re.compile(r"^\s*(\d{1,2})\s*[hH:]\s*(\d{2})")
METADATA_KEYS = (
    "domain",
    "zone",
    "patch_centroid_x",
    "patch_centroid_y",
    "patch_centroid_z",
    "date",
    "time",
    "camera",
)


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_release` wrote: the folder, patches, zones with S2, files."""

    out: Path
    patches: int
    zones_with_s2: int
    files: int


def release_time(value: object) -> str:
    """``11:28:00`` / ``11:28`` / ``11h28`` → ``11h28`` (the release's format); "" stays ""."""
    text = str(value or "")
    if not text.strip():
        return ""
    m = _TIME.match(text)
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise InputError(f"aerial metadata time {text!r} is not HH:MM or HHhMM")
    return f"{int(m.group(1)):02d}h{m.group(2)}"


def release_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """One aerial-metadata entry in the release's fields and formats."""
    out = {k: meta.get(k, "") for k in METADATA_KEYS}
    out["time"] = release_time(meta.get("time"))
    return out


def check_products(products_txt: Path) -> list[str]:
    """The product names of a series, each an ESA name whose characters 11–18 are its date."""
    names = products_txt.read_text().split()
    for name in names:
        m = _ESA.match(name)
        if m is None or product_date(name) is None:
            raise InputError(
                f"{products_txt}: product {name!r} is not an ESA name (S2x_MSIL2A_YYYYMMDDT…); "
                "FLAIR's loader reads the date at characters 15-18, so it cannot be exported"
            )
    return names


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _copy(src: Path, dst: Path, mode: int) -> None:
    if not src.is_file():
        raise InputError(f"{src}: missing; rebuild the dataset before exporting it")
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
        tmp.chmod(mode)


def _write_text(dst: Path, text: str, mode: int) -> None:
    with atomic_path(dst) as tmp:
        tmp.write_text(text)
        tmp.chmod(mode)


def _part(rec: PatchRecord) -> str:
    return "test" if str(rec.split) == "test" else "train"


def export_release(dataset_root: str | Path, out_dir: str | Path) -> ExportReport:
    """Write the dataset at `dataset_root` into `out_dir` in the FLAIR-2 layout.

    Write the dataset at `dataset_root` (needs ``splits.csv`` and ``aerial_metadata.json``)
    into `out_dir` in the FLAIR-2 layout above. Patches without a Sentinel-2 window get no
    centroid entry (as in the release, where every patch has one: the report counts them).
    Raises InputError on a missing file, a malformed time or a non-ESA product name.
    """
    records = from_dataset(dataset_root)
    if not records:
        raise InputError(f"{dataset_root}: no assigned patches to export")
    out = Path(out_dir)
    mode = 0o666 & ~_umask()
    centroids: dict[str, list[int]] = {}
    metadata: dict[str, dict[str, Any]] = {}
    lines: dict[str, list[str]] = defaultdict(list)
    zones: dict[tuple[str, str], tuple[Path, str]] = {}
    files = 0
    for rec in records:
        aerial, labels, sen = FOLDERS[_part(rec)]
        img = Path(aerial, rec.domain, rec.zone, "img", f"IMG_{rec.patch_id}.tif")
        msk = Path(labels, rec.domain, rec.zone, "msk", f"MSK_{rec.patch_id}.tif")
        _copy(rec.img, out / img, mode)
        files += 1
        if rec.msk is not None:
            _copy(rec.msk, out / msk, mode)
            files += 1
        metadata[f"IMG_{rec.patch_id}"] = release_metadata(rec.meta)
        if rec.centroid is not None and rec.sen_prefix is not None:
            centroids[f"IMG_{rec.patch_id}.tif"] = [int(rec.centroid[0]), int(rec.centroid[1])]
            zones[(rec.domain, rec.zone)] = (rec.sen_prefix, sen)
        lines[str(rec.split)].append(f"{img.as_posix()},{msk.as_posix() if rec.msk else ''}")
    for (domain, zone), (prefix, sen) in sorted(zones.items()):
        dst = out / sen / domain / zone / "sen" / prefix.name
        names = check_products(Path(f"{prefix}_products.txt"))
        for suffix in ("_data.npy", "_masks.npy"):
            _copy(Path(f"{prefix}{suffix}"), Path(f"{dst}{suffix}"), mode)
        _write_text(Path(f"{dst}_products.txt"), "".join(f"{n}\n" for n in names), mode)
        files += 3
    _write_text(out / CENTROIDS_JSON, json.dumps(centroids, sort_keys=True) + "\n", mode)
    _write_text(out / METADATA_JSON, json.dumps(metadata, indent=4, sort_keys=True) + "\n", mode)
    for split, name in SPLIT_CSV.items():
        if lines.get(split):
            _write_text(out / name, "".join(f"{line}\n" for line in sorted(lines[split])), mode)
            files += 1
    return ExportReport(out, len(records), len(zones), files + 2)
