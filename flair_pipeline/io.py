"""Writing artifacts safely: a recognisable temp name, checked, fsynced, then renamed.

A crash, a full disk or a bad input must never leave a half-written IMG, MSK or array that
a later stage would take for complete (docs/operations.md, issue 15). Every writer goes through
:func:`atomic_path`, which

- writes beside the target under ``.<name>.<host>-<pid>-<random>.flairtmp<suffix>``; the
  next write of the same file deletes the temps of dead processes (a ``kill -9`` cannot
  run ``finally`` blocks), and steps call :func:`remove_stale_temps` for their targets;
- gives the file the mode a plain ``open()`` would (``0o666 & ~umask``), not mkstemp's 0600;
- checks the file is there and non-empty (and, for GeoTIFFs, that it re-opens with the
  shape written and the same last block: :func:`write_geotiff`), fsyncs it, renames it onto the
  target and fsyncs the folder;
- turns ENOSPC/EDQUOT, or any write failure while the folder's file system has under
  :data:`DISK_FULL_MARGIN` bytes free, into :class:`DiskFullError` ("disk full at PATH
  (N MB free)"), and any other I/O failure into :class:`StorageError` naming the file;
  the message says what a rebuild needs (room for a second generation beside the live
  one, with the live one's size when the file belongs to a domain's staged generation)
  and folds in GDAL's and libtiff's raw error lines (:mod:`flair_pipeline.gdal_lines`),
  which would otherwise print on stderr beside it (issue 30).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from flair_pipeline import gdal_lines
from flair_pipeline.errors import DiskFullError, StorageError

#: Marker in every temp file name: ``.IMG_x.tif.host-1234-9f3a0b1c.flairtmp.tif``.
TEMP_MARK = ".flairtmp"
#: A write that fails while less than this is free is reported as a full disk: GDAL's
#: write errors reach Python without their errno ("Write failed"). 4 MiB is about three
#: 512 x 512 x 5 IMG patches.
DISK_FULL_MARGIN = 4 * 2**20
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: ``0o666 & ~umask``.

    Returns:
        The permission bits, e.g. 0o644 under umask 022.
    """
    try:  # Linux >= 4.7 exposes the umask without changing it (thread safe)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def temp_path_for(path: Path) -> Path:
    """A fresh, recognisable temp name beside `path`.

    Same suffix, so drivers see the type.

    Args:
        path: The file to be written.

    Returns:
        ``.<name>.<host>-<pid>-<8 hex>.flairtmp<suffix>`` in `path`'s folder.
    """
    token = f"{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"
    return path.parent / f".{path.name}.{token}{TEMP_MARK}{path.suffix}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_temps(path: Path) -> list[Path]:
    """Delete temp files of `path` left by dead processes of this host; return them.

    :func:`atomic_path` calls it before every write, so the next write of a file (the next
    run of the step that owns it) removes what a ``kill -9`` left. Temps of live processes
    and of other hosts are kept (see :func:`remove_stale_temps` for those).

    Args:
        path: A target file.

    Returns:
        The temp files deleted.
    """
    pattern = re.compile(
        rf"^\.{re.escape(path.name)}\.{re.escape(_HOST)}-(\d+)-[0-9a-f]{{8}}"
        rf"{re.escape(TEMP_MARK)}"
    )
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    for p in path.parent.glob(f".{glob.escape(path.name)}.*{TEMP_MARK}*"):
        m = pattern.match(p.name)
        if m and not _pid_alive(int(m.group(1))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def is_temp_file(path: Path) -> bool:
    """Whether `path` is a temp file left by :func:`atomic_path`.

    Args:
        path: Any file.

    Returns:
        True for a hidden name holding the temp mark.
    """
    return path.name.startswith(".") and TEMP_MARK in path.name


def remove_stale_temps(*targets: str | Path) -> list[Path]:
    """Delete the temp files :func:`atomic_path` left beside each target; return them.

    A step calls it first for the files it writes: only a killed process leaves these
    behind (``finally`` blocks do not run on SIGKILL), and no other writer uses the name.

    Args:
        *targets: The files the step writes.

    Returns:
        The temp files deleted, whatever process or host left them.
    """
    removed = []
    for target in map(Path, targets):
        if not target.parent.is_dir():
            continue
        for p in target.parent.glob(f".{glob.escape(target.name)}.*{TEMP_MARK}*"):
            if p.is_file() and is_temp_file(p):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def free_mb(folder: Path) -> float:
    """Free space (MB, 10^6 bytes) on the file system holding `folder` (or its nearest parent).

    Args:
        folder: A folder (it may not exist yet).

    Returns:
        Free megabytes for an unprivileged writer.
    """
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free / 1e6


def _is_disk_full(exc: BaseException, folder: Path) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL_ERRNOS:
            return True
        if "No space left on device" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return free_mb(folder) * 1e6 < DISK_FULL_MARGIN


#: A domain's staging folder (dataset/generation.py): ``.<kind>-<domain>.<owner>.flairstage``.
_STAGE = re.compile(r"^\.(?P<kind>[a-z0-9_]+)-(?P<domain>D\d{3}_\d{4})\..*\.flairstage$")


def rebuild_need(path: Path) -> str:
    """What a rebuild writing `path` needs free, in words (for the disk-full line).

    Args:
        path: The file whose write failed.

    Returns:
        The live generation's size when `path` is in a domain's staging folder (the
        rebuild writes a complete second generation beside it before swapping), else the
        general rule.
    """
    for folder in path.parents:
        m = _STAGE.match(folder.name)
        if m:
            live = folder.parent / m["kind"] / m["domain"]
            size = sum(f.stat().st_size for f in live.rglob("*") if f.is_file())
            if size:
                return (
                    f"a rebuild writes a second generation beside the live one ({live}, "
                    f"{_size_text(size)}) before swapping, so it needs about that much free"
                )
            break
    return (
        "a rebuild writes its new files beside the live ones before swapping, so it needs "
        "free space for a second copy of what it rebuilds"
    )


def _size_text(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def storage_error(exc: BaseException, path: Path, gdal: str = "") -> StorageError:
    """The one-line error for a failed write of `path` (disk full or another I/O error).

    Args:
        exc: What the write raised.
        path: The file being written.
        gdal: GDAL's own lines about the failure (``"; GDAL said: …"``), folded in.

    Returns:
        A :class:`DiskFullError` (disk full: free space, what a rebuild needs) or a
        :class:`StorageError` naming `path`; `exc` itself if it is already one.
    """
    if isinstance(exc, StorageError):
        return exc
    if _is_disk_full(exc, path.parent):
        return DiskFullError(
            f"disk full at {path} ({free_mb(path.parent):.0f} MB free{gdal}): "
            f"{rebuild_need(path)}; free space on that file system (or point paths.dataset "
            "elsewhere) and rerun the step"
        )
    return StorageError(f"{path}: write failed ({exc}{gdal}); check the disk and rerun the step")


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(
    path: str | Path,
    *,
    check: Callable[[Path], None] | None = None,
    allow_empty: bool = False,
) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success check, fsync and rename it onto `path`.

    `check(tmp)` may raise to refuse the file (e.g. a re-open check); an empty file is
    refused unless `allow_empty`. On any failure the
    temp file is deleted and the target is left as it was; the project's own errors
    pass through unchanged.

    Args:
        path: The file written.
        check: Called on the temp file before the rename; raises to refuse it.
        allow_empty: Accept an empty file.

    Yields:
        The temp path to write (created empty, mode per the umask).

    Raises:
        DiskFullError: The disk filled up (or a write failed for want of space).
        StorageError: Any other I/O failure, or an empty file refused: one line naming
            `path` (built by :func:`storage_error`).
    """  # noqa: DOC501 (storage_error() builds the StorageError named above)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, path) from exc
    with contextlib.suppress(OSError):
        reap_dead_temps(path)
    tmp = temp_path_for(path)
    # GDAL's raw lines go into the error, not beside it
    with gdal_lines.held() as gdal, _one_line(path, tmp, gdal):
        yield tmp
        if not tmp.is_file():
            raise StorageError(f"{path}: the writer left no file")
        if tmp.stat().st_size == 0 and not allow_empty:
            raise StorageError(f"{path}: the writer left an empty file")
        if check is not None:
            check(tmp)
        os.chmod(tmp, file_mode())  # some writers (GDAL, pyogrio) recreate the file
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent, directory=True)


@contextlib.contextmanager
def _one_line(path: Path, tmp: Path, gdal: gdal_lines.Held) -> Iterator[None]:
    """Create `tmp`; turn any I/O failure of the block into one line naming `path`.

    Args:
        path: The target, named in errors.
        tmp: The temp file created.
        gdal: GDAL's held error lines, appended to the message.

    Yields:
        Nothing; the block writes `tmp`.

    Raises:
        StorageError: Any I/O, rasterio or pyogrio failure of the block (DiskFullError
            when the disk is full); other RuntimeErrors pass unchanged.
    """  # noqa: DOC501 (storage_error() builds the StorageError; RuntimeError re-raised)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.chmod(tmp, file_mode())
        yield
    except StorageError as exc:  # before OSError: it is one
        if isinstance(exc, DiskFullError) or not _is_disk_full(exc, path.parent):
            said = gdal.suffix()
            if not said:
                raise
            raise type(exc)(f"{exc} ({said.removeprefix('; ')})") from exc
        raise storage_error(OSError(errno.ENOSPC, str(exc)), path, gdal.suffix()) from exc
    except (OSError, rasterio.errors.RasterioError) as exc:
        raise storage_error(exc, path, gdal.suffix()) from exc
    except RuntimeError as exc:  # pyogrio's write errors (GPKG, …): not imported here for that
        if not type(exc).__module__.startswith("pyogrio"):
            raise
        raise storage_error(exc, path, gdal.suffix()) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _geotiff_check(expected: np.ndarray) -> Callable[[Path], None]:
    """Re-open a written GeoTIFF: shape, dtype, and the pixels of its last block.

    GDAL writes blocks in order and the directory last, so a file cut short by a full disk
    fails to re-open or loses its last block; reading only that block keeps the check at
    a fraction of a full decode.

    Args:
        expected: The array written (bands, H, W).

    Returns:
        A check for :func:`atomic_path` that raises StorageError on a mismatch.
    """

    def check(tmp: Path) -> None:
        try:  # no sidecar files to look for: skip listing a folder of thousands of patches
            with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(tmp) as src:
                shape = (src.count, src.height, src.width)
                dtype = src.dtypes[0]
                bh, bw = src.block_shapes[0]
                r0, c0 = (src.height - 1) // bh * bh, (src.width - 1) // bw * bw
                window = rasterio.windows.Window(c0, r0, src.width - c0, src.height - r0)
                last = src.read(window=window)
        except rasterio.errors.RasterioError as exc:
            raise StorageError(f"{tmp}: does not re-open after writing ({exc})") from exc
        if shape != expected.shape or dtype != expected.dtype.name:
            raise StorageError(
                f"{tmp}: re-opened as {shape} {dtype}, not the {expected.shape} "
                f"{expected.dtype} written"
            )
        if not np.array_equal(last, expected[:, r0:, c0:]):
            raise StorageError(f"{tmp}: its last block differs from what was written")

    return check


def write_geotiff(
    path: str | Path,
    array: np.ndarray,
    transform: Any,
    crs: Any,
    *,
    nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
    colormap: Mapping[int, tuple[int, int, int, int]] | None = None,
    tiled: bool | None = None,
    **options: Any,
) -> Path:
    """Write a (bands, H, W) or (H, W) array as a compressed GeoTIFF, atomically.

    The one GeoTIFF writer of the project (patches, masks, predictions, the synthetic
    world). Before the rename the temp file is re-opened and its shape, dtype and last
    block compared with `array` (a full disk can leave a GeoTIFF whose header is fine and
    whose last tiles are missing).

    Args:
        path: where the file goes (its folder must exist).
        array: (bands, H, W) or (H, W), any GDAL data type.
        transform: the affine geotransform of the pixel grid.
        crs: anything rasterio takes as a CRS (``"EPSG:2154"``, a CRS, WKT), or None.
        nodata: the nodata value written in the header, or none.
        descriptions: one band description per band.
        colormap: a palette for band 1 (code -> RGBA), e.g. MSK's FLAIR colours.
        tiled: 256 x 256 tiles (True), strips (False), or, by default, tiles when both
            sides are at least 256 px and multiples of 16.
        **options: further GDAL creation options (``compress``, ``predictor``, …); they
            override the defaults (DEFLATE).

    Returns:
        `path`.

    Raises:
        DiskFullError: the disk filled while writing.
        StorageError: the file could not be written or does not re-open as written.
    """
    arr = array if array.ndim == 3 else array[None]
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": arr.shape[0],
        "dtype": arr.dtype.name,
        "crs": crs,
        "transform": transform,
        "compress": "deflate",
        "nodata": nodata,
    }
    if tiled is None:
        tiled = (
            arr.shape[1] >= 256
            and arr.shape[2] >= 256
            and arr.shape[1] % 16 == 0
            and arr.shape[2] % 16 == 0
        )
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    profile.update(options)
    with (
        atomic_path(path, check=_geotiff_check(arr)) as tmp,
        rasterio.open(tmp, "w", **profile) as dst,
    ):
        dst.write(arr)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)
        if colormap is not None:
            dst.write_colormap(1, dict(colormap))
    return Path(path)
