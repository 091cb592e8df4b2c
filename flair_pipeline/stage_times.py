"""Where the time of ``make demo`` goes: one line per process, one row per DVC stage.

``dvc repro`` prints no per-stage times. The demo sets :data:`ENV` for DVC's stages; each
``flair-pipeline`` process then ends with one :func:`usage_line` on stderr: its wall time
since the process started (imports included) and its CPU time (user + sys, of the
process and of its waited-for children such as DataLoader workers). :class:`StageClock`
reads DVC's merged output line by line and pairs each ``Running stage 'NAME':`` with the
wall time until the next stage and with that usage line.
"""

from __future__ import annotations

import os
import re
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ENV = "FLAIR_STAGE_TIMES"
_PREFIX = "stage usage:"
_USAGE = re.compile(
    rf"{_PREFIX} (?P<wall>[0-9.]+) s wall since start, (?P<cpu>[0-9.]+) s CPU "
    r"\(user (?P<user>[0-9.]+) s, sys (?P<sys>[0-9.]+) s\)"
)
_STAGE = re.compile(r"^Running stage '(?P<name>[^']+)':")


def usage_line() -> str:
    """This process's usage so far, as the one line :class:`StageClock` parses.

    Returns:
        ``stage usage: W s wall since start, C s CPU (user U s, sys S s)``: W from the
        process's creation time (so the interpreter start and every import count), C = U + S
        over this process and its terminated, waited-for children (``getrusage``).
    """
    wall = process_age_s()
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, sys_ = me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime
    return (
        f"{_PREFIX} {wall:.1f} s wall since start, {user + sys_:.1f} s CPU "
        f"(user {user:.1f} s, sys {sys_:.1f} s)"
    )


def process_age_s() -> float:
    """Seconds since this process started, from Linux's /proc (10 ms resolution).

    Returns:
        ``/proc/uptime`` minus the process's ``starttime`` (field 22 of
        ``/proc/self/stat``, clock ticks since boot; see proc(5)).
    """
    stat = Path("/proc/self/stat").read_text()
    start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # fields from 3 (state) on
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class StageTime:
    """One DVC stage's times.

    Wall seconds as DVC ran it (hashing and lock update included) and, when its
    ``flair-pipeline`` process reported it, that process's wall and CPU seconds.
    """

    name: str
    wall_s: float
    process_wall_s: float | None = None
    cpu_s: float | None = None


@dataclass
class StageClock:
    """Collects :class:`StageTime` rows from DVC's output lines, fed in order as they come.

    Args:
        clock: seconds, monotonic (``time.perf_counter`` unless a test passes another).
    """

    clock: Callable[[], float] = time.perf_counter
    stages: list[StageTime] = field(default_factory=list)
    _start: float | None = None

    def feed(self, line: str) -> None:
        """Read one line of DVC's output (a stage start, a usage line, or anything else)."""
        now = self.clock()
        if m := _STAGE.match(line.strip()):
            self._close(now)
            self.stages.append(StageTime(m["name"], 0.0))
            self._start = now
        elif (m := _USAGE.search(line)) and self.stages:
            self.stages[-1].process_wall_s = float(m["wall"])
            self.stages[-1].cpu_s = float(m["cpu"])

    def finish(self) -> list[StageTime]:
        """Close the last stage at the current time and return every stage, in run order.

        Returns:
            Every stage seen, its wall and CPU seconds closed.
        """
        self._close(self.clock())
        return self.stages

    def _close(self, now: float) -> None:
        if self.stages and self._start is not None:
            self.stages[-1].wall_s = now - self._start
            self._start = None


def format_table(stages: list[StageTime]) -> str:
    """A markdown table of the stages and their total (``-`` where a stage gave no usage).

    Args:
        stages: rows from :meth:`StageClock.finish`.

    Returns:
        The table, one row per stage, then a total row; empty when no stage ran.
    """
    if not stages:
        return ""

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    rows = ["| stage | wall s (DVC) | wall s (process) | CPU s (user+sys) |", "|---|---|---|---|"]
    rows += [
        f"| {s.name} | {s.wall_s:.1f} | {num(s.process_wall_s)} | {num(s.cpu_s)} |" for s in stages
    ]
    cpu = [s.cpu_s for s in stages if s.cpu_s is not None]
    rows.append(
        f"| total ({len(stages)} stages) | {sum(s.wall_s for s in stages):.1f} | | {sum(cpu):.1f} |"
    )
    return "\n".join(rows)
