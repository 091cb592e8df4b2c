"""Exclusive inter-process locks on lock files, with the holder written in the file.

Why: two builds of one thing (a domain's IMG folder, say) must never write it at the same
time, whichever front door started them (Dagster UI, sensor, CLI, ``build-domain``, a Dask
worker) and whichever ``DAGSTER_HOME`` they record their runs in. :func:`hold` takes an
exclusive ``flock(2)`` on a lock file: the kernel frees it when the holder dies, even by
SIGKILL, so a lock is never stale. On a shared POSIX file system whose ``flock`` is seen by
every client (NFSv4, CephFS, Lustre mounted with ``flock``, GPFS) it excludes processes on
other machines too; on a mount where locks are local to each client (NFS ``nolock``) it
does not, and nothing here can tell.

While held, the file holds one JSON line naming the holder (pid, host, boot id, process
start time, since when it holds the lock), read by a waiter for its one "waiting for"
line and by :func:`holder_alive`; it is emptied on release. Lock files are never unlinked
(unlinking would split waiters across inodes); they are created with the umask's mode.

Within one process a lock is re-entrant for the thread that holds it (a whole-domain build
holds every step's lock and calls the steps, which take theirs again) and exclusive
between threads (two Dask tasks on one worker).

:func:`asset_locks` (per Dagster asset key and partition, under ``<DAGSTER_HOME>/locks``)
serialises the CLI's in-process materializations of one home; the locks that protect the
data are the dataset's own (:mod:`flair_pipeline.dataset.domain_lock`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from flair_pipeline.errors import StorageError

#: Characters kept in a lock file name; others (``/`` of nested keys, spaces) become ``_``.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")


@dataclass
class _Entry:
    """One lock file as held by this process: the owning thread, the fd, the depth."""

    thread: threading.RLock = field(default_factory=threading.RLock)
    fd: int = -1
    depth: int = 0


_REGISTRY_LOCK = threading.Lock()
_HELD: dict[str, _Entry] = {}


def _entry(path: Path) -> tuple[str, _Entry]:
    key = str(path.resolve())
    with _REGISTRY_LOCK:
        return key, _HELD.setdefault(key, _Entry())


def boot_id() -> str:
    """This machine's boot id (Linux ``/proc/sys/kernel/random/boot_id``), else ``""``.

    Returns:
        The id, which changes at every boot: a pid recorded under another boot id is dead.
    """
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def owner_record() -> dict[str, Any]:
    """Who this process is, as written into a lock file or a staging folder.

    Returns:
        ``{"pid", "host", "boot_id", "started", "since"}``: ``started`` is the process's
        start (Unix time, tells a reused pid), ``since`` is now.
    """
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "boot_id": boot_id(),
        "started": psutil.Process().create_time(),
        "since": time.time(),
    }


def read_holder(path: Path) -> dict[str, Any] | None:
    """The record a holder wrote into `path` (:func:`owner_record`), or None if none.

    Args:
        path: A lock file.

    Returns:
        The record; None when the file is missing, empty (free, or locked a moment ago and
        not yet written) or not a record.
    """
    try:
        record = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "pid" in record else None


def describe_holder(path: Path) -> str:
    """``pid N on host H, since 2026-12-04 09:31:02 UTC`` for the holder of `path`.

    Args:
        path: A lock file.

    Returns:
        The description, or ``holder unknown`` when it wrote nothing (yet).
    """
    record = read_holder(path)
    if record is None:
        return "holder unknown"
    since = record.get("since")
    when = (
        time.strftime(", since %Y-%m-%d %H:%M:%S UTC", time.gmtime(float(since)))
        if isinstance(since, int | float)
        else ""
    )
    return f"pid {record['pid']} on host {record.get('host', '?')}{when}"


def holder_alive(record: dict[str, Any]) -> bool | None:
    """Whether the process a record names is alive, when this machine can tell.

    Args:
        record: An :func:`owner_record`.

    Returns:
        True or False for a record of this host and boot (pid present and started when
        recorded); False for this host under another boot id; None for another host.
    """
    if record.get("host") != socket.gethostname():
        return None
    if record.get("boot_id") and boot_id() and record["boot_id"] != boot_id():
        return False  # the machine rebooted since: every process of then is gone
    try:
        proc = psutil.Process(int(record["pid"]))
        started = float(record.get("started", proc.create_time()))
        alive: bool = proc.status() != psutil.STATUS_ZOMBIE
        return alive and abs(proc.create_time() - started) < 1.0
    except (psutil.NoSuchProcess, ValueError, TypeError):
        return False


def is_held(path: Path) -> bool:
    """Whether some process (this one included) holds the lock of `path` now.

    Args:
        path: A lock file (a missing one is free).

    Returns:
        True while a holder lives; False once it has released it or died.
    """
    key = str(path.resolve())
    with _REGISTRY_LOCK:
        mine = _HELD.get(key)
        if mine is not None and mine.depth:
            return True
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the probe's lock, if it got it
    return False


def _flock(fd: int, path: Path, blocking: bool) -> bool:
    """Lock `fd` (flock); False if it would block (`blocking` false); one-line errors otherwise.

    Args:
        fd: Open file descriptor of the lock file.
        path: The lock file, named in errors.
        blocking: Wait for the lock rather than give up.

    Returns:
        True once locked; False when held elsewhere and `blocking` is false.

    Raises:
        StorageError: The file system does not support flock (ENOLCK, EOPNOTSUPP, ENOSYS).
        OSError: Any other failure of flock, unchanged.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise StorageError(
                f"{path}: this file system does not support locks ({exc.strerror}); put the "
                "dataset on a file system with flock (local disk, NFSv4, CephFS, Lustre -o flock)"
            ) from None
        raise
    return True


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask's mode
    except OSError as exc:
        raise StorageError(f"{path}: cannot create the lock file ({exc.strerror})") from None


@contextmanager
def hold(
    path: Path, subject: str, what: str, log: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the exclusive lock of `path` for the block; wait for it if another holds it.

    A wait is announced by one line through `log`: ``waiting for another build of
    <subject> (pid N on host H, since T): <what> is locked (<path>)``.

    Args:
        path: The lock file, created (and its folder) if missing, with the umask's mode.
        subject: What is being built (``domain D033_2021``).
        what: Which lock (``aerial_patches``).
        log: Where the waiting line goes; None: stderr.

    Yields:
        Nothing; the lock is held inside the block (re-entrant for this thread).

    Raises:
        StorageError: The lock file cannot be created, or its file system has no locks.
    """
    say = log or _stderr

    def waiting() -> None:
        holder = describe_holder(path)
        say(f"waiting for another build of {subject} ({holder}): {what} is locked ({path})")

    _, entry = _entry(path)
    if not entry.thread.acquire(blocking=False):  # another thread of this process
        waiting()
        entry.thread.acquire()
    try:
        if entry.depth == 0:
            fd = _open(path)
            try:
                if not _flock(fd, path, blocking=False):
                    waiting()
                    _flock(fd, path, blocking=True)
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(owner_record()) + "\n").encode(), 0)
            except BaseException:
                os.close(fd)
                raise
            entry.fd = fd
        entry.depth += 1
        try:
            yield
        finally:
            entry.depth -= 1
            if entry.depth == 0:
                fd, entry.fd = entry.fd, -1
                try:
                    os.ftruncate(fd, 0)  # free: no holder named
                finally:
                    os.close(fd)  # releases the flock
    finally:
        entry.thread.release()


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def lock_path(lock_dir: Path, asset: str, partition: str | None) -> Path:
    """The lock file of one (asset, partition).

    Args:
        lock_dir: Folder of the lock files (``<DAGSTER_HOME>/locks``).
        asset: The asset key as a user string (``aerial_patches``, ``a/b`` for nested keys).
        partition: The domain id, or None for an unpartitioned asset.

    Returns:
        ``<lock_dir>/<asset>@<partition>.lock`` (``<asset>.lock`` without a partition).
    """
    name = asset + (f"@{partition}" if partition else "")
    return lock_dir / f"{_UNSAFE.sub('_', name)}.lock"


@contextmanager
def asset_locks(
    lock_dir: Path,
    assets: Sequence[str],
    partition: str | None,
    log: Callable[[str], None],
) -> Iterator[None]:
    """Hold the lock of every (asset, partition) of one Dagster home for the block.

    Locks are taken in sorted asset order (no deadlock between overlapping selections);
    a lock held by another process makes this one wait, after one line through `log`
    (:func:`hold`). They are released on exit, or by the kernel if the process dies.

    Args:
        lock_dir: Folder of the lock files, created if missing (umask modes).
        assets: Asset keys as user strings.
        partition: The domain id being built, or None for unpartitioned assets.
        log: Where the waiting line goes (the CLI's stderr).

    Yields:
        Nothing; the locks are held inside the block.

    Raises:
        StorageError: The lock folder or a lock file cannot be created (permissions, full disk).
    """
    what = f"domain {partition}" if partition else ", ".join(sorted(assets))
    with ExitStack() as stack:
        for asset in sorted(set(assets)):
            stack.enter_context(hold(lock_path(lock_dir, asset, partition), what, asset, log))
        yield
