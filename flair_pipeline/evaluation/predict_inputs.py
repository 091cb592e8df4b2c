"""What a domain's map reads (ortho tiles, DSM, DTM), from a raw root on disk or at a URL.

The ``demo_map`` stage maps a whole domain, so it reads every byte of that domain's ortho
tiles, DSM and DTM. With a raw root (or dataset root) that is a URL, in the forms
``predict`` takes (``s3://bucket/key`` and ``https://…``, or GDAL's ``/vsis3/bucket/key``
and ``/vsicurl/https://…``), :func:`domain_map_inputs` fetches exactly those files into a
temporary folder (and the dataset's ``splits.csv`` when the dataset root is a URL: which
domain is the first test domain), never the rest of the raw root (labels, other domains;
Sentinel-2 only for a model that reads it from the raw root's archive), and deletes them
afterwards. A local root is used where it is.

``s3://`` roots are listed through the S3 API (endpoint ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL``, as every URL root of the project); an ``https://`` root needs a
server that lists its folders (an index page of links, as nginx's or Apache's autoindex)
to find the ortho tiles.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flair_pipeline.errors import InputError
from flair_pipeline.geo.raster_vrt import is_raster_name
from flair_pipeline.layout import RAW_DSM, RAW_DTM, RAW_ORTHO, RAW_SENTINEL2, SPLITS, RawLayout
from flair_pipeline.storage import StorageError, filesystem, is_url, pull


def storage_url(root: str | Path) -> str | None:
    """The fsspec URL of a URL root in any form ``predict`` takes, or None for a local root.

    Args:
        root: A root of the config: a local path, an ``s3://`` / ``https://`` URL (any
            fsspec URL), or a GDAL ``/vsis3/bucket/key`` or ``/vsicurl/<url>`` path.

    Returns:
        ``s3://bucket/key`` for ``/vsis3/bucket/key``, ``<url>`` for ``/vsicurl/<url>``,
        the URL itself for a URL, None for a local path (a Path is always local).
    """
    if not isinstance(root, str):
        return None
    if root.startswith("/vsis3/"):
        return "s3://" + root[len("/vsis3/") :]
    if root.startswith("/vsicurl/"):
        return root[len("/vsicurl/") :]
    return root if is_url(root) else None


@dataclass(frozen=True)
class MapInputs:
    """A domain's map inputs as local paths, and what was fetched to get them.

    Attributes:
        raw: The local raw root they lie under (the root itself, or the temporary folder).
        ortho: The folder of the domain's ortho tiles.
        dsm: Its surface model.
        dtm: Its terrain model.
        fetched_files: Files fetched from the URL root (0 for a local root).
        fetched_bytes: Their bytes.
    """

    raw: Path
    ortho: Path
    dsm: Path
    dtm: Path
    fetched_files: int = 0
    fetched_bytes: int = 0


def _bytes_under(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _is_http(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("http", "https")


def _http_tiles(url: str, ortho: str) -> list[str]:
    """The ortho tiles of an HTTP folder, from its index page (fsspec reads its links).

    Args:
        url: The raw root URL.
        ortho: The ortho folder, relative to it.

    Returns:
        The tiles' paths relative to `url`, sorted.

    Raises:
        InputError: No tile is linked from the folder's index page (or it has none).
        StorageError: The server cannot be reached.
    """
    fs, root = filesystem(url)
    where = f"{url.rstrip('/')}/{ortho}/"
    try:
        links = fs.ls(f"{root}/{ortho}/", detail=False)
    except FileNotFoundError:
        links = []
    except (OSError, ValueError) as exc:  # aiohttp's errors are OSErrors
        raise StorageError(f"{where}: cannot list the folder ({exc})") from None
    base = f"{root}/{ortho}/"
    names = sorted(
        str(link)[len(base) :]
        for link in links
        if str(link).startswith(base) and is_raster_name(str(link)[len(base) :])
    )
    tiles = [n for n in names if "/" not in n]
    if not tiles:
        raise InputError(
            f"{where}: no ortho tile (*.tif, *.tiff, *.jp2) linked from its index page; an "
            "https:// raw root needs a server that lists its folders (autoindex)"
        )
    return [f"{ortho}/{n}" for n in tiles]


def _http_get(url: str, folder: Path, files: list[str]) -> int:
    """Fetch `files` (relative to `url`) into `folder`, one GET each.

    Returns:
        The number of files fetched.

    Raises:
        InputError: A file is not on the server (named).
        StorageError: The server cannot be reached.
    """
    fs, root = filesystem(url)
    for rel in files:
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        where = f"{url.rstrip('/')}/{rel}"
        try:
            fs.get_file(f"{root}/{rel}", str(dest))
        except FileNotFoundError:
            raise InputError(f"{where}: nothing found there") from None
        except (OSError, ValueError) as exc:
            raise StorageError(f"{where}: cannot download ({exc})") from None
    return len(files)


@contextlib.contextmanager
def domain_map_inputs(
    raw_root: str | Path, domain: str, *, sentinel2: bool = False
) -> Iterator[MapInputs]:
    """The ortho folder, DSM and DTM of `domain`, fetched first when the root is a URL.

    Args:
        raw_root: The raw root (``paths.raw``): a local folder or a URL (:func:`storage_url`).
        domain: The domain id, e.g. ``D033_2021``.
        sentinel2: Also fetch the raw root's Sentinel-2 archive (``sentinel2/``, every
            domain's: its catalog links them), for a model that reads Sentinel-2 from it;
            an ``s3://`` root only (an HTTP folder is not listed recursively).

    Yields:
        The local paths; with a URL root they lie in a temporary folder deleted on exit.

    Raises:
        InputError: The domain's ortho folder, DSM or DTM is absent at the URL (named), or
            `sentinel2` with an HTTP root.
        StorageError: The URL root cannot be reached or read (named, with its endpoint).
    """
    url = storage_url(raw_root)
    if url is None:
        raw = RawLayout(Path(raw_root))
        yield MapInputs(raw.local_root, raw.ortho_dir(domain), raw.dsm(domain), raw.dtm(domain))
        return
    if sentinel2 and _is_http(url):
        raise InputError(
            f"{url}: the Sentinel-2 archive under an http(s) raw root cannot be listed; set "
            "sentinel2.source.catalog to its catalog.json URL, or use an s3:// root"
        )
    folder = Path(tempfile.mkdtemp(prefix="flair-map-"))
    try:
        ortho = RAW_ORTHO.prefix(domain=domain)
        surfaces = [RAW_DSM.prefix(domain=domain), RAW_DTM.prefix(domain=domain)]
        if _is_http(url):  # one GET a file (fsspec's listing of a file GETs it too)
            n = _http_get(url, folder, [*_http_tiles(url, ortho), *surfaces])
        else:
            n = pull(url, folder, [ortho, *surfaces], required=True)
            if sentinel2:
                n += pull(url, folder, [RAW_SENTINEL2.prefix()], required=True)
        raw = RawLayout(folder)
        yield MapInputs(
            folder, raw.ortho_dir(domain), raw.dsm(domain), raw.dtm(domain), n, _bytes_under(folder)
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def splits_file(dataset_root: str | Path) -> Iterator[Path]:
    """The dataset's ``splits.csv``, fetched alone into a temporary folder for a URL root.

    Args:
        dataset_root: The dataset root (``paths.dataset``): a local folder or a URL.

    Yields:
        Its local path (deleted on exit when fetched).

    Raises:
        InputError: The URL root has no ``splits.csv`` (named).
        StorageError: The URL root cannot be reached or read.
    """
    url = storage_url(dataset_root)
    if url is None:
        yield SPLITS.under(Path(dataset_root))
        return
    folder = Path(tempfile.mkdtemp(prefix="flair-map-"))
    try:
        pull(url, folder, [SPLITS.prefix()], required=True)
        yield SPLITS.under(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
