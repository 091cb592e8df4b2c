"""Which patches a training run sees: one record per patch, from our dataset or a manifest.

Two sources give the same records: a dataset built by this pipeline (docs/data-format.md: the
release layout plus ``metadata/splits.csv``, ``aerial_metadata.json`` and
``centroids_sp_to_patch.json``) and a manifest CSV written by ``flair-pipeline
import-flair`` for the official release. Everything downstream (datasets, statistics,
evaluation) works on records, so it never needs to know where the files came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flair_pipeline.dataset.splits import read_splits
from flair_pipeline.errors import InputError
from flair_pipeline.layout import DatasetLayout, img_name, patch_id_of
from flair_pipeline.sources.flair_release import read_manifest

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class PatchRecord:
    """One patch: its files, its split and what the optional inputs need."""

    patch_id: str
    domain: str
    zone: str
    split: str
    img: Path
    msk: Path | None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    sen_prefix: Path | None = None  # SEN2_sp_<domain>-<zone> without the _data.npy suffix
    centroid: tuple[int, int] | None = None  # row, col in the zone's super-area


def from_dataset(root: str | Path) -> list[PatchRecord]:
    """Records of a dataset built by this pipeline, in (domain, zone, id) order.

    Needs ``splits.csv`` and ``aerial_metadata.json`` (written by ``split_assignment``);
    the Sentinel-2 centroid index is optional (U-T&T checks for it).

    Args:
        root: The dataset root.

    Returns:
        One record per ``aerial_metadata.json`` entry of a domain listed in ``splits.csv``.

    Raises:
        InputError: ``splits.csv`` or ``aerial_metadata.json`` is missing or unreadable,
            naming it and the asset to materialize.
    """
    layout = DatasetLayout(Path(root))
    for need in (layout.splits, layout.aerial_metadata):
        if not need.is_file():
            raise InputError(
                f"{need}: missing; materialize split_assignment (flair-pipeline materialize "
                "--select split_assignment) before training"
            )
    splits = read_splits(layout.splits)
    meta = _load_json(layout.aerial_metadata)
    centroids = _load_json(layout.centroids) if layout.centroids.is_file() else {}
    records = []
    for key, m in sorted(meta.items(), key=lambda kv: (kv[1]["domain"], kv[1]["zone"], kv[0])):
        patch_id = patch_id_of(key)
        domain, zone = m["domain"], m["zone"]
        if domain not in splits:
            continue  # built but not assigned: not part of this dataset version
        rc = centroids.get(img_name(patch_id))
        records.append(
            PatchRecord(
                patch_id=patch_id,
                domain=domain,
                zone=zone,
                split=splits[domain],
                img=layout.img(domain, zone, patch_id),
                msk=layout.msk(domain, zone, patch_id),
                meta=m,
                sen_prefix=layout.sen_prefix(domain, zone),
                centroid=(int(rc[0]), int(rc[1])) if rc is not None else None,
            )
        )
    return records


def from_manifest(path: str | Path) -> list[PatchRecord]:
    """Records of an official FLAIR release indexed by ``import-flair``.

    The split is the manifest's ``split`` (official split file, else folder, else FLAIR's
    domain split: see :mod:`flair_pipeline.sources.flair_release`). The metadata is the
    release's own aerial-metadata entry, verbatim, as our dataset's ``aerial_metadata.json``
    gives it (the encoder reads ``08h06`` and ``08:06`` alike); without one, only the
    location is known. The Sentinel-2 prefix and centroid are set only where the import
    found the window inside the super-area.

    Args:
        path: The manifest CSV written by ``import-flair``.

    Returns:
        One record per manifest row, in file order.
    """
    records = []
    for row in read_manifest(path):
        meta = json.loads(row.metadata) if row.metadata else {}
        if not meta:
            meta = {
                "domain": row.domain,
                "zone": row.zone,
                "patch_centroid_x": row.x_centroid,
                "patch_centroid_y": row.y_centroid,
            }
        with_s2 = row.sen_prefix and row.sp_row is not None and row.sp_col is not None
        records.append(
            PatchRecord(
                patch_id=row.patch_id,
                domain=row.domain,
                zone=row.zone,
                split=row.split,
                img=Path(row.img_path),
                msk=Path(row.msk_path) if row.msk_path else None,
                meta=meta,
                sen_prefix=Path(row.sen_prefix) if with_s2 else None,
                centroid=(row.sp_row, row.sp_col) if with_s2 else None,  # type: ignore[arg-type]
            )
        )
    return records


def load_records(source: str | Path) -> list[PatchRecord]:
    """From a dataset root (a folder) or a manifest (a ``.csv`` file).

    Args:
        source: A dataset root or a manifest CSV.

    Returns:
        The records, see :func:`from_dataset` and :func:`from_manifest`.

    Raises:
        InputError: `source` is neither a folder nor a ``.csv`` file (or see the readers).
    """
    p = Path(source)
    if p.suffix.lower() == ".csv":
        return from_manifest(p)
    if not p.is_dir():
        raise InputError(f"{p}: neither a dataset folder nor a manifest CSV")
    return from_dataset(p)


def by_split(records: list[PatchRecord], split: str) -> list[PatchRecord]:
    """The records of `split` (``train``, ``validation`` or ``test``), in their order.

    Args:
        records: Any records.
        split: The split kept.

    Returns:
        The records of that split.
    """
    return [r for r in records if r.split == split]


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not readable JSON ({exc})") from exc
