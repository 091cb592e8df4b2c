"""A domain's raw inputs: which files, complete or still arriving, and their fingerprint.

Two front doors need the same answer: the `domain_sources` asset (which records the
fingerprint as its data version) and the `new_domains_sensor` (which puts it in run keys,
so a domain is built again exactly when its inputs change). Both call this module, so they
can never disagree. It works on any fsspec filesystem: the sensor may watch ``s3://…`` or
``memory://…`` while assets read local paths.

Two tiers of cost: :func:`scan_domain` lists and stats the files (cheap: sizes, mtimes and
inodes, no reads), :func:`fingerprint` reads every byte (sha256). Callers compare the cheap
signature first and only hash when it moved.

A scan also tells a folder still being copied in (issue 29): what ``domain.yaml`` names
and is not there yet (``spec_missing``), the hidden temporary files a copy is writing
(``in_flight``: rsync's ``.<name>.XXXXXX``), a stat key of every file, hidden ones included
(``folder_key``: equal on two looks means nothing moved in between), and whether the
folder carries a ``READY`` file written after every other file (``marker``).
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import yaml
from fsspec.implementations.local import LocalFileSystem
from pydantic import ValidationError

from flair_pipeline.domains import is_domain_id
from flair_pipeline.geo.raster_vrt import is_raster_name
from flair_pipeline.layout import (
    RAW_DOMAIN,
    RAW_DOMAIN_JSON,
    RAW_DSM,
    RAW_DTM,
    RAW_LABELS,
    RawLayout,
)
from flair_pipeline.sources.domain_spec import DomainSpec
from flair_pipeline.storage import filesystem, folder_names, is_url

#: Inputs besides the orthophoto tiles, in fingerprint order (after the tiles).
REQUIRED_FILES = tuple(
    t.relative_to(RAW_DOMAIN) for t in (RAW_DSM, RAW_DTM, RAW_LABELS, RAW_DOMAIN_JSON)
)
#: A domain folder with this file names its inputs by role (sources/domain_spec.py); its
#: fingerprint covers every non-hidden file of the folder, whatever the globs pick.
SPEC_NAME = "domain.yaml"
#: Written (empty) into a domain folder once its copy is finished: the sensor then builds it
#: at its next tick instead of waiting one more tick to see the files settle. It counts only
#: if written after every other file of the folder (a READY copied in with the files is
#: ignored) and is never an input (not fingerprinted).
READY_NAME = "READY"
#: The temporary name rsync (and tools copying like it) writes a file under before renaming
#: it into place: ``.<name>.XXXXXX`` in the destination folder.
_COPY_TEMP = re.compile(r"^\..+\.[A-Za-z0-9]{6}$")


def open_root(root: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and in-filesystem path of a local folder or an fsspec URL.

    Args:
        root: A local folder or an fsspec URL (``s3://…``).

    Returns:
        (filesystem, path in it): S3 through the project's settings, else the local disk
        with an absolute path.
    """
    text = str(root)
    if is_url(text):
        return filesystem(text)  # the project's S3 settings (short timeouts, endpoint)
    return LocalFileSystem(), os.path.abspath(text)


@dataclass(frozen=True)
class DomainScan:
    """What a domain folder holds, from listings and stats only."""

    domain: str
    folder: str
    files: list[str] = field(default_factory=list)  # present inputs, fingerprint order
    missing: list[str] = field(default_factory=list)  # names relative to the folder
    signature: str = ""  # sha256 of (name, size, mtime, inode) of every present input
    nbytes: int = 0  # the inputs' total size: what a fingerprint reads
    spec_missing: list[str] = field(default_factory=list)  # what domain.yaml names, absent
    in_flight: list[str] = field(default_factory=list)  # copy temp files (.name.XXXXXX)
    folder_key: str = ""  # like `signature`, over every file, hidden ones included
    marker: bool = False  # READY present and written after every other file
    sizes: tuple[int, ...] = ()  # each of `files`' size in bytes, same order
    listing_fingerprint: str = ""  # from names, sizes, ETags (object stores); "": none

    @property
    def complete(self) -> bool:
        """True when no input the domain needs is missing."""
        return not self.missing

    @property
    def not_ready(self) -> list[str]:
        """Why a sensor must not build the folder now (missing inputs, copies in flight)."""
        return [
            *self.missing,
            *self.spec_missing,
            *(f"copy in progress: {n}" for n in self.in_flight),
        ]


def _mtime(info: dict[str, Any]) -> str:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        if info.get(key) is not None:
            value = info[key]
            return value.isoformat() if hasattr(value, "isoformat") else str(value)
    return ""


def _arrival(info: dict[str, Any]) -> float:
    """When a file arrived: its ctime on local disks, upload time on object stores.

    A copy keeps the source's mtime (rsync -a, cp -p) but not its ctime, so ctime tells
    the order in which files landed here; without either, the mtime.

    Args:
        info: An fsspec file info.

    Returns:
        Unix seconds; 0.0 when no field gives a time.
    """
    for key in ("created", "LastModified", "last_modified", "updated", "mtime"):
        value = info.get(key)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return 0.0


def _stat_key(entries: dict[str, dict[str, Any]], names: list[str]) -> str:
    """sha256 of (name, size, mtime, inode or ETag) of `names`: moves when any file does.

    Args:
        entries: Relative name -> fsspec file info.
        names: The files hashed, in order.

    Returns:
        The hex digest.
    """
    h = hashlib.sha256()
    for name in names:
        info = entries[name]
        ident = info.get("ino") or info.get("ETag") or info.get("etag") or ""
        h.update(f"{name}\0{info.get('size')}\0{_mtime(info)}\0{ident}\n".encode())
    return h.hexdigest()


def _hidden(name: str) -> bool:
    return any(part.startswith(".") for part in name.split("/"))


def _spec_missing(spec_text: str | None, names: list[str]) -> list[str]:
    """What a ``domain.yaml`` names that `names` (visible relative paths) do not hold yet.

    Each glob must match a file (as :func:`flair_pipeline.sources.domain_spec.match`: case
    ignored), a shapefile needs its ``.shx`` and ``.dbf``; a spec that cannot be read is
    reported as such (the build would refuse it).

    Args:
        spec_text: The ``domain.yaml`` text, or None without one.
        names: Relative paths of the visible files.

    Returns:
        One phrase per missing piece; empty when the spec is satisfied.
    """
    if spec_text is None:
        return []
    try:
        spec = DomainSpec.model_validate(yaml.safe_load(spec_text) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        first = str(exc).strip().splitlines()
        return [f"{SPEC_NAME} unreadable ({first[0] if first else type(exc).__name__})"]
    lower = {n.lower(): n for n in names}
    roles = [(f"ortho {o.name!r}", o.glob) for o in spec.ortho]
    roles += [("dsm", spec.dsm.glob), ("dtm", spec.dtm.glob), ("labels", spec.labels.glob)]
    if spec.labels.mapping:
        roles.append(("labels mapping", spec.labels.mapping))
    out = []
    for role, pattern in roles:
        pat = pattern.lower().lstrip("./")
        found = sorted(n for n in lower if fnmatch.fnmatchcase(n, pat))
        if not found:
            out.append(f"{role} {pattern!r} (no file yet)")
        elif role == "labels" and found[0].endswith(".shp"):
            stem = found[0][: -len(".shp")]
            out += [f"{stem}{ext}" for ext in (".shx", ".dbf") if f"{stem}{ext}" not in lower]
    return out


def _scan(
    domain: str, folder: str, entries: dict[str, dict[str, Any]], spec_text: str | None = None
) -> DomainScan:
    """A DomainScan from `entries`: relative name (under `folder`) -> fsspec file info.

    Args:
        domain: Domain id.
        folder: The domain folder, in the filesystem.
        entries: Relative name -> fsspec file info, every file under `folder`.
        spec_text: The content of the folder's ``domain.yaml``, when it has one.

    Returns:
        Present and missing inputs, their signature and size, copies in flight, the
        READY marker's state.
    """
    # Same selection as the Mosaic's (raster_vrt.raster_files): direct children of ortho/,
    # no hidden names, suffix .tif/.tiff/.jp2 in any case (``*.TIF`` tiles count too).
    tiles = sorted(
        n
        for n in entries
        if n.startswith("ortho/") and n.count("/") == 1 and is_raster_name(n.split("/", 1)[1])
    )
    visible = sorted(n for n in entries if not _hidden(n) and n != READY_NAME)
    spec_missing: list[str] = []
    if SPEC_NAME in entries:  # domain.yaml: its globs pick files anywhere in the folder
        present = visible
        missing: list[str] = []
        spec_missing = _spec_missing(spec_text, visible)
    else:
        missing = [] if tiles else ["ortho/*.tif"]
        missing += [n for n in REQUIRED_FILES if n not in entries]
        present = [*tiles, *(n for n in REQUIRED_FILES if n in entries)]
    everything = sorted(entries)
    in_flight = [n for n in everything if _COPY_TEMP.match(n.rsplit("/", 1)[-1])]
    marker = READY_NAME in entries and all(
        _arrival(entries[READY_NAME]) >= _arrival(info)
        for name, info in entries.items()
        if name != READY_NAME
    )
    sizes = tuple(int(entries[n].get("size") or 0) for n in present)
    return DomainScan(
        domain,
        folder,
        [f"{folder}/{n}" for n in present],
        missing,
        _stat_key(entries, present),
        sum(sizes),
        spec_missing,
        in_flight,
        _stat_key(entries, everything),
        marker,
        sizes,
        _listing_fingerprint(entries, present),
    )


#: Mixed into a listing fingerprint so it never equals a fingerprint of the bytes.
LISTING_KIND = "etag-v1"


def _listing_fingerprint(entries: dict[str, dict[str, Any]], names: list[str]) -> str:
    """sha256 of (name, size, ETag) of `names` when every one has an ETag, else "".

    An object store's ETag changes with the object's content (S3: the MD5 of a
    single-part upload, a digest of the parts' MD5s for a multipart one), so names, sizes
    and ETags fingerprint a URL raw root from one listing, without reading its bytes. The
    same content uploaded again with another part size gets another ETag: the domain is
    then rebuilt once, never missed. A local disk has no ETag ("": its bytes are hashed).

    Args:
        entries: Relative name -> fsspec file info.
        names: The inputs, in fingerprint order.

    Returns:
        The hex digest, or "" when a file has no ETag.
    """
    h = hashlib.sha256(f"{LISTING_KIND}\n".encode())
    for name in names:
        info = entries[name]
        etag = info.get("ETag") or info.get("etag")
        if not etag:
            return ""
        h.update(f"{name}\0{info.get('size')}\0{str(etag).strip(chr(34))}\n".encode())
    return h.hexdigest()


def content_fingerprint(
    fs: fsspec.AbstractFileSystem, scan: DomainScan, deadline: float | None = None
) -> tuple[str | None, int]:
    """The fingerprint of a scanned domain: from its listing on an object store, else its bytes.

    The sensor's run keys and the ``domain_sources`` record both take this, so they agree
    for local and URL raw roots alike.

    Args:
        fs: The filesystem of the raw root.
        scan: The domain's scan (:func:`scan_domain`).
        deadline: As in :func:`fingerprint_until` (bytes hashed only).

    Returns:
        (hex digest or None when the deadline passed first, bytes read: 0 from a listing).
    """
    if scan.listing_fingerprint:
        return scan.listing_fingerprint, 0
    return fingerprint_until(fs, scan.files, scan.folder, deadline)


def fingerprint_kind(scan: DomainScan) -> str:
    """How :func:`content_fingerprint` fingerprints `scan`, in words (for the metadata).

    Args:
        scan: The domain's scan.

    Returns:
        ``"listing (names, sizes, ETags)"`` or ``"sha256 of the bytes"``.
    """
    return "listing (names, sizes, ETags)" if scan.listing_fingerprint else "sha256 of the bytes"


#: domain.yaml texts read, by (protocol, path, stat key): a sensor looking at hundreds of
#: spec domains every minute (one GET each on object stores) reads a spec again only when
#: its stats move.
_SPECS: dict[tuple[str, str, str], str] = {}


def _read_spec(fs: fsspec.AbstractFileSystem, folder: str, entries: dict[str, Any]) -> str | None:
    """The text of the folder's domain.yaml, when it has one ("" when it cannot be read).

    Args:
        fs: The filesystem.
        folder: The domain folder.
        entries: Its files' infos (the spec's stat keys a cache).

    Returns:
        The text, "" when unreadable, None without a ``domain.yaml``.
    """
    if SPEC_NAME not in entries:
        return None
    path = f"{folder}/{SPEC_NAME}"
    key = (str(fs.protocol), path, _stat_key(entries, [SPEC_NAME]))
    if key in _SPECS:
        return _SPECS[key]
    try:
        text = str(fs.cat_file(path).decode("utf-8", errors="replace"))
    except OSError:  # renamed away between the listing and the read
        return ""
    if len(_SPECS) > 4096:
        _SPECS.clear()
    _SPECS[key] = text
    return text


def _files_under(fs: fsspec.AbstractFileSystem, folder: str) -> dict[str, dict[str, Any]]:
    if not fs.isdir(folder):
        return {}
    found = fs.find(folder, detail=True)
    return {
        relative(str(name), folder): info
        for name, info in found.items()
        if info.get("type") == "file"
    }


def scan_domain(fs: fsspec.AbstractFileSystem, raw_root: str, domain: str) -> DomainScan:
    """List and stat a domain's inputs (ortho/*.tif, dsm.tif, dtm.tif, labels.gpkg, domain.json).

    A folder with a ``domain.yaml`` (see :mod:`flair_pipeline.sources.domain_spec`) is
    complete as soon as the spec is there (its globs are checked when it is built), and
    every non-hidden file under it is an input.

    Missing pieces are reported, never raised: a folder still being copied is normal for a
    sensor, and the caller decides whether that is an error.

    Args:
        fs: The filesystem of the raw root.
        raw_root: The raw root, in `fs`.
        domain: Domain id.

    Returns:
        The scan of ``<raw>/domains/<domain>``.
    """
    folder = str(RawLayout(PurePosixPath(raw_root)).domain(domain))  # type: ignore[arg-type]
    entries = _files_under(fs, folder)
    return _scan(domain, folder, entries, _read_spec(fs, folder, entries))


def scan_domains(
    fs: fsspec.AbstractFileSystem, raw_root: str
) -> tuple[dict[str, DomainScan], list[str]]:
    """Every folder under ``<raw>/domains``: scans of domain ids, and the other names.

    One recursive listing for all domains (one paginated request series on object
    stores rather than several per domain), so a sensor watching hundreds of domains
    stays cheap. Other names are returned, not dropped, so callers can tell the user why
    a folder they copied in is not being built.

    Args:
        fs: The filesystem of the raw root.
        raw_root: The raw root, in `fs`.

    Returns:
        (domain id -> scan, the other folder names); empty without ``<raw>/domains``.
    """
    root = f"{raw_root.rstrip('/')}/domains"
    if not fs.isdir(root):
        return {}, []
    names = folder_names(fs, root)
    per_folder: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in names}
    for rel, info in _files_under(fs, root).items():
        head, _, rest = rel.partition("/")
        if rest:
            per_folder.setdefault(head, {})[rest] = info
    scans = {
        n: _scan(n, f"{root}/{n}", entries, _read_spec(fs, f"{root}/{n}", entries))
        for n, entries in sorted(per_folder.items())
        if is_domain_id(n)
    }
    others = sorted(n for n in per_folder if not is_domain_id(n) and not n.startswith("."))
    return scans, others


def relative(path: str, folder: str) -> str:
    """`path` relative to `folder` ("ortho/a.tif"), whatever leading "/" the fs adds.

    Args:
        path: A path the filesystem listed.
        folder: A folder above it.

    Returns:
        The relative POSIX path.

    Raises:
        ValueError: `path` is not under `folder`.
    """
    p, f = path.strip("/"), folder.strip("/") + "/"
    if not p.startswith(f):
        raise ValueError(f"{path} is not inside {folder}")
    return p[len(f) :]


def fingerprint(fs: fsspec.AbstractFileSystem, files: list[str], folder: str) -> str:
    """sha256 over relative names and contents: changes iff an input changes.

    Relative names make it independent of where the raw root is mounted, so a domain
    moved to another disk or bucket keeps its fingerprint (and is not rebuilt).

    Args:
        fs: The filesystem holding `files`.
        files: The inputs, in fingerprint order (:attr:`DomainScan.files`).
        folder: The domain folder the names are taken relative to.

    Returns:
        The hex digest (64 characters).
    """
    digest, _ = fingerprint_until(fs, files, folder, None)
    assert digest is not None  # no deadline: always finishes
    return digest


def fingerprint_until(
    fs: fsspec.AbstractFileSystem, files: list[str], folder: str, deadline: float | None
) -> tuple[str | None, int]:
    """:func:`fingerprint`, given up when ``time.monotonic()`` passes `deadline`.

    Args:
        fs: The filesystem holding `files`.
        files: The inputs, in fingerprint order.
        folder: The domain folder the names are taken relative to.
        deadline: A ``time.monotonic()`` value, checked after every MiB read; None: none.

    Returns:
        The hex digest, or None when the deadline passed first; and the bytes read.
    """
    h = hashlib.sha256()
    read = 0
    for f in files:
        h.update(relative(f, folder).encode())
        with fs.open(f, "rb") as fh:
            for chunk in iter(functools.partial(fh.read, 1 << 20), b""):
                h.update(chunk)
                read += len(chunk)
                if deadline is not None and time.monotonic() > deadline:
                    return None, read
    return h.hexdigest(), read
