"""Per-stage times of `make demo` (issue 17): each `flair-pipeline` process's usage line,
and the table the demo builds from DVC's output."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flair_pipeline import stage_times
from flair_pipeline.cli import main
from flair_pipeline.demo import repro_timed
from flair_pipeline.dvc_tool import dvc_executable

from .conftest import REPO

USAGE = re.compile(r"stage usage: ([0-9.]+) s wall since start, ([0-9.]+) s CPU")


def test_usage_line_measures_the_process_from_its_start() -> None:
    # A fresh interpreter sleeps 0.4 s, then burns 0.5 s of CPU: its line must report at
    # least that, and no more wall time than the parent saw from before the spawn.
    code = textwrap.dedent("""
        import time
        time.sleep(0.4)
        t = time.process_time()
        while time.process_time() - t < 0.5:
            pass
        from flair_pipeline.stage_times import usage_line
        print(usage_line())
    """)
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    elapsed = time.time() - t0
    wall, cpu = map(float, USAGE.search(out.stdout).groups())
    assert cpu >= 0.5
    assert 0.9 <= wall <= elapsed + 0.1, (wall, elapsed)


def test_clock_pairs_each_stage_with_its_wall_time_and_usage_line() -> None:
    ticks = iter([0.0, 1.0, 4.0, 5.0, 6.0, 6.5, 10.0, 12.0, 13.0])
    clock = stage_times.StageClock(clock=lambda: next(ticks))
    for line in [
        "Running stage 'synth':\n",  # 0
        "> flair-pipeline synth\n",  # 1
        "stage usage: 3.5 s wall since start, 2.0 s CPU (user 1.5 s, sys 0.5 s)\n",  # 4
        "Updating lock file 'dvc.lock'\n",  # 5
        "Stage 'split' didn't change, skipping\n",  # 6: not a stage that ran
        "Running stage 'dataset@D033_2021':\n",  # 6.5
        "stage usage: 7.2 s wall since start, 9.8 s CPU (user 9.0 s, sys 0.8 s)\n",  # 10
        "Running stage 'compare':\n",  # 12: no usage line (not a flair-pipeline process)
    ]:
        clock.feed(line)
    rows = clock.finish()  # 13
    assert [(r.name, r.wall_s, r.process_wall_s, r.cpu_s) for r in rows] == [
        ("synth", 6.5 - 0.0, 3.5, 2.0),
        ("dataset@D033_2021", 12.0 - 6.5, 7.2, 9.8),
        ("compare", 13.0 - 12.0, None, None),
    ]
    table = stage_times.format_table(rows).splitlines()
    assert table[2] == "| synth | 6.5 | 3.5 | 2.0 |"
    assert table[4] == "| compare | 1.0 | - | - |"
    assert table[-1] == "| total (3 stages) | 13.0 | | 11.8 |"  # 6.5 + 5.5 + 1; 2.0 + 9.8
    assert stage_times.format_table([]) == ""


def test_cli_reports_its_usage_only_when_the_demo_asks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(stage_times.ENV, raising=False)
    assert main(["config"]) == 0
    assert "stage usage:" not in capsys.readouterr().err
    monkeypatch.setenv(stage_times.ENV, "1")
    assert main(["config", "--set", "nokey"]) == 1  # a failing command reports too
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: ") and USAGE.match(err[-1]), err


def test_demo_times_the_stages_dvc_runs(tmp_path: Path) -> None:
    # A real DVC repo with one flair-pipeline stage and one shell stage.
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  conf:\n    cmd: flair-pipeline config > conf.yaml\n    outs: [conf.yaml]\n"
        "  copy:\n    cmd: cp conf.yaml copy.yaml\n    deps: [conf.yaml]\n    outs: [copy.yaml]\n"
    )
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    subprocess.run([dvc_executable(), "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    lines: list[str] = []
    rows = repro_timed(tmp_path, echo=lines.append)
    assert [r.name for r in rows] == ["conf", "copy"], "".join(lines)
    conf, copy = rows
    assert conf.cpu_s is not None and conf.cpu_s > 0 and conf.process_wall_s <= conf.wall_s
    assert copy.cpu_s is None  # cp reports nothing
    assert (tmp_path / "copy.yaml").read_text().startswith("paths:")
