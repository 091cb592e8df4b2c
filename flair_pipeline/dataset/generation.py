"""A domain's per-patch folder rebuilt as one generation: build aside, then swap.

``aerial/<domain>`` (IMG) and ``labels/<domain>`` (MSK) are each rebuilt in a staging
folder beside the dataset root, ``.<kind>-<domain>.<pid>-<random>.flairstage/``, then
swapped in with two renames on the same file system: the live folder becomes
``.<kind>-<domain>.flairold``, the staged one takes its place, the old one is deleted.
A process killed at any point leaves either the old generation or the new one under
``<kind>/<domain>``, never a mix of patches from two parameter sets (issue 15):

- killed while building: the live folder was never touched; the staging folder is
  deleted by the next run of the step (:func:`recover`), which tells a dead build's
  folder from a live one's by the owner file in it (below);
- killed between the two renames: the live folder is missing and ``.flairold`` holds the
  old generation; :func:`recover` (run first by every step that reads or writes the
  folder) renames it back.

A reader that opens the folder during those two renames (microseconds) finds no folder
and fails loudly; it never reads a mix.

Each staging folder holds ``.owner``: its writer holds that file's lock
(:func:`flair_pipeline.locks.hold`) for as long as it builds, and wrote its pid, host,
boot id and start time in it. :func:`recover` deletes a staging folder only when its owner
is dead: the lock is free (the kernel freed it when the writer died) and, for a writer of
this machine, its pid is gone, reused or from another boot. A live writer's folder is kept,
whichever process runs the recovery (issue 30: a recovery used to delete a live build's
folder, and its next write recreated it and swapped in a partial generation).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from flair_pipeline.errors import StorageError
from flair_pipeline.locks import describe_holder, hold, holder_alive, is_held, read_holder

STAGE_MARK = ".flairstage"
OLD_MARK = ".flairold"
#: The owner file of a staging folder (locked by its writer, names it).
OWNER = ".owner"
#: A staging folder without an owner file younger than this is being created: kept.
_CREATING_S = 60.0


def _old(root: Path, kind: str, domain: str) -> Path:
    return root / f".{kind}-{domain}{OLD_MARK}"


def recover(root: str | Path, kind: str, domain: str) -> list[str]:
    """Finish or undo an interrupted swap of ``<root>/<kind>/<domain>``; return what was done.

    Restores the old generation if the live folder is missing, deletes a left-over old
    generation if the live folder exists, and deletes the staging folders of dead builds;
    a live build's staging folder is kept (:func:`owner_alive`).

    Args:
        root: The dataset root.
        kind: ``aerial`` or ``labels``.
        domain: A domain id.

    Returns:
        One line per action (or kept live folder), for the step's warnings.
    """
    root = Path(root)
    live, old = root / kind / domain, _old(root, kind, domain)
    done = []
    if old.is_dir():
        if live.is_dir():
            shutil.rmtree(old)
            done.append(f"deleted the previous generation {old}")
        else:
            live.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old, live)
            done.append(f"restored {live} from {old.name} (a swap was interrupted)")
    for stage in sorted(root.glob(f".{kind}-{domain}.*{STAGE_MARK}")):
        owner = stage / OWNER
        who = describe_holder(owner)
        if owner_alive(stage):
            done.append(f"kept {stage}: a live build is writing it ({who})")
            continue
        shutil.rmtree(stage, ignore_errors=True)
        why = "no writer recorded" if who == "holder unknown" else f"its writer, {who}, is gone"
        done.append(f"deleted the unfinished build {stage} ({why})")
    return done


def owner_alive(stage: Path) -> bool:
    """Whether the process that builds in staging folder `stage` is alive.

    Alive while it holds the lock of ``<stage>/.owner``; also alive when the lock is free
    but its record names a live process of this machine (a file system whose locks do
    not reach this process); a folder without an owner file is alive for its first
    minute (being created), dead after.

    Args:
        stage: A ``.flairstage`` folder.

    Returns:
        True to keep the folder, False to delete it.
    """
    owner = stage / OWNER
    if not owner.exists():
        try:
            return time.time() - stage.stat().st_mtime < _CREATING_S
        except FileNotFoundError:
            return False
    if is_held(owner):
        return True
    record = read_holder(owner)
    return record is not None and holder_alive(record) is True


@contextlib.contextmanager
def new_generation(root: str | Path, kind: str, domain: str) -> Iterator[Path]:
    """Yield a staging dataset root; on success swap its ``<kind>/<domain>`` in.

    Write the domain's files under the yielded root exactly as under the real one (same
    layout, e.g. ``DatasetLayout(stage)``). On an exception the staging folder is deleted
    and the live generation is left untouched. An empty build (no folder under the
    staging root) swaps in an empty generation.

    Args:
        root: The live dataset root (local folder).
        kind: The per-patch folder swapped as one generation (e.g. ``aerial``, ``labels``).
        domain: Domain id, e.g. ``D006_2020``.

    Yields:
        The staging root: a hidden folder ``.<kind>-<domain>.<pid>-<hex>`` under `root`.
    """
    root = Path(root)
    recover(root, kind, domain)
    root.mkdir(parents=True, exist_ok=True)
    stage = root / f".{kind}-{domain}.{os.getpid()}-{secrets.token_hex(4)}{STAGE_MARK}"
    stage.mkdir()
    try:
        with hold(stage / OWNER, f"{kind} of domain {domain}", stage.name):  # names the owner
            yield stage
            _swap_in(root, stage, kind, domain)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _swap_in(root: Path, stage: Path, kind: str, domain: str) -> None:
    """Swap the staged ``<kind>/<domain>`` in as the live generation (two renames).

    Raises:
        StorageError: A rename or the directory fsync failed (the live folder is kept or
            left at its old name ``_old``, recovered by the next build).
    """
    built, live, old = stage / kind / domain, root / kind / domain, _old(root, kind, domain)
    built.mkdir(parents=True, exist_ok=True)
    live.parent.mkdir(parents=True, exist_ok=True)
    try:
        if live.exists():
            os.replace(live, old)
        os.replace(built, live)
        fd = os.open(live.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"{live}: could not swap in the new generation ({exc})") from exc
    shutil.rmtree(old, ignore_errors=True)
