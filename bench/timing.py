"""The timing shape every benchmark shares: CPU seconds of this process and wall seconds.

CPU time is what the figures quote (per core): a loaded machine (2 cores shared by several
people) does not inflate it, while wall time then counts other jobs' turns too.

    with timed() as t:
        work()
    print(f"{n / t.cpu_s:.0f} items/s/core ({n / t.wall_s:.0f} wall)")
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Timing:
    """Seconds spent inside a :func:`timed` block: this process's CPU time, and wall time."""

    cpu_s: float = 0.0
    wall_s: float = 0.0


@contextmanager
def timed() -> Iterator[Timing]:
    """Measure the block: the yielded Timing is filled in when the block ends."""
    t = Timing()
    c0, w0 = time.process_time(), time.perf_counter()
    try:
        yield t
    finally:
        t.cpu_s = time.process_time() - c0
        t.wall_s = time.perf_counter() - w0
