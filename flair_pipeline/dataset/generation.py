"""A domain's per-patch folder rebuilt as one generation: build aside, then swap.

``aerial/<domain>`` (IMG) and ``labels/<domain>`` (MSK) are each rebuilt in a staging
folder beside the dataset root, ``.<kind>-<domain>.<pid>-<random>.flairstage/``, then
swapped in with two renames on the same file system: the live folder becomes
``.<kind>-<domain>.flairold``, the staged one takes its place, the old one is deleted.
A process killed at any point leaves either the old generation or the new one under
``<kind>/<domain>``, never a mix of patches from two parameter sets (issue 15):

- killed while building: the live folder was never touched; the staging folder is
  deleted by the next run of the step (:func:`recover`);
- killed between the two renames: the live folder is missing and ``.flairold`` holds the
  old generation; :func:`recover` (run first by every step that reads or writes the
  folder) renames it back.

A reader that opens the folder during those two renames (microseconds) finds no folder
and fails loudly; it never reads a mix.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from flair_pipeline.errors import StorageError

STAGE_MARK = ".flairstage"
OLD_MARK = ".flairold"


def _old(root: Path, kind: str, domain: str) -> Path:
    return root / f".{kind}-{domain}{OLD_MARK}"


def recover(root: str | Path, kind: str, domain: str) -> list[str]:
    """Finish or undo an interrupted swap of ``<root>/<kind>/<domain>``; return what was done.

    Restores the old generation if the live folder is missing, deletes a left-over old
    generation if the live folder exists, and deletes staging folders of dead runs.
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
    for stage in root.glob(f".{kind}-{domain}.*{STAGE_MARK}"):
        shutil.rmtree(stage, ignore_errors=True)
        done.append(f"deleted the unfinished build {stage}")
    return done


@contextlib.contextmanager
def new_generation(root: str | Path, kind: str, domain: str) -> Iterator[Path]:
    """Yield a staging dataset root; on success swap its ``<kind>/<domain>`` in.

    Write the domain's files under the yielded root exactly as under the real one (same
    layout, e.g. ``DatasetLayout(stage)``). On an exception the staging folder is deleted
    and the live generation is left untouched. An empty build (no folder under the
    staging root) swaps in an empty generation.
    """
    root = Path(root)
    recover(root, kind, domain)
    root.mkdir(parents=True, exist_ok=True)
    stage = root / f".{kind}-{domain}.{os.getpid()}-{secrets.token_hex(4)}{STAGE_MARK}"
    stage.mkdir()
    try:
        yield stage
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
    finally:
        shutil.rmtree(stage, ignore_errors=True)
