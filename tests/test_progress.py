"""flair_pipeline/progress.py: lines throttled by count (one per 5 % crossed, one at the end),
a bar on a terminal, nothing when quiet (issue 26, item 4)."""

from __future__ import annotations

import io
import re

import pytest

from flair_pipeline.progress import Progress, format_duration, task

LINE = re.compile(
    r"^(?P<label>.+): (?P<done>\d+)/(?P<total>\d+) \((?P<pct>\d+) %\), [\d.]+ \w+/s, "
)


def _expected_counts(total: int, step: float) -> list[int]:
    """By hand: the first count at or past each multiple of `step` percent, then the total."""
    out = []
    for k in range(1, int(100 // step) + 1):
        threshold = k * step * total / 100
        first = next(d for d in range(1, total + 1) if d >= threshold)
        if first < total and first not in out:
            out.append(first)
    return [*out, total]


@pytest.mark.parametrize(
    ("total", "step"), [(200, 5.0), (2400, 5.0), (7, 5.0), (1, 5.0), (50, 10.0)]
)
def test_one_line_per_step_crossed_and_one_at_the_end(total: int, step: float) -> None:
    lines: list[str] = []
    with Progress(lines.append, prefix="build-domain", step=step).task(
        "D1 IMG", total, "patches"
    ) as t:
        for _ in range(total):
            t.advance()
    counts = [int(LINE.match(s)["done"]) for s in lines]  # type: ignore[index]
    assert counts == _expected_counts(total, step)
    assert all(s.startswith("build-domain D1 IMG: ") for s in lines)
    assert all(f"/{total} (" in s for s in lines)
    pcts = [int(LINE.match(s)["pct"]) for s in lines]  # type: ignore[index]
    assert pcts == sorted(pcts) and pcts[-1] == 100
    assert "done in" in lines[-1] and all("ETA" in s for s in lines[:-1])


def test_advancing_by_chunks_writes_one_line_per_call_at_most() -> None:
    lines: list[str] = []
    with task(Progress(lines.append), "pack", 100, "patches") as t:
        t.advance(30)  # crosses 5 steps at once: one line
        t.advance(70)
    assert [int(LINE.match(s)["done"]) for s in lines] == [30, 100]  # type: ignore[index]


def test_an_unfinished_task_ends_with_its_count_and_no_line_after_an_error() -> None:
    lines: list[str] = []
    with task(Progress(lines.append), "x", 10) as t:
        t.advance(3)
    assert lines[-1].startswith("x: 3/10 (30 %)") and "done in" in lines[-1]
    lines.clear()
    with pytest.raises(RuntimeError), task(Progress(lines.append), "y", 10) as t:
        t.advance(1)
        raise RuntimeError("boom")
    assert [s.split(":")[0] for s in lines] == ["y"]  # the 10 % line only


def test_quiet_and_no_progress_write_nothing() -> None:
    err = io.StringIO()
    with Progress.for_terminal("cmd", quiet=True, stream=err).task("a", 5) as t:
        t.advance(5)
    with task(None, "b", 5) as t:
        t.advance(5)
    assert err.getvalue() == ""


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_and_a_log_gets_lines() -> None:
    tty, log = _Tty(), io.StringIO()
    for stream in (tty, log):
        with Progress.for_terminal("pack", stream=stream).task("D1", 40, "patches") as t:
            for _ in range(40):
                t.advance()
    assert "40/40" in tty.getvalue() and "\r" in tty.getvalue()  # tqdm redraws in place
    assert "ETA" not in tty.getvalue()  # tqdm's own format, not our lines
    lines = log.getvalue().splitlines()
    assert len(lines) == 20 and lines[-1].startswith("pack D1: 40/40 (100 %)")


def test_durations_read_as_a_person_reads_them() -> None:
    assert [format_duration(s) for s in (3, 89, 720, 5400, 12600)] == [
        "3 s",
        "89 s",
        "12 min",
        "1.5 h",
        "3.5 h",
    ]
