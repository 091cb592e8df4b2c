"""Inter-process locks per (asset key, partition) for in-process materializations.

Why: runs launched by the daemon go through the run queue, which admits one run per
``dagster/partition`` value (``flair_pipeline/orchestration/instance.py``). ``flair-pipeline
materialize`` and ``dvc repro`` run the assets in their own process and bypass that queue,
so two of them (or one of them and a queued run's worker calling the same code) could build
one domain's folders at the same time. Each build therefore holds an exclusive
:class:`filelock.FileLock` (``flock(2)``, freed by the kernel when the holder dies, even by
SIGKILL) on ``<DAGSTER_HOME>/locks/<asset key>@<partition>.lock`` for every asset it
materializes, taken in sorted order so that two builds of overlapping selections cannot
deadlock. The lock files stay (filelock never unlinks a Unix lock file: unlinking would
split waiters across inodes); they are created with the umask's mode and hold the
holder's ``pid host`` for the "waiting for" line.

Scope: one machine (``flock`` on a local DAGSTER_HOME). Builds on several machines sharing
one PostgreSQL instance are serialised by the run queue only.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

#: Characters kept in a lock file name; others (``/`` of nested keys, spaces) become ``_``.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]")


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


def _write_holder(fd: int) -> None:
    """Record ``pid host`` in the freshly locked file (read by waiters for their message)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)


def holder(path: Path) -> str:
    """``pid N`` (``pid N on HOST`` from another host) of the lock's holder, as it recorded it.

    Args:
        path: A lock file made by :func:`asset_locks`.

    Returns:
        The description, or ``pid unknown`` when the file is empty or unreadable (the
        holder has locked it but not yet written its pid).
    """
    try:
        pid, _, host = path.read_text().strip().partition(" ")
    except OSError:
        return "pid unknown"
    if not pid:
        return "pid unknown"
    return f"pid {pid}" + ("" if host in ("", socket.gethostname()) else f" on {host}")


@contextmanager
def asset_locks(
    lock_dir: Path,
    assets: Sequence[str],
    partition: str | None,
    log: Callable[[str], None],
    poll_interval: float = 0.2,
) -> Iterator[None]:
    """Hold the exclusive lock of every (asset, partition) for the duration of the block.

    Locks are taken in sorted asset order (no deadlock between overlapping selections);
    a lock held by another process makes this one wait, after one line through `log`:
    ``waiting for another build of domain D033_2021 (pid 1234): aerial_patches is locked
    (<lock file>)``. They are released on exit, or by the kernel if the process dies.

    Args:
        lock_dir: Folder of the lock files, created if missing (umask modes).
        assets: Asset keys as user strings.
        partition: The domain id being built, or None for unpartitioned assets.
        log: Where the waiting line goes (the CLI's stderr).
        poll_interval: Seconds between two attempts while waiting.

    Yields:
        Nothing; the locks are held inside the block.

    Raises:
        OSError: The lock folder or a lock file cannot be created (permissions, full disk).
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    what = f"domain {partition}" if partition else ", ".join(sorted(assets))
    with ExitStack() as stack:
        for asset in sorted(set(assets)):
            path = lock_path(lock_dir, asset, partition)
            lock = FileLock(path, on_acquired=_write_holder, poll_interval=poll_interval)
            try:
                lock.acquire(blocking=False)
            except Timeout:
                log(
                    f"waiting for another build of {what} ({holder(path)}): "
                    f"{asset} is locked ({path})"
                )
                lock.acquire()
            stack.callback(lock.release)
        yield
