"""Data roots on object storage: any fsspec URL (``s3://…``, ``gs://…``, ``memory://…``).

Why staging rather than reading and writing through fsspec everywhere: the core library
works on local paths (rasterio windows, GeoPackages through OGR, atomic renames), and a
rename does not exist on S3. So a step that works on URL roots (:func:`flair_pipeline.defs.staging.staged`)

1. *pulls* what it reads (its domain's raw inputs, the dataset files it depends on) into a
   private local staging folder,
2. runs the unchanged core code on that folder, and
3. on success only, *publishes* every file it created or changed to the dataset root.

Publishing is atomic per file: on object stores (S3, GCS, Azure, memory) a PUT creates the
object whole or not at all, and files are only published once completely written and the
step has succeeded, so readers never see a half-written IMG/MSK. Other fsspec backends
(sftp, local ``file://``) get a temporary name and a move. Data files go first and
``metadata/`` last, so whoever sees a domain's metadata also sees its patches.

S3 settings come from the standard environment: ``AWS_ENDPOINT_URL`` (MinIO, Ceph, a
local server), ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``.
Timeouts are short so that an unreachable endpoint fails in seconds, with its address.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

import fsspec
from fsspec import AbstractFileSystem

from flair_pipeline.errors import FlairPipelineError, InputError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
#: Backends where one PUT writes a whole object atomically (no temp name needed).
ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"}
#: Short S3 timeouts: an unreachable endpoint must fail in seconds, not after minutes.
S3_CONFIG = {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 2}}


class StorageError(FlairPipelineError):
    """An object store that cannot be reached or read (names the URL and the endpoint)."""


def is_url(root: str | Path) -> bool:
    """True for ``scheme://…`` roots (handled by fsspec), False for local paths.

    Args:
        root: A root of the config.

    Returns:
        Whether it is a URL (a Path never is).
    """
    return isinstance(root, str) and bool(_URL.match(root))


#: GDAL's virtual file systems for the URL schemes raw inputs are read from in place.
GDAL_PREFIXES = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/", "s3a": "/vsis3/"}


def is_remote(location: str | Path) -> bool:
    """True for a location GDAL reads in place over the network (no local copy).

    Args:
        location: A path, a URL (``https://``, ``s3://``) or a GDAL VSI path
            (``/vsicurl/…``, ``/vsis3/…``).

    Returns:
        Whether it is an ``http(s)://`` or ``s3://`` URL or a ``/vsicurl/`` or ``/vsis3/``
        path (a Path never is: it would have collapsed the URL's ``//``).
    """
    if not isinstance(location, str):
        return False
    if location.startswith(("/vsicurl/", "/vsis3/")):
        return True
    return is_url(location) and location.split("://", 1)[0].lower() in GDAL_PREFIXES


def gdal_path(location: str) -> str:
    """The path GDAL opens to read `location` in place, fetching only the bytes it reads.

    Args:
        location: An ``http(s)://`` or ``s3://`` URL, or already a GDAL VSI path.

    Returns:
        ``/vsicurl/<url>`` for http(s), ``/vsis3/<bucket>/<key>`` for s3, else `location`.
    """
    if is_url(location):
        scheme, rest = location.split("://", 1)
        prefix = GDAL_PREFIXES.get(scheme.lower())
        if prefix == "/vsicurl/":
            return prefix + location
        if prefix is not None:
            return prefix + rest
    return location


def gdal_options() -> dict[str, str]:
    """GDAL options for in-place reads: the S3 endpoint of the environment, no listings.

    ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (the same variables as fsspec's
    ``s3://`` roots, :func:`filesystem`) become GDAL's ``AWS_S3_ENDPOINT`` (path-style,
    HTTPS unless the URL says http); the keys are GDAL's own ``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY``. GDAL never lists a remote folder on open (no sidecars looked
    for: a request each), and retries a transient 5xx.

    Returns:
        Options for :class:`rasterio.Env`.
    """
    options = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GDAL_HTTP_MAX_RETRY": "3",
        "GDAL_HTTP_RETRY_DELAY": "1",
    }
    found = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if found:
        scheme, _, host = found.partition("://")
        options.update(
            AWS_S3_ENDPOINT=host.rstrip("/") if host else scheme,
            AWS_HTTPS="NO" if scheme.lower() == "http" else "YES",
            AWS_VIRTUAL_HOSTING="FALSE",
        )
    return options


@contextlib.contextmanager
def vector_env() -> Iterator[None]:
    """:func:`gdal_options` set in pyogrio's GDAL for the block, then the old values back.

    pyogrio ships its own GDAL, which :class:`rasterio.Env` does not reach: a label layer
    read in place (``/vsicurl/``, ``/vsis3/``) needs the options set there.

    Yields:
        Nothing; pyogrio reads in the block see the options.
    """
    import pyogrio  # here, not at import: most users of storage never read vectors

    options = gdal_options()
    before = {k: pyogrio.get_gdal_config_option(k) for k in options}
    pyogrio.set_gdal_config_options(options)
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(before)


@contextlib.contextmanager
def vector_location(path: str | Path) -> Iterator[str | Path]:
    """`path` as OGR opens it, with GDAL's in-place options set for a URL.

    Args:
        path: A local vector file, or an ``s3://`` / ``https://`` URL (or GDAL VSI path).

    Yields:
        The local path unchanged, or the URL's GDAL VSI path with :func:`gdal_options`
        set in rasterio's and pyogrio's GDAL for the block (:func:`vector_env`).
    """
    if not is_remote(path):
        yield path
        return
    import rasterio  # here, not at import: the storage layer needs no GDAL otherwise

    with rasterio.Env(**gdal_options()), vector_env():
        yield gdal_path(str(path))


def gdal_env(locations: Iterable[str | Path]) -> contextlib.AbstractContextManager[object]:
    """:func:`gdal_options` as a :class:`rasterio.Env` when any of `locations` is remote.

    GDAL's options are per thread (``rasterio.Env``): a reader of remote tiles wraps each
    open and read in this block; a local read gets no Env at all (nothing changes).

    Args:
        locations: The files read in the block (paths, URLs, GDAL VSI paths).

    Returns:
        A context manager: ``rasterio.Env(**gdal_options())``, or a no-op one.
    """
    if not any(is_remote(p) for p in locations):
        return contextlib.nullcontext()
    import rasterio  # here, not at import: the storage layer needs no GDAL otherwise

    env: contextlib.AbstractContextManager[object] = rasterio.Env(**gdal_options())
    return env


def remote_files(url: str) -> list[tuple[str, int, str]]:
    """The files directly in the folder `url` (one listing), for in-place reads.

    Args:
        url: A folder URL (``s3://bucket/raw/domains/D/ortho``, any fsspec URL).

    Returns:
        (name, size in bytes, version) sorted by name, where version is the object's ETag,
        else its modification time, else "" (what the store reports, never the bytes).

    Raises:
        StorageError: The listing failed (unreachable endpoint, denied access, …).
    """
    fs, root = filesystem(url)
    with _reported(fs, url, "listing"):
        if not fs.isdir(root):
            return []
        entries = fs.ls(root, detail=True)
    out = []
    for e in entries:
        if e.get("type") != "file":
            continue
        version = e.get("ETag") or e.get("etag") or e.get("LastModified") or e.get("mtime") or ""
        out.append(
            (PurePosixPath(str(e["name"])).name, int(e.get("size") or 0), str(version).strip('"'))
        )
    return sorted(out)


def remote_tree(url: str) -> list[tuple[str, int, str]]:
    """Every file under the folder `url`, recursively (one listing), for in-place reads.

    Args:
        url: A folder URL (``s3://bucket/raw/domains/D``, any fsspec URL; an ``https://``
            folder needs a server that lists it: an HTML index page of links).

    Returns:
        (relative POSIX name, size in bytes, version) sorted by name; version as in
        :func:`remote_files` (ETag without its quotes, else modification time, else ""). Empty when nothing
        is there.

    Raises:
        StorageError: The listing failed (unreachable endpoint, denied access, …).
    """
    fs, root = filesystem(url)
    with _reported(fs, url, "listing"):
        if not fs.isdir(root):
            return []
        entries = fs.find(root, detail=True)
    head = root.strip("/") + "/"
    out = []
    for name, e in entries.items():
        rel = str(name).strip("/")
        if e.get("type") != "file" or not rel.startswith(head):
            continue
        version = e.get("ETag") or e.get("etag") or e.get("LastModified") or e.get("mtime") or ""
        out.append((rel[len(head) :], int(e.get("size") or 0), str(version).strip('"')))
    return sorted(out)


def read_text(url: str) -> str | None:
    """The text of one small object (``domain.json``, ``domain.yaml``), or None if absent.

    Args:
        url: The file's URL.

    Returns:
        Its UTF-8 text, or None when nothing is there.

    Raises:
        StorageError: The store failed (unreachable endpoint, denied access, …).
    """
    fs, path = filesystem(url)
    with _reported(fs, url, "reading"):
        if not fs.isfile(path):
            return None
        with fs.open(path, "rb") as f:
            data: bytes = f.read()
    return data.decode()


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem of `url` and the path inside it (no trailing slash).

    Args:
        url: An fsspec URL; ``s3://`` uses the project's timeouts and ``AWS_ENDPOINT_URL_S3``.

    Returns:
        (filesystem, path without protocol).

    Raises:
        StorageError: fsspec has no filesystem for the URL (unknown scheme, missing package).
    """
    protocol = url.split("://", 1)[0].lower()
    options: dict[str, object] = {}
    if protocol in ("s3", "s3a"):
        options["config_kwargs"] = dict(S3_CONFIG)
        # Explicit, so that fsspec's instance cache keys on it (a changed variable is seen).
        found = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if found:
            options["client_kwargs"] = {"endpoint_url": found}
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as exc:
        raise StorageError(f"{url}: no filesystem for this URL ({exc})") from None
    return fs, path.rstrip("/")


def endpoint(fs: AbstractFileSystem, url: str) -> str:
    """Where `fs` sends requests, for error messages (the S3 endpoint, or the URL scheme).

    Args:
        fs: The filesystem.
        url: The URL it serves.

    Returns:
        The endpoint URL, or ``<scheme>://``.
    """
    kwargs = getattr(fs, "client_kwargs", None) or {}
    found = kwargs.get("endpoint_url") or getattr(fs, "endpoint_url", None)
    if found:
        return str(found)
    if url.split("://", 1)[0].lower() in ("s3", "s3a"):
        return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
            "AWS_ENDPOINT_URL", "AWS S3 (default endpoint)"
        )
    return url.split("://", 1)[0] + "://"


@contextlib.contextmanager
def _reported(fs: AbstractFileSystem, url: str, doing: str) -> Iterator[None]:
    """Turn any transport failure into a StorageError naming the URL and the endpoint.

    Args:
        fs: The filesystem used in the block.
        url: The URL, named in errors.
        doing: What the block does (``listing``, ``reading …``), named in errors.

    Yields:
        Nothing; the block talks to the store.

    Raises:
        StorageError: The block failed in transport (or found nothing at the URL).
        FlairPipelineError: The project's own errors, re-raised unchanged.
    """
    try:
        yield
    except FlairPipelineError:
        raise
    except FileNotFoundError as exc:
        raise StorageError(
            f"{url}: not found while {doing} (endpoint {endpoint(fs, url)}): {exc}"
        ) from None
    except Exception as exc:  # botocore, aiohttp, OSError: all mean "cannot use the store"
        raise StorageError(
            f"{url}: object storage at {endpoint(fs, url)} failed while {doing}: "
            f"{type(exc).__name__}: {exc}. Check the endpoint (AWS_ENDPOINT_URL), the "
            "credentials and that the bucket exists."
        ) from None


def list_files(url: str) -> list[str]:
    """Relative names of every file under `url` (empty when nothing is there).

    Args:
        url: A folder URL.

    Returns:
        Sorted relative names.
    """
    fs, root = filesystem(url)
    with _reported(fs, url, "listing"):
        if not fs.exists(root):
            return []
        found = fs.find(root)
    return sorted(p[len(root) :].lstrip("/") for p in found)


def folder_names(fs: AbstractFileSystem, path: str) -> list[str]:
    """Names of the folders directly under `path` on `fs`, sorted (none if `path` is absent).

    Args:
        fs: the filesystem (local, ``s3://``, ``memory://``, …).
        path: a folder of `fs`, without protocol.

    Returns:
        The folder names (not paths); object stores report common prefixes as folders.
    """
    if not fs.isdir(path):
        return []
    return sorted(
        PurePosixPath(str(i["name"]).rstrip("/")).name
        for i in fs.ls(path, detail=True)
        if i.get("type") == "directory"
    )


def domain_folders(raw_url: str) -> tuple[list[str], list[str]]:
    """The folders under ``<raw_url>/domains``: domain ids, and the other visible names.

    The one scan of a raw root's domain folders (local path or URL): the CLI and
    ``materialize`` build the ids; the other names are reported so that a user knows why a
    folder they copied in is not built.

    Args:
        raw_url: the raw root, a local path or any fsspec URL.

    Returns:
        (domain ids, other names not starting with "."), each sorted.

    Raises:
        StorageError: the listing failed (unreachable endpoint, denied access, …).
    """
    from flair_pipeline.domains import is_domain_id

    fs, root = filesystem(raw_url)
    with _reported(fs, raw_url, "listing domains"):
        names = folder_names(fs, f"{root}/domains")
    ids = [n for n in names if is_domain_id(n)]
    return ids, [n for n in names if not is_domain_id(n) and not n.startswith(".")]


def list_domains(raw_url: str) -> list[str]:
    """Domain ids with a folder under ``<raw_url>/domains`` (a local path or any URL).

    Args:
        raw_url: The raw root.

    Returns:
        Sorted domain ids.
    """
    return domain_folders(raw_url)[0]


def pull(url: str, local: Path, prefixes: Iterable[str], *, required: bool = False) -> int:
    """Copy the files under each prefix of `url` (a folder or one file) into `local`.

    Args:
        url: The root URL.
        local: The local folder mirroring it.
        prefixes: Relative prefixes (folders or files) to copy.
        required: Refuse a prefix with nothing under it.

    Returns:
        The number of files copied.

    Raises:
        InputError: With `required`, a prefix has nothing under it, naming the URL.
    """
    fs, root = filesystem(url)
    count = 0
    for prefix in prefixes:
        base = f"{root}/{prefix.strip('/')}"
        with _reported(fs, url, f"listing {prefix}"):
            found = fs.find(base) if fs.exists(base) else []
        if not found and required:
            raise InputError(f"{url.rstrip('/')}/{prefix.strip('/')}: nothing found there")
        for remote in found:
            dest = local / remote[len(root) :].lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with _reported(fs, url, f"downloading {remote}"):
                fs.get_file(remote, str(dest))
            count += 1
    return count


def snapshot(local: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under `local`, to see later what a step changed.

    Args:
        local: A local folder (may be absent).

    Returns:
        Relative name -> (size in bytes, mtime in ns); {} without the folder.
    """
    if not local.is_dir():
        return {}
    return {
        str(p.relative_to(local)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in local.rglob("*")
        if p.is_file()
    }


def _publish_order(name: str) -> tuple[int, str]:
    return (1 if name.startswith("metadata/") else 0, name)


def publish(local: Path, url: str, before: dict[str, tuple[int, int]]) -> list[str]:
    """Upload the files under `local` that are new or changed since `before`.

    Hidden files (temporary names of the atomic writers) are never uploaded.

    Args:
        local: The local staging folder.
        url: The root URL uploaded to.
        before: :func:`snapshot` of `local` before the step.

    Returns:
        The relative names uploaded, data first and metadata last.
    """
    fs, root = filesystem(url)
    now = snapshot(local)
    changed = [
        name
        for name, stat in now.items()
        if before.get(name) != stat and not any(part.startswith(".") for part in name.split("/"))
    ]
    atomic = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    for name in sorted(changed, key=_publish_order):
        remote = f"{root}/{name}"
        with _reported(fs, url, f"uploading {name}"):
            if atomic in ATOMIC_PUT:
                fs.put_file(str(local / name), remote)
            else:
                parent, _, base = remote.rpartition("/")
                tmp = f"{parent}/.{base}.{uuid.uuid4().hex}.tmp"
                fs.makedirs(parent, exist_ok=True)
                fs.put_file(str(local / name), tmp)
                fs.mv(tmp, remote)
    return changed
