"""A process that holds a dataset lock or a staging folder until told to go (``test_locks.py``).

``python -m tests.faults._lock_holder stage ROOT STAGE DOMAIN READY GO``: holds the
(stage, domain) lock of dataset ROOT. ``python -m tests.faults._lock_holder generation ROOT
KIND DOMAIN READY GO``: opens a new generation of ``<KIND>/<DOMAIN>``, writes
``mark.txt`` (its pid) in it, then waits; on GO the generation is swapped in. READY is
created once it holds; it waits for GO (at most 120 s) or to be killed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from flair_pipeline.dataset.domain_lock import stage_locks
from flair_pipeline.dataset.generation import new_generation


def _wait(ready: Path, go: Path) -> None:
    ready.touch()
    deadline = time.monotonic() + 120
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{go} did not appear within 120 s")
        time.sleep(0.05)


if __name__ == "__main__":
    mode, root, name, domain = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    ready, go = Path(sys.argv[5]), Path(sys.argv[6])
    if mode == "stage":
        with stage_locks(root, [name], domain):
            _wait(ready, go)
    elif mode == "generation":
        with new_generation(root, name, domain) as stage:
            folder = stage / name / domain
            folder.mkdir(parents=True)
            (folder / "mark.txt").write_text(str(os.getpid()))
            _wait(ready, go)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
