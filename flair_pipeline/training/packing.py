"""The packed training input: every split's IMG and MSK in uncompressed memory-mapped arrays.

Decoding one DEFLATE/ZSTD GeoTIFF pair per sample caps a loader worker at about a hundred
patches/s; an uncompressed ``.npy`` array read through ``numpy.memmap`` is a page-cache copy,
random access by any number of workers (each maps the file, nothing is pickled). The format
is NumPy's own ``.npy`` (NEP 1), so any Python with numpy reads it (the GPU bench does, without
rasterio); see docs/performance.md for the measurement that chose it over compressed formats.

Layout of ``<dataset>/packed`` (or ``<manifest stem>_packed`` beside a manifest CSV)::

    pack.json                 format version, per split: count, shapes, dtypes
    metadata_encoding.json    MetadataEncoding fitted on the train split (or why none)
    <split>/img.npy           N×C×H×W uint8, the IMG bands as written (R, G, B, NIR, elevation)
    <split>/msk.npy           N×H×W uint8, MSK merged to the 13 training classes (0..12)
    <split>/meta.npy          N×D float32, the metadata encoded with metadata_encoding.json
    <split>/index.json        one entry a patch, in record order: id, domain, zone, IMG/MSK
                              paths and byte sizes, aerial metadata, Sentinel-2 super-area
                              prefix and centroid (row, col), paths relative to the source

Packing is deterministic: records come in the source's order, arrays are written row by row,
JSON is written with sorted keys, and no time, host or absolute path goes into the files, so
two packs of the same source are byte-identical. A pack whose patch ids or IMG/MSK byte sizes
no longer match the source is stale: training then warns once and reads the GeoTIFFs.

A pack is written in ``.<name>.<host>-<pid>-<hex>.tmp/`` beside its folder and swapped in
(the previous pack moved aside to ``.<name>.<host>-<pid>-<hex>.old/`` for the two renames).
A ``kill -9`` leaves those folders behind (the uncompressed dataset, tens of GB at FLAIR
scale): the next pack of the same folder deletes every one whose owner process, on this
host, is dead (``os.kill(pid, 0)``) and names it in its report's warnings. Folders of live
packs and of other hosts are kept.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import rasterio

from flair_pipeline import layout as L
from flair_pipeline.errors import ConfigError, InputError
from flair_pipeline.layout import DatasetLayout, packed_file
from flair_pipeline.nomenclature import merge_to_13
from flair_pipeline.progress import Progress, Task, task
from flair_pipeline.reports import JSON, MetadataKind, StageReport
from flair_pipeline.training.records import SPLITS, PatchRecord, load_records

PACK_VERSION = 1
#: This host as written in the owner token of a pack's temp folders.
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def packed_root(source: str | Path) -> Path:
    """Where the pack of `source` lives: ``<dataset>/packed`` or ``<manifest>_packed``.

    Args:
        source: A dataset root or a manifest CSV.

    Returns:
        The pack folder (it may not exist).
    """
    p = Path(source)
    if p.suffix.lower() == ".csv":
        return p.with_name(f"{p.stem}_packed")
    return DatasetLayout(p).packed


def _base(source: str | Path) -> Path:
    p = Path(source)
    return p.parent if p.suffix.lower() == ".csv" else p


@dataclass(frozen=True)
class PackReport(StageReport):
    """What a pack holds: patches per split, bytes written, the folder."""

    metadata_kinds: ClassVar[Mapping[str, MetadataKind]] = {"path": "path"}

    root: Path
    counts: dict[str, int]
    bytes: int
    warnings: tuple[str, ...] = ()

    def as_metadata(self) -> dict[str, JSON]:
        """Patches per split (``<split>_patches``), bytes written and the pack folder.

        Returns:
            ``<split>_patches`` counts, ``bytes`` and ``path``.
        """
        return {
            **{f"{split}_patches": n for split, n in self.counts.items()},
            "bytes": self.bytes,
            "path": str(self.root),
        }


def pack_source(
    source: str | Path, out: str | Path | None = None, *, progress: Progress | None = None
) -> PackReport:
    """Pack every split of `source` (dataset root or manifest CSV) into `out`.

    Args:
        source: A dataset root or a manifest CSV.
        out: The pack folder; None for :func:`packed_root` of `source`.
        progress: Counts the patches packed (all splits).

    Returns:
        Patches per split, bytes written and the pack folder.

    Raises:
        InputError: `source` has no patch, or naming the file for an unreadable patch, a
            patch whose shape differs from the split's first, or a label code outside 1..19.
    """
    records = load_records(source)
    if not records:
        raise InputError(f"{source}: no patch to pack (materialize split_assignment first)")
    root = Path(out) if out is not None else packed_root(source)
    return pack_records(records, root, _base(source), progress=progress)


def pack_records(
    records: list[PatchRecord], root: Path, base: Path, *, progress: Progress | None = None
) -> PackReport:
    """Pack `records` (split by their ``split``) into `root`; index paths relative to `base`.

    First deletes the temp folders of packs of `root` killed earlier
    (:func:`reap_dead_pack_folders`); the report's warnings name them.

    Args:
        records: The patches, each with its split.
        root: The pack folder, replaced split by split.
        base: Folder the index's paths are relative to.
        progress: Counts the patches packed.

    Returns:
        Patches per split, bytes written and the pack folder.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    reaped = reap_dead_pack_folders(root)
    token = _owner_token()
    tmp = root.with_name(f".{root.name}.{token}.tmp")
    tmp.mkdir(mode=0o700)
    try:
        total = sum(r.split in SPLITS for r in records)
        with task(progress, root.name, total, "patches") as counter:
            counts = {}
            shapes: dict[str, Any] = {}
            encoding, encode = _metadata_encoding(records)
            _write_json(packed_file(L.PACK_META_ENCODING, tmp), encoding)
            for split in SPLITS:
                part = [r for r in records if r.split == split]
                if not part:
                    continue
                counts[split] = len(part)
                shapes[split] = _pack_split(
                    part, packed_file(L.PACKED_SPLIT, tmp, split=split), base, encode, counter
                )
            _write_json(packed_file(L.PACK_INFO, tmp), {"version": PACK_VERSION, "splits": shapes})
            _swap_into_place(tmp, root, root.with_name(f".{root.name}.{token}.old"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    notes = tuple(f"deleted {p}: left by a pack whose process {pid} is gone" for p, pid in reaped)
    return PackReport(root, counts, size, notes)


def _owner_token() -> str:
    return f"{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def reap_dead_pack_folders(root: Path) -> list[tuple[Path, int]]:
    """Delete the temp and set-aside folders of killed packs of `root`; return them.

    Args:
        root: A pack folder (``<dataset>/packed``); its siblings are searched.

    Returns:
        ``(folder, owner pid)`` of each ``.<name>.<host>-<pid>-<hex>.tmp`` or ``.old``
        folder of this host whose owner process no longer exists, now deleted. Folders of
        live processes and of other hosts are kept.
    """
    pattern = re.compile(
        rf"^\.{re.escape(root.name)}\.{re.escape(_HOST)}-(\d+)-[0-9a-f]{{8}}\.(tmp|old)$"
    )
    reaped: list[tuple[Path, int]] = []
    if not root.parent.is_dir():
        return reaped
    for p in sorted(root.parent.iterdir()):
        m = pattern.match(p.name)
        if m and p.is_dir() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)
            reaped.append((p, int(m.group(1))))
    return reaped


def _metadata_encoding(records: list[PatchRecord]) -> tuple[dict[str, Any], Any]:
    from flair_pipeline.models.metadata_mlp import MetadataEncoding

    train = [r.meta for r in records if r.split == "train"]
    try:
        enc = MetadataEncoding.fit(train)
    except ConfigError as exc:  # recorded, not silent: unet-meta then fits its own
        return {"encoding": None, "reason": str(exc)}, None
    return {"encoding": {"dim": enc.dim, **enc.to_dict()}}, enc.encode


def _pack_split(
    part: list[PatchRecord], folder: Path, base: Path, encode: Any, counter: Task
) -> dict[str, Any]:
    folder.mkdir(parents=True)
    first = _read(part[0].img)
    img = np.lib.format.open_memmap(
        folder / L.PACKED_IMG.relative_to(L.PACKED_SPLIT), "w+", np.uint8, (len(part), *first.shape)
    )
    has_msk = all(r.msk is not None for r in part)
    msk = (
        np.lib.format.open_memmap(
            folder / L.PACKED_MSK.relative_to(L.PACKED_SPLIT),
            "w+",
            np.uint8,
            (len(part), *first.shape[1:]),
        )
        if has_msk
        else None
    )
    index = []
    for i, rec in enumerate(part):
        arr = first if i == 0 else _read(rec.img)
        if arr.shape != first.shape or arr.dtype != np.uint8:
            raise InputError(
                f"{rec.img}: {arr.dtype} {arr.shape}, the split's first patch is uint8 "
                f"{first.shape}; a pack holds one patch shape (rebuild or drop the patch)"
            )
        img[i] = arr
        if msk is not None:
            assert rec.msk is not None
            codes = _read(rec.msk)[0]
            msk[i] = merge_to_13(codes, source=str(rec.msk), unlabelled_ok=True)
        index.append(_entry(rec, base))
        counter.advance()
    img.flush()
    del img
    if msk is not None:
        msk.flush()
        del msk
    if encode is not None:
        np.save(
            folder / L.PACKED_META.relative_to(L.PACKED_SPLIT),
            encode([r.meta for r in part]).numpy().astype(np.float32),
        )
    _write_json(folder / L.PACKED_INDEX.relative_to(L.PACKED_SPLIT), index)
    return {
        "count": len(part),
        "img": {"shape": [len(part), *first.shape], "dtype": "uint8"},
        "msk": {"shape": [len(part), *first.shape[1:]], "dtype": "uint8"} if has_msk else None,
    }


def _entry(rec: PatchRecord, base: Path) -> dict[str, Any]:
    def rel(p: Path | None) -> str | None:
        return None if p is None else os.path.relpath(p, base)

    return {
        "patch_id": rec.patch_id,
        "domain": rec.domain,
        "zone": rec.zone,
        "img": rel(rec.img),
        "img_bytes": rec.img.stat().st_size,
        "msk": rel(rec.msk),
        "msk_bytes": rec.msk.stat().st_size if rec.msk is not None else None,
        "meta": rec.meta,
        "sen_prefix": rel(rec.sen_prefix),
        "centroid": list(rec.centroid) if rec.centroid is not None else None,
    }


def _read(path: Path) -> np.ndarray:
    try:
        with rasterio.open(path) as src:
            data: np.ndarray = src.read()
            return data
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"{path}: unreadable patch while packing ({exc})") from exc


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, sort_keys=True, indent=1, default=str) + "\n")


def _swap_into_place(tmp: Path, root: Path, aside: Path) -> None:
    """Replace `root` by the finished `tmp` folder; a crash leaves the old or the new pack.

    The previous pack is moved to `aside` (this process's name) for the two renames.
    """
    old = None
    if root.exists():
        old = aside
        os.replace(root, old)
    os.replace(tmp, root)
    mode = 0o777 & ~_umask()
    root.chmod(mode)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@dataclass(frozen=True)
class PackedSplit:
    """One split of a pack checked against the source (read by ``PackedDataset``)."""

    folder: Path
    count: int


def open_packed(source: str | Path, split: str, records: list[PatchRecord]) -> PackedSplit | None:
    """The packed `split` of `source` if it exists and matches `records`, else None.

    A pack that is present but does not match (other patches, a patch rewritten since, a
    format version this code does not read) gives one warning naming the folder and what to
    run; training then reads the GeoTIFFs.

    Args:
        source: A dataset root or a manifest CSV.
        split: ``train``, ``validation`` or ``test``.
        records: The split's records, in training order.

    Returns:
        The checked split (its folder and patch count), or None.
    """
    folder = packed_file(L.PACKED_SPLIT, packed_root(source), split=split)
    index_f = folder / L.PACKED_INDEX.relative_to(L.PACKED_SPLIT)
    if not index_f.is_file():
        return None
    why = _stale(folder, index_f, records, _base(source))
    if why:
        warnings.warn(
            f"{folder}: packed input not used ({why}); reading the GeoTIFFs. Re-pack with "
            "`flair-pipeline materialize --select packed_training_input` (or `flair-pipeline "
            "pack SOURCE` for a manifest)",
            stacklevel=2,
        )
        return None
    return PackedSplit(folder, len(records))


def _stale(folder: Path, index_f: Path, records: list[PatchRecord], base: Path) -> str | None:
    try:
        version = json.loads(packed_file(L.PACK_INFO, folder.parent).read_text()).get("version")
        index = json.loads(index_f.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return f"unreadable pack.json or index.json ({exc})"
    if version != PACK_VERSION:
        return f"pack format version {version}, this code reads {PACK_VERSION}"
    if [e["patch_id"] for e in index] != [r.patch_id for r in records]:
        return f"{len(index)} packed patches differ from the {len(records)} of the source"
    for e, r in zip(index, records, strict=True):
        if e["img_bytes"] != _size(r.img) or e["msk_bytes"] != (
            _size(r.msk) if r.msk is not None else None
        ):
            return f"patch {r.patch_id} changed since packing ({r.img.name} or its MSK)"
        if e["centroid"] != (list(r.centroid) if r.centroid is not None else None):
            return f"patch {r.patch_id}: Sentinel-2 centroid changed since packing"
    if not (folder / L.PACKED_IMG.relative_to(L.PACKED_SPLIT)).is_file():
        return "img.npy missing"
    return None


def _size(p: Path) -> int | None:
    try:
        return p.stat().st_size
    except OSError:
        return None
