"""SIGKILL of a build at a chosen point: the data on disk is one generation, never a mix.

The child process (tests/faults/_build.py) rebuilds a domain with a different patch count
(16 patches) over a first generation of 4 and is killed mid-way; the test then looks at
the files, runs the step again (as the next run would) and looks again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flair_pipeline.dataset import aerial_metadata as md
from flair_pipeline.dataset.generation import recover
from flair_pipeline.io import TEMP_MARK, remove_stale_temps, temp_path_for
from flair_pipeline.synthetic.world import WorldSummary
from tests.conftest import REPO
from tests.faults._build import build, tree

DOMAIN_INDEX = 0


def _child(
    raw: Path, dataset: Path, domain: str, n: int, fault: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.faults._build",
            str(raw),
            str(dataset),
            domain,
            str(n),
            fault,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _live(dataset: Path, domain: str) -> dict[str, str]:
    return {k: v for k, v in tree(dataset).items() if k.startswith(("aerial/", "labels/"))}


@pytest.fixture()
def first_generation(tiny_world: WorldSummary, tmp_path: Path):
    domain = tiny_world.domains[DOMAIN_INDEX].domain
    dataset = tmp_path / "dataset"
    assert build(tiny_world.out, dataset, domain, 4) == 4
    old = _live(dataset, domain)
    assert len(old) == 8  # 4 IMG + 4 MSK
    return tiny_world.out, dataset, domain, old


def test_kill_while_writing_leaves_the_old_generation(first_generation) -> None:
    raw, dataset, domain, old = first_generation
    proc = _child(raw, dataset, domain, 16, "kill-write:7")
    assert proc.returncode == -9, proc.stderr[-2000:]
    # the live folders hold exactly the first generation, byte for byte
    assert _live(dataset, domain) == old
    # the unfinished build is there, hidden, with a recognisable temp file in it
    leftovers = [k for k in tree(dataset) if not k.startswith(("aerial/", "labels/"))]
    assert leftovers and any(TEMP_MARK in k for k in leftovers)
    # the next run of the step removes it and swaps in the complete new generation
    assert build(raw, dataset, domain, 16) == 16
    files = tree(dataset)
    assert len([k for k in files if "/img/IMG_" in k]) == 16
    assert len([k for k in files if "/msk/MSK_" in k]) == 16
    assert all(k.startswith(("aerial/", "labels/")) for k in files), sorted(files)


def test_kill_between_the_two_renames_restores_the_old_generation(first_generation) -> None:
    raw, dataset, domain, old = first_generation
    proc = _child(raw, dataset, domain, 16, "kill-swap")
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (dataset / "aerial" / domain).exists()  # killed with the live folder aside
    done = recover(dataset, "aerial", domain)
    assert any("restored" in line for line in done)
    assert _live(dataset, domain) == old
    assert build(raw, dataset, domain, 16) == 16
    assert all(k.startswith(("aerial/", "labels/")) for k in tree(dataset))


def test_temp_file_of_a_killed_write_is_removed_by_the_next_run(tmp_path: Path) -> None:
    target = tmp_path / "metadata" / "domains" / "D033_2021.json"
    code = (
        "import os, signal, sys; import flair_pipeline.io as io;"
        "from flair_pipeline.dataset import aerial_metadata as md;"
        "io._fsync = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL);"
        f"md.write_json({{'a': 1}}, {str(target)!r})"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=60)
    assert proc.returncode == -9
    left = list(target.parent.iterdir())
    assert (
        len(left) == 1 and left[0].name.startswith(".D033_2021.json.") and TEMP_MARK in left[0].name
    )
    assert not target.exists()
    # a write in progress in this (live) process, and another file's temp: both kept
    live = temp_path_for(target)
    live.write_text("{")
    other = target.parent / ".D034_2021.json.h-1-0123abcd.flairtmp.json"
    other.write_text("{}")
    md.write_json({"a": 1}, target)  # the next run of the step that writes this file
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(
        [live.name, other.name, target.name]
    )
    assert json.loads(target.read_text()) == {"a": 1}
    # a step cleaning its own targets (another host's temps too)
    assert sorted(remove_stale_temps(target)) == [live]
