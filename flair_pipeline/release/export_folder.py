"""An export folder replaced whole: written beside it, marked incomplete, swapped on success.

``export-flair --out OUT`` never writes into ``OUT`` itself (issue 30). :func:`staged`

1. reaps what earlier exports of ``OUT`` left (:func:`reap`);
2. refuses an ``OUT`` that exists, is not empty and holds no :data:`RECORD` (it is not an
   export of ours: replacing it would delete someone's files);
3. creates the sibling ``.<OUT name>.<host>-<pid>-<8 hex>.flairexport/`` holding the marker
   file :data:`INCOMPLETE_MARK` and hands it to the writer;
4. on success deletes the marker and swaps: ``OUT`` is renamed to
   ``….flairexport-old``, the staged folder to ``OUT``, and the old one is deleted. A file
   or a domain no longer in the release is therefore gone, never kept from an older export;
5. on an error deletes the staged folder and re-raises: ``OUT`` is the old export, untouched.

A ``kill -9`` runs no cleanup: it leaves the staged folder with its marker (visibly
incomplete), and ``OUT`` is the previous complete export, or, killed between the two renames,
missing with the previous export in ``….flairexport-old``. The next export of ``OUT`` reaps
both: a dead process's ``-old`` folder is renamed back to ``OUT`` when ``OUT`` is missing,
every other staged folder of a dead process of this host is deleted. Folders of live
processes, or of another host (whose processes cannot be probed), are left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from flair_pipeline.errors import InputError

#: Present inside a folder being written; absent from a complete export.
INCOMPLETE_MARK = "EXPORT-INCOMPLETE"
#: The export's own record, written last: what was exported, from where, what was left out.
RECORD = "flair-export.json"
STAGE_MARK = ".flairexport"
OLD_MARK = ".flairexport-old"
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sibling(out: Path, mark: str) -> Path:
    token = f"{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"
    return out.parent / f".{out.name}.{token}{mark}"


def reap(out: Path) -> list[Path]:
    """Clean what killed exports of `out` left beside it; return the folders handled.

    Args:
        out: The export folder.

    Returns:
        The staged or old folders of dead processes of this host that were deleted, or
        renamed back to `out` (an old export, when `out` is missing).
    """
    pattern = re.compile(
        rf"^\.{re.escape(out.name)}\.{re.escape(_HOST)}-(\d+)-[0-9a-f]{{8}}"
        rf"({re.escape(OLD_MARK)}|{re.escape(STAGE_MARK)})$"
    )
    handled: list[Path] = []
    if not out.parent.is_dir():
        return handled
    found = sorted(out.parent.iterdir(), key=lambda p: not p.name.endswith(OLD_MARK))
    for p in found:  # old folders first: one may have to become `out` again
        m = pattern.match(p.name)
        if m is None or _alive(int(m.group(1))):
            continue
        if m.group(2) == OLD_MARK and not out.exists():
            p.rename(out)
        else:
            shutil.rmtree(p, ignore_errors=True)
        handled.append(p)
    return handled


def _check_replaceable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / RECORD).is_file():
        raise InputError(
            f"{out}: exists, is not empty and is not an export written by flair-pipeline "
            f"(no {RECORD}); an export replaces its folder whole, so move this one away or "
            "choose another --out"
        )


@contextlib.contextmanager
def staged(out: str | Path) -> Iterator[Path]:
    """A fresh folder beside `out` to write the export into, swapped in on success.

    Args:
        out: The export folder (created, or replaced whole if it is an earlier export).

    Yields:
        The staged folder, holding the :data:`INCOMPLETE_MARK` marker.

    Raises:
        InputError: `out` exists and is not an export of ours.
    """
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    reap(out)
    _check_replaceable(out)
    stage = _sibling(out, STAGE_MARK)
    stage.mkdir()
    marker = stage / INCOMPLETE_MARK
    marker.write_text(
        f"export to {out} in progress (host {_HOST}, pid {os.getpid()}); if no such "
        "process runs, it was killed: this folder is incomplete, the next export deletes it\n"
    )
    try:
        yield stage
        marker.unlink()
        _swap(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _swap(stage: Path, out: Path) -> None:
    old = _sibling(out, OLD_MARK) if out.exists() else None
    if old is not None:
        out.rename(old)
    stage.rename(out)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
