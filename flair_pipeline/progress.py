"""Progress of long work: a bar on a terminal, a plain line every few percent elsewhere.

Core functions that can run for minutes (a domain's IMG and MSK, a year of Sentinel-2, a
pack, an export, a map, an import) take an optional :class:`Progress` (default: none, they
never print) and count their items on a :class:`Task`. The front door chooses how it shows:

* :meth:`Progress.for_terminal`: the CLI. With stderr a TTY, a tqdm bar (counts, rate,
  ETA); otherwise (a log file, ``dvc repro``) one line every ``step`` percent and at the
  end, written to stderr; nothing under ``--quiet``.
* ``Progress(log=callback)``: the lines only, sent to `callback`. A Dagster asset passes
  ``context.log.info`` (``defs/adapter.py``), so the run's log shows them.

A line reads ``build-domain D033_2021 IMG: 120/2400 (5 %), 3.1 patches/s, ETA 12 min``;
the last one ``… 2400/2400 (100 %), 3.2 patches/s, done in 12.5 min``. Lines are throttled
by count, never by clock: one per ``step`` percent crossed (at most ``100 / step + 1`` per
task), so a log stays the same size whatever the machine's speed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any, TypeVar

from tqdm import tqdm

LineSink = Callable[[str], None]
#: Tag of a Dagster run whose assets also show their progress on this process's stderr (a
#: bar on a terminal, else the lines): the CLI's `materialize` runs in process and sets it.
STDERR_TAG = "flair/progress"
T = TypeVar("T")


def format_duration(seconds: float) -> str:
    """A duration as a person reads it: ``42 s``, ``12 min``, ``3.5 h``.

    Args:
        seconds: A duration in seconds (negative counts as 0).

    Returns:
        The duration, rounded to its unit.
    """
    s = max(0.0, seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


class Task:
    """One counted piece of work (``total`` items): advance it, close it at the end.

    Created by :meth:`Progress.task`; a context manager that closes itself.
    """

    def __init__(
        self,
        label: str,
        total: int,
        unit: str,
        *,
        log: LineSink | None = None,
        bar: IO[str] | None = None,
        step: float = 5.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """A task; see :meth:`Progress.task` (`log` for lines, `bar` for a tqdm bar)."""
        self.label, self.total, self.unit = label, max(0, int(total)), unit
        self.done = 0
        self._log, self._step, self._clock = log, step, clock
        self._start = clock()
        self._last_step = 0  # the last `step` index a line was written for
        self._closed = False
        self._bar: Any = None
        if bar is not None:
            self._bar = tqdm(
                total=self.total, desc=label, unit=f" {unit}", file=bar, dynamic_ncols=True
            )

    def advance(self, n: int = 1) -> None:
        """Count `n` more items done (a skipped item counts: it is finished).

        Args:
            n: How many items were finished since the last call.
        """
        if n <= 0 or self._closed:
            return
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        if self._log is None or self.total <= 0:
            return
        index = int(min(self.done, self.total) * 100 // (self._step * self.total))
        if index > self._last_step and self.done < self.total:
            self._last_step = index
            self._log(self.line())
        elif self.done >= self.total:
            self.close()

    def line(self, final: bool = False) -> str:
        """The task's state as one line (counts, percent, rate, ETA or time taken).

        Args:
            final: The task is over (the time taken instead of an ETA).

        Returns:
            ``<label>: <done>/<total> (<pct> %), <rate> <unit>/s, ETA <left>`` (at the end
            ``done in <time>`` instead of the ETA).
        """
        elapsed = self._clock() - self._start
        pct = 100 * self.done // self.total if self.total else 100
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if final or self.done >= self.total:
            tail = f"done in {format_duration(elapsed)}"
        elif rate > 0:
            tail = f"ETA {format_duration((self.total - self.done) / rate)}"
        else:
            tail = "ETA unknown"
        return f"{self.label}: {self.done}/{self.total} ({pct} %), {rate:.1f} {self.unit}/s, {tail}"

    def close(self) -> None:
        """End the task: the bar closes; the lines end with the final count (once)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        if self._log is not None:
            self._log(self.line(final=True))

    def __enter__(self) -> Task:
        """The task itself.

        Returns:
            This task, to call ``advance`` on.
        """
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the task; after an error only the bar closes (no final line)."""
        if exc_type is not None:
            self._closed = True
            if self._bar is not None:
                self._bar.close()
            return
        self.close()


class Progress:
    """How long work shows its progress: lines to a callback, a terminal bar, or nothing.

    Args:
        log: Where each progress line goes (e.g. Dagster's ``context.log.info``); None for
            no lines.
        bar: A stream for a tqdm bar instead of lines (a terminal); None for no bar.
        prefix: Put before every task's label (e.g. the command, ``build-domain``).
        step: A line every `step` percent (and one at the end).
    """

    def __init__(
        self,
        log: LineSink | None = None,
        *,
        bar: IO[str] | None = None,
        prefix: str = "",
        step: float = 5.0,
    ) -> None:
        """See the class.

        Raises:
            ValueError: `step` is not above 0 percent.
        """
        if step <= 0:
            raise ValueError(f"progress step must be > 0 percent, got {step}")
        self.log, self.bar, self.prefix, self.step = log, bar, prefix, step

    @classmethod
    def for_terminal(
        cls, prefix: str = "", *, quiet: bool = False, stream: IO[str] | None = None
    ) -> Progress:
        """The CLI's progress: a bar when `stream` is a TTY, lines otherwise, none if quiet.

        Args:
            prefix: Put before every task's label (the command's name).
            quiet: Show nothing (``--quiet``).
            stream: Where to show it (default: stderr).

        Returns:
            The :class:`Progress`.
        """
        out = stream if stream is not None else sys.stderr
        if quiet:
            return cls(prefix=prefix)
        if out.isatty():
            return cls(bar=out, prefix=prefix)

        def write(line: str) -> None:
            print(line, file=out, flush=True)

        return cls(write, prefix=prefix)

    def within(self, label: str) -> Progress:
        """The same progress with `label` added to the prefix (a domain, a step).

        Args:
            label: Put after the current prefix, e.g. the domain a provider works for.

        Returns:
            A :class:`Progress` writing to the same place.
        """
        full = f"{self.prefix} {label}".strip()
        return Progress(self.log, bar=self.bar, prefix=full, step=self.step)

    def task(self, label: str, total: int, unit: str = "items") -> Task:
        """Start counting `total` items of one piece of work.

        Args:
            label: What is counted, e.g. ``D033_2021 IMG``.
            total: How many items there are.
            unit: Their name in the rate (``patches``, ``windows``, ``scenes``).

        Returns:
            The :class:`Task` (use it as a context manager, or close it).
        """
        full = f"{self.prefix} {label}".strip()
        return Task(full, total, unit, log=self.log, bar=self.bar, step=self.step)


def task(progress: Progress | None, label: str, total: int, unit: str = "items") -> Task:
    """`progress`'s task, or a silent one when there is no progress to show.

    What a core function calls: ``with task(progress, "D033_2021 IMG", n, "patches") as t``.

    Args:
        progress: The caller's :class:`Progress`, or None (nothing shown).
        label: What is counted.
        total: How many items there are.
        unit: Their name in the rate.

    Returns:
        A :class:`Task`.
    """
    return (progress or Progress()).task(label, total, unit)


def each(
    progress: Progress | None,
    label: str,
    items: Iterable[T],
    unit: str = "items",
    total: int | None = None,
) -> Iterator[T]:
    """The items of `items`, counted on a task of `progress` as the loop takes the next one.

    ``for p in each(progress, "patches", patches, "patches"):`` in place of
    ``for p in patches:``; an item counts as done when the loop asks for the next, and the
    last line is written when the loop ends (none when it ends by an error).

    Args:
        progress: The caller's :class:`Progress`, or None (nothing shown).
        label: What is counted.
        items: The items (a sequence, or any iterable with `total`).
        unit: Their name in the rate.
        total: How many items there are (default: ``len(items)``).

    Yields:
        Each item, in order.
    """
    n = total if total is not None else len(items)  # type: ignore[arg-type]
    with task(progress, label, n, unit) as counter:
        for item in items:
            yield item
            counter.advance()
