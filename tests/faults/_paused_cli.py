"""``flair-pipeline`` that, once it holds its build locks, pauses at its first file write
until a file exists (the child process of ``test_locks.py``).

Run as ``python -m tests.faults._paused_cli GO_FILE materialize ...``: the first process to
lock a domain sits before its first fsync until GO_FILE appears, so the test can start a
second build of the same domain while the first is provably mid-build.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import flair_pipeline.io as io
from flair_pipeline.cli import main


def _arm(go: Path, timeout: float = 120.0) -> None:
    real = io._fsync

    def fsync(path: Path, directory: bool = False) -> None:
        deadline = time.monotonic() + timeout
        while not go.exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"{go} did not appear within {timeout} s")
            time.sleep(0.05)
        real(path, directory)

    io._fsync = fsync  # type: ignore[assignment]


if __name__ == "__main__":
    _arm(Path(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
