"""A domain's raw inputs: which files, are they complete, and their fingerprint.

Two front doors need the same answer: the `domain_sources` asset (which records the
fingerprint as its data version) and the `new_domains_sensor` (which puts it in run keys,
so a domain is built again exactly when its inputs change). Both call this module, so they
can never disagree. It works on any fsspec filesystem: the sensor may watch ``s3://…`` or
``memory://…`` while assets read local paths.

Two tiers of cost: :func:`scan_domain` lists and stats the files (cheap: sizes and mtimes,
no reads), :func:`fingerprint` reads every byte (sha256). Callers compare the cheap
signature first and only hash when it moved.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

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
from flair_pipeline.storage import filesystem, folder_names, is_url

#: Inputs besides the orthophoto tiles, in fingerprint order (after the tiles).
REQUIRED_FILES = tuple(
    t.relative_to(RAW_DOMAIN) for t in (RAW_DSM, RAW_DTM, RAW_LABELS, RAW_DOMAIN_JSON)
)
#: A domain folder with this file names its inputs by role (sources/domain_spec.py); its
#: fingerprint covers every non-hidden file of the folder, whatever the globs pick.
SPEC_NAME = "domain.yaml"


def open_root(root: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and in-filesystem path of a local folder or an fsspec URL."""
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
    signature: str = ""  # sha256 of (name, size, mtime) of every present input

    @property
    def complete(self) -> bool:
        """True when no input the domain needs is missing."""
        return not self.missing


def _mtime(info: dict[str, Any]) -> str:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        if info.get(key) is not None:
            value = info[key]
            return value.isoformat() if hasattr(value, "isoformat") else str(value)
    return ""


def _scan(domain: str, folder: str, entries: dict[str, dict[str, Any]]) -> DomainScan:
    """A DomainScan from `entries`: relative name (under `folder`) -> fsspec file info."""
    # Same selection as the Mosaic's (raster_vrt.raster_files): direct children of ortho/,
    # no hidden names, suffix .tif/.tiff/.jp2 in any case (``*.TIF`` tiles count too).
    tiles = sorted(
        n
        for n in entries
        if n.startswith("ortho/") and n.count("/") == 1 and is_raster_name(n.split("/", 1)[1])
    )
    if SPEC_NAME in entries:  # domain.yaml: its globs pick files anywhere in the folder
        present = sorted(
            n for n in entries if not any(part.startswith(".") for part in n.split("/"))
        )
        missing: list[str] = []
    else:
        missing = [] if tiles else ["ortho/*.tif"]
        missing += [n for n in REQUIRED_FILES if n not in entries]
        present = [*tiles, *(n for n in REQUIRED_FILES if n in entries)]
    h = hashlib.sha256()
    for name in present:
        info = entries[name]
        h.update(f"{name}\0{info.get('size')}\0{_mtime(info)}\n".encode())
    files = [f"{folder}/{n}" for n in present]
    return DomainScan(domain, folder, files, missing, h.hexdigest())


def _files_under(fs: fsspec.AbstractFileSystem, folder: str) -> dict[str, dict[str, Any]]:
    if not fs.isdir(folder):
        return {}
    found = fs.find(folder, detail=True)
    return {
        _relative(str(name), folder): info
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
    """
    folder = str(RawLayout(PurePosixPath(raw_root)).domain(domain))  # type: ignore[arg-type]
    return _scan(domain, folder, _files_under(fs, folder))


def scan_domains(
    fs: fsspec.AbstractFileSystem, raw_root: str
) -> tuple[dict[str, DomainScan], list[str]]:
    """Every folder under ``<raw>/domains``: scans of domain ids, and the other names.

    One recursive listing for all domains (one paginated request series on object
    stores rather than several per domain), so a sensor watching hundreds of domains
    stays cheap. Other names are returned, not dropped, so callers can tell the user why
    a folder they copied in is not being built.
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
        n: _scan(n, f"{root}/{n}", entries)
        for n, entries in sorted(per_folder.items())
        if is_domain_id(n)
    }
    others = sorted(n for n in per_folder if not is_domain_id(n) and not n.startswith("."))
    return scans, others


def _relative(path: str, folder: str) -> str:
    """`path` relative to `folder` ("ortho/a.tif"), whatever leading "/" the fs adds."""
    p, f = path.strip("/"), folder.strip("/") + "/"
    if not p.startswith(f):
        raise ValueError(f"{path} is not inside {folder}")
    return p[len(f) :]


def fingerprint(fs: fsspec.AbstractFileSystem, files: list[str], folder: str) -> str:
    """sha256 over relative names and contents: changes iff an input changes.

    Relative names make it independent of where the raw root is mounted, so a domain
    moved to another disk or bucket keeps its fingerprint (and is not rebuilt).
    """
    h = hashlib.sha256()
    for f in files:
        h.update(_relative(f, folder).encode())
        with fs.open(f, "rb") as fh:
            for chunk in iter(functools.partial(fh.read, 1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
