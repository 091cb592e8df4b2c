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
Every file is written through a temporary name (docs/operations.md), with umask-following modes,
into a fresh folder swapped in whole (:mod:`~flair_pipeline.release.export_folder`).

A patch without a Sentinel-2 series (its zone's partition failed) refuses the export in
one line naming the patches, because FLAIR-2's loader cannot read it (:data:`LOADER_NOTE`);
``allow_missing_sentinel2`` leaves such patches out instead, recorded in ``flair-export.json``
and in the STAC collection.
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
from flair_pipeline.progress import Progress, task
from flair_pipeline.release.export_folder import RECORD, staged
from flair_pipeline.release.flair_stac import write_stac
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
    """What :func:`export_release` wrote.

    The folder, patches exported, zones with S2, files, and the patches left out for
    want of a Sentinel-2 series (``IMG_<id>.tif``; only with ``allow_missing_sentinel2``).
    """

    out: Path
    patches: int
    zones_with_s2: int
    files: int
    excluded: tuple[str, ...] = ()


#: What FLAIR-2's loader does with a patch without a Sentinel-2 window, and so the export.
LOADER_NOTE = (
    "IGNF/FLAIR-2's loader (src/load_data.py) looks up every IMG it finds in "
    "flair-2_centroids_sp_to_patch.json (KeyError when absent) and repeats its zone's "
    "SEN2 files once per IMG (the lists misalign when a zone has none), so a patch "
    "without a Sentinel-2 series cannot be in the release: it is left out (IMG, MSK, "
    "metadata and split lists), and the loader reads the other patches as usual"
)


class MissingSentinel2Error(InputError):
    """Patches without a Sentinel-2 series, refused by :func:`export_release`."""

    def __init__(self, message: str, patches: list[str]) -> None:
        super().__init__(message)
        self.patches = patches


def release_time(value: object) -> str:
    """``11:28:00`` / ``11:28`` / ``11h28`` → ``11h28`` (the release's format); "" stays "".

    Args:
        value: A time as our metadata or a release writes it, or empty.

    Returns:
        ``HHhMM``, or "".

    Raises:
        InputError: Not ``HH:MM[:SS]`` nor ``HHhMM`` with a valid hour and minute.
    """
    text = str(value or "")
    if not text.strip():
        return ""
    m = _TIME.match(text)
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise InputError(f"aerial metadata time {text!r} is not HH:MM or HHhMM")
    return f"{int(m.group(1)):02d}h{m.group(2)}"


def release_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """One aerial-metadata entry in the release's fields and formats.

    Args:
        meta: Our aerial-metadata entry of the patch.

    Returns:
        The ``METADATA_KEYS`` fields ("" when absent), time as ``HHhMM``.
    """
    out = {k: meta.get(k, "") for k in METADATA_KEYS}
    out["time"] = release_time(meta.get("time"))
    return out


def check_products(products_txt: Path) -> list[str]:
    """The product names of a series, each an ESA name whose characters 11–18 are its date.

    Args:
        products_txt: A zone's ``_products.txt``.

    Returns:
        The names, in file order.

    Raises:
        InputError: A name is not an ESA product name with a date, naming the file.
    """
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


def has_sentinel2(rec: PatchRecord) -> bool:
    """Whether a patch has a Sentinel-2 window: a centroid entry and its zone's three files.

    Args:
        rec: A patch record.

    Returns:
        True when the centroid is known and ``_data.npy``, ``_masks.npy`` and
        ``_products.txt`` exist.
    """
    if rec.centroid is None or rec.sen_prefix is None:
        return False
    parts = ("_data.npy", "_masks.npy", "_products.txt")
    return all(Path(f"{rec.sen_prefix}{p}").is_file() for p in parts)


def _refusal(root: str | Path, missing: list[PatchRecord], total: int) -> MissingSentinel2Error:
    names = [f"IMG_{r.patch_id}.tif" for r in missing]
    zones = sorted({f"{r.domain}/{r.zone}" for r in missing})
    domains = sorted({r.domain for r in missing})
    shown = ", ".join(names[:20]) + (f" … and {len(names) - 20} more" if len(names) > 20 else "")
    return MissingSentinel2Error(
        f"{root}: {len(names)} of {total} patches have no Sentinel-2 series (zone(s) "
        f"{', '.join(zones)}: no SEN2_sp_ files or no centroid entry), and FLAIR-2's loader "
        "fails on such a patch (KeyError in flair-2_centroids_sp_to_patch.json): "
        f"rematerialize sentinel2_series for {', '.join(domains)} and sentinel2_index, or "
        f"pass --allow-missing-sentinel2 to leave them out of the export; patches: {shown}",
        names,
    )


def export_release(
    dataset_root: str | Path,
    out_dir: str | Path,
    allow_missing_sentinel2: bool = False,
    stac: bool = False,
    *,
    progress: Progress | None = None,
) -> ExportReport:
    """Write the dataset at `dataset_root` as a FLAIR-2 release folder `out_dir`.

    The export is written into a fresh folder beside `out_dir`, marked incomplete while
    it is written, and swapped in whole on success
    (:mod:`~flair_pipeline.release.export_folder`): nothing of an earlier export survives
    that is no longer in the release. Its record :data:`~flair_pipeline.release.
    export_folder.RECORD` says what was exported and what was left out.

    Args:
        dataset_root: A dataset built here (needs ``splits.csv`` and
            ``aerial_metadata.json``).
        out_dir: The release folder: created, or replaced if it is an earlier export.
        allow_missing_sentinel2: Leave out the patches without a Sentinel-2 series
            (:data:`LOADER_NOTE`) instead of refusing the export.
        stac: Also write ``stac/`` and the QGIS style into the export.
        progress: Where to show the count of patches copied, or None.

    Returns:
        The :class:`ExportReport`.

    Raises:
        MissingSentinel2Error: Patches without a Sentinel-2 series, unless allowed.
        InputError: Nothing to export, a missing file, a malformed time, a non-ESA
            product name, or an `out_dir` that is not an export of ours.
    """  # noqa: DOC501 (_refusal() builds the MissingSentinel2Error named above)
    records = from_dataset(dataset_root)
    if not records:
        raise InputError(f"{dataset_root}: no assigned patches to export")
    missing = [r for r in records if not has_sentinel2(r)]
    if missing and not allow_missing_sentinel2:
        raise _refusal(dataset_root, missing, len(records))
    kept = [r for r in records if has_sentinel2(r)]
    if not kept:
        raise InputError(f"{dataset_root}: no patch has a Sentinel-2 series, nothing to export")
    out = Path(out_dir)
    excluded = tuple(f"IMG_{r.patch_id}.tif" for r in missing)
    with staged(out) as stage:
        patches, zones, files = _write(kept, stage, progress)
        record = {
            "source": str(Path(dataset_root)),
            "patches": patches,
            "zones_with_sentinel2": zones,
            "allow_missing_sentinel2": allow_missing_sentinel2,
            "excluded_without_sentinel2": list(excluded),
            "flair2_loader": LOADER_NOTE if excluded else "",
        }
        _write_text(stage / RECORD, json.dumps(record, indent=1) + "\n", 0o666 & ~_umask())
        if stac:
            write_stac(stage, name=out.name)
    return ExportReport(out, patches, zones, files + 1, excluded)


def _write(
    records: list[PatchRecord], out: Path, progress: Progress | None = None
) -> tuple[int, int, int]:
    """Write `records` in the FLAIR-2 layout under `out`; (patches, zones, files).

    Args:
        records: The patches exported.
        out: The staging release folder.
        progress: Counts the patches copied.

    Returns:
        (patches, zones, files) written.
    """
    mode = 0o666 & ~_umask()
    centroids: dict[str, list[int]] = {}
    metadata: dict[str, dict[str, Any]] = {}
    lines: dict[str, list[str]] = defaultdict(list)
    zones: dict[tuple[str, str], tuple[Path, str]] = {}
    files = 0
    with task(progress, "patches", len(records), "patches") as counter:
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
            # has_sentinel2(rec): every record here has a centroid and a series
            assert rec.centroid is not None and rec.sen_prefix is not None
            centroids[f"IMG_{rec.patch_id}.tif"] = [int(rec.centroid[0]), int(rec.centroid[1])]
            zones[(rec.domain, rec.zone)] = (rec.sen_prefix, sen)
            lines[str(rec.split)].append(f"{img.as_posix()},{msk.as_posix() if rec.msk else ''}")
            counter.advance()
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
    return len(records), len(zones), files + 2
