"""Two CLI builds of one domain at once are serialised by the per-(asset, domain) locks
(issue 15: ``flair-pipeline materialize`` runs in process and bypasses the run queue)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
import rasterio

from flair_pipeline.io import file_mode
from flair_pipeline.layout import DatasetLayout
from flair_pipeline.sources.synthetic import WorldSummary
from tests.conftest import REPO

DOMAIN = "D033_2021"
ASSETS = ("domain_sources", "patch_grid", "aerial_patches", "label_masks", "dataset_metadata")
SELECT = " or ".join(f"key:{a}" for a in ASSETS)
WAITING = re.compile(r"waiting for another build of domain D033_2021 \(pid (\d+)\): \S+ is locked")


def _start(go: Path, raw: Path, dataset: Path, home: Path, n: int) -> subprocess.Popen:
    """A paused CLI build of DOMAIN with at most `n` patches (the generation it writes)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.faults._paused_cli",
            str(go),
            "materialize",
            "--select",
            SELECT,
            "--partition",
            DOMAIN,
            "--set",
            f"paths.raw={raw}",
            "--set",
            f"paths.dataset={dataset}",
            "--set",
            "sampling.patch_size=64",
            "--set",
            f"sampling.max_patches_per_domain={n}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DAGSTER_HOME": str(home)},
    )


def _collect(proc: subprocess.Popen, lines: list[str]) -> threading.Thread:
    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_two_builds_of_one_domain_run_one_after_the_other(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    raw, dataset, home, go = tmp_path / "raw", tmp_path / "ds", tmp_path / "home", tmp_path / "go"
    shutil.copytree(tiny_world.out / "domains" / DOMAIN, raw / "domains" / DOMAIN)
    sizes = {3: None, 5: None}
    procs = {n: _start(go, raw, dataset, home, n) for n in sizes}
    errs: dict[int, list[str]] = {n: [] for n in sizes}
    readers = [_collect(procs[n], errs[n]) for n in sizes]
    waiter = None
    deadline = time.monotonic() + 120
    while waiter is None and time.monotonic() < deadline:
        waiter = next((n for n in sizes if any(WAITING.search(x) for x in errs[n])), None)
        assert all(p.poll() is None for p in procs.values()), errs  # the first one is paused
        time.sleep(0.1)
    assert waiter is not None, errs
    first = next(n for n in sizes if n != waiter)
    line = next(x for x in errs[waiter] if WAITING.search(x))
    assert int(WAITING.search(line).group(1)) == procs[first].pid, line
    go.touch()
    for n, proc in procs.items():
        assert proc.wait(timeout=180) == 0, "".join(errs[n])
    for t in readers:
        t.join(timeout=10)

    # one generation on disk: the second build's, complete (IMG, MSK, metadata agree)
    layout = DatasetLayout(dataset)
    imgs = sorted(p.name.removeprefix("IMG_") for p in layout.root.rglob("IMG_*.tif"))
    msks = sorted(p.name.removeprefix("MSK_") for p in layout.root.rglob("MSK_*.tif"))
    assert len(imgs) == waiter and imgs == msks, (imgs, msks)
    for p in layout.root.rglob("*.tif"):
        with rasterio.open(p) as src:
            assert src.width == src.height == 64
    hidden = [p for p in dataset.rglob(".*")]
    assert hidden == [], hidden  # no staging folder, no temp file left

    # and the runs did not overlap: the second started after the first ended
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = sorted(
            instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": DOMAIN})),
            key=lambda r: r.create_timestamp,
        )
        assert [r.dagster_run.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
        assert runs[0].end_time <= runs[1].start_time, [(r.start_time, r.end_time) for r in runs]
        # each run names its process, for run monitoring (flair_pipeline/orchestration/launcher.py)
        pids = [r.dagster_run.tags["flair/worker_pid"] for r in runs]
        assert pids == [str(procs[first].pid), str(procs[waiter].pid)]

    # lock files: kept (never unlinked, see flair_pipeline/locks.py), with the umask's mode
    locks = sorted((home / "locks").iterdir())
    assert [p.name for p in locks] == sorted(f"{a}@{DOMAIN}.lock" for a in ASSETS)
    assert {stat.S_IMODE(p.stat().st_mode) for p in locks} == {file_mode()}


def test_opening_the_instance_waits_for_the_instance_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dagster_instance() opens (and on a new home, creates the SQLite schemas of) the
    instance only while holding <home>/instance.lock: with the lock held elsewhere it waits,
    and it opens once the lock is released. Without the lock two processes starting
    together on a new home both ran alembic's migrations and one died ("more than one
    head"), seen once in three full runs of the test above; this test does not depend on
    that race. Planted bug (the `with FileLock` removed): the opener is done within the
    5 s the lock is held here (it takes about 1 s on an idle machine), and the test fails."""
    from filelock import FileLock

    from flair_pipeline.orchestration.run import dagster_instance

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # dagster_instance sets it; restored after
    opened: list[dg.DagsterInstance] = []
    errors: list[BaseException] = []

    def open_instance() -> None:
        try:
            opened.append(dagster_instance(home))
        except BaseException as e:  # reported by the assert below
            errors.append(e)

    with FileLock(home / "instance.lock"):
        opener = threading.Thread(target=open_instance, daemon=True)
        opener.start()
        opener.join(timeout=5)
        assert opener.is_alive() and not opened, "the instance opened while the lock was held"
    opener.join(timeout=60)
    assert not errors, errors
    assert len(opened) == 1
    with opened[0] as instance:  # a working instance on the new home's storage
        assert instance.get_runs() == []
        assert Path(instance.root_directory) == home
