"""Two builds of one domain at once never write it together, whatever their front door
(issue 30): the per-(stage, domain) locks live next to the data (``<dataset>/.locks``,
``flair_pipeline/dataset/domain_lock.py``) and are taken inside the build's step functions,
so two CLI ``materialize`` on two Dagster homes, ``materialize`` and ``build-domain``, or a
Dagster step and anything else, run one after the other; the second waits after one line
naming the holder, then rebuilds. Recovery deletes only a dead writer's staging folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import geopandas as gpd
import pytest
import rasterio

from flair_pipeline.config import PipelineConfig
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.domain_lock import STAGES
from flair_pipeline.dataset.generation import recover
from flair_pipeline.dataset.sources_record import record_domain_sources
from flair_pipeline.io import file_mode
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.synthetic.world import WorldSummary
from tests.conftest import REPO

DOMAIN = "D033_2021"
SELECT = " or ".join(f"key:{a}" for a in STAGES)
WAITING = re.compile(
    r"waiting for another build of domain D033_2021 \(pid (\d+) on host (\S+), "
    r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\): (\w+) is locked \((\S+)\)"
)


def _cli(go: Path, home: Path, *args: str) -> subprocess.Popen:
    """``flair-pipeline ARGS`` that, once it holds its locks, pauses at its first write
    until `go` exists (tests/faults/_paused_cli.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults._paused_cli", str(go), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DAGSTER_HOME": str(home)},
    )


def _settings(raw: Path, dataset: Path, n: int) -> list[str]:
    sets = [f"paths.raw={raw}", f"paths.dataset={dataset}", "sampling.patch_size=64"]
    sets.append(f"sampling.max_patches_per_domain={n}")
    return [x for s in sets for x in ("--set", s)]


def _materialize(go: Path, raw: Path, dataset: Path, home: Path, n: int) -> subprocess.Popen:
    """A paused CLI build of DOMAIN with at most `n` patches (the generation it writes)."""
    return _cli(
        go, home, "materialize", "--select", SELECT, "--partition", DOMAIN,
        *_settings(raw, dataset, n),
    )  # fmt: skip


def _build_domain(go: Path, raw: Path, dataset: Path, home: Path, n: int) -> subprocess.Popen:
    """A paused ``build-domain`` of DOMAIN (no Dagster at all) with at most `n` patches."""
    return _cli(go, home, "build-domain", DOMAIN, *_settings(raw, dataset, n))


def _collect(proc: subprocess.Popen, lines: list[str]) -> threading.Thread:
    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _until(what: str, check: Callable[[], object], timeout: float = 120.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _holder_pid(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text() or "null")["pid"])
    except (OSError, TypeError, ValueError, KeyError):
        return None


def _assert_one_generation(dataset: Path, n: int) -> None:
    """Exactly one complete generation of `n` patches: the grid's, every IMG and MSK on it,
    the metadata listing them; no staging folder; lock files free (empty, umask mode)."""
    grid = gpd.read_file(dataset / "metadata" / "patch_grid" / f"{DOMAIN}.gpkg", layer="patches")
    ids = sorted(grid["patch_id"])
    assert len(ids) == n, ids
    imgs = sorted(p.name[4:-4] for p in dataset.rglob("IMG_*.tif"))
    msks = sorted(p.name[4:-4] for p in dataset.rglob("MSK_*.tif"))
    assert imgs == msks == ids, (imgs, msks, ids)
    layout = DatasetLayout(dataset)
    for row in grid.itertuples():  # each file on its grid cell (from this grid, not another)
        minx, _, _, maxy = row.geometry.bounds
        for path in (
            layout.img(DOMAIN, row.zone, row.patch_id),
            layout.msk(DOMAIN, row.zone, row.patch_id),
        ):
            with rasterio.open(path) as src:
                assert src.width == src.height == 64, path
                assert abs(src.transform.c - minx) < 1e-6 and abs(src.transform.f - maxy) < 1e-6
    meta = json.loads((dataset / "metadata" / "domains" / f"{DOMAIN}.json").read_text())
    assert sorted(meta["patches"]) == [f"IMG_{i}" for i in ids]
    hidden = sorted(str(p.relative_to(dataset)) for p in dataset.rglob(".*"))
    assert hidden == [".locks"], hidden  # no staging folder, no temp file left
    locks = sorted((dataset / ".locks").rglob("*.lock"))
    assert [str(p.relative_to(dataset)) for p in locks] == sorted(
        f".locks/{s}/{DOMAIN}.lock" for s in STAGES
    )
    assert all(p.read_text() == "" for p in locks)  # released: no holder named
    assert {stat.S_IMODE(p.stat().st_mode) for p in locks} == {file_mode()}


def _runs(home: Path) -> list[dg.RunRecord]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return list(instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": DOMAIN})))


def test_two_homes_build_one_domain_one_after_the_other(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """Two ``materialize`` of one domain on two DAGSTER_HOMEs (two users): the home's own
    locks and run queue cannot see each other; the dataset's locks do. Planted bug (the
    dataset locks removed from run.py and the step functions): no waiting line, the test
    fails at its first assert (and on disk IMG of one run mix with MSK of the other)."""
    raw, dataset, go = tmp_path / "raw", tmp_path / "ds", tmp_path / "go"
    shutil.copytree(tiny_world.out / "domains" / DOMAIN, raw / "domains" / DOMAIN)
    homes = {3: tmp_path / "home-a", 5: tmp_path / "home-b"}
    procs = {n: _materialize(go, raw, dataset, home, n) for n, home in homes.items()}
    errs: dict[int, list[str]] = {n: [] for n in homes}
    readers = [_collect(procs[n], errs[n]) for n in homes]

    def waiting() -> int | None:
        assert all(p.poll() is None for p in procs.values()), errs  # the first one is paused
        return next((n for n in homes if any(WAITING.search(x) for x in errs[n])), None)

    waiter = int(_until(f"a waiting line {errs}", waiting))  # type: ignore[arg-type]
    first = next(n for n in homes if n != waiter)
    found = next(m for x in errs[waiter] if (m := WAITING.search(x)))
    assert int(found.group(1)) == procs[first].pid and found.group(2) == socket.gethostname()
    assert Path(found.group(4)).parent.parent == dataset / ".locks"  # next to the data
    go.touch()
    for n, proc in procs.items():
        assert proc.wait(timeout=240) == 0, "".join(errs[n])
    for t in readers:
        t.join(timeout=10)

    _assert_one_generation(dataset, waiter)  # the second build's, complete
    # a truthful status on each home: both SUCCESS, and the runs did not overlap
    (a,), (b,) = _runs(homes[first]), _runs(homes[waiter])
    assert [a.dagster_run.status, b.dagster_run.status] == [dg.DagsterRunStatus.SUCCESS] * 2
    assert a.end_time <= b.start_time, (a.start_time, a.end_time, b.start_time)


def test_build_domain_and_materialize_of_one_domain_one_after_the_other(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """``build-domain`` (no Dagster, no home) holds every step of the domain for its whole
    build; ``materialize`` (Dagster, in process) waits with the holder's line, then
    rebuilds: its generation is the one on disk, and its run (started after the wait) is
    SUCCESS. Planted bug (``@holds(*STAGES)`` removed from build_domain_patches): the
    paused build-domain holds only ``domain_sources``, never ``aerial_patches``, and the
    test fails at its first `_until`."""
    raw, dataset, go = tmp_path / "raw", tmp_path / "ds", tmp_path / "go"
    shutil.copytree(tiny_world.out / "domains" / DOMAIN, raw / "domains" / DOMAIN)
    home = tmp_path / "home"
    first = _build_domain(go, raw, dataset, tmp_path / "unused-home", 3)
    first_err: list[str] = []
    readers = [_collect(first, first_err)]
    lock = dataset / ".locks" / "aerial_patches" / f"{DOMAIN}.lock"
    _until("build-domain to hold the domain", lambda: _holder_pid(lock) == first.pid)
    cli = _materialize(go, raw, dataset, home, 5)
    cli_err: list[str] = []
    readers.append(_collect(cli, cli_err))

    def waiting() -> re.Match[str] | None:
        assert cli.poll() is None and first.poll() is None, (first_err, cli_err)
        return next((m for x in cli_err if (m := WAITING.search(x))), None)

    found = _until("materialize's waiting line", waiting)
    assert int(found.group(1)) == first.pid, found.group(0)  # type: ignore[union-attr]
    assert _runs(home) == []  # no run started while waiting
    assert list(dataset.rglob("IMG_*.tif")) == []  # nothing written meanwhile
    go.touch()
    out, _ = first.communicate(timeout=240)
    assert first.returncode == 0, "".join(first_err)
    assert cli.wait(timeout=240) == 0, "".join(cli_err)
    for t in readers:
        t.join(timeout=10)
    assert f"{DOMAIN}: 3 patches" in out  # build-domain's truthful summary of its build
    _assert_one_generation(dataset, 5)  # materialize's, the second
    (run,) = _runs(home)
    assert run.dagster_run.status == dg.DagsterRunStatus.SUCCESS


def _holder(mode: str, root: Path, name: str, ready: Path, go: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.faults._lock_holder",
            mode,
            str(root),
            name,
            DOMAIN,
            *(str(ready), str(go)),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_step_function_waits_for_the_lock_of_its_stage(
    tiny_world: WorldSummary, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lock is in the core step (what the UI's, the sensor's and Dask's runs call), not
    in a front door: ``record_domain_sources`` called directly waits while another process
    holds ``domain_sources`` of the domain (one line on stderr naming it), and writes once
    it is free. Planted bug (``@holds`` removed from record_domain_sources): the record is
    written at once, no line."""
    dataset, ready, go = tmp_path / "ds", tmp_path / "ready", tmp_path / "go"
    holder = _holder("stage", dataset, "domain_sources", ready, go)
    _until("the holder to hold the lock", ready.exists)
    done: list[object] = []
    record = dataset / "metadata" / "sources" / f"{DOMAIN}.json"
    raw, layout = RawLayout(tiny_world.out), DatasetLayout(dataset)
    thread = threading.Thread(
        target=lambda: done.append(
            record_domain_sources(DomainContext.open(DOMAIN, raw, layout, PipelineConfig()))
        ),
        daemon=True,
    )
    thread.start()
    err: list[str] = []
    _until("the waiting line", lambda: err.append(capsys.readouterr().err) or "".join(err))
    line = "".join(err)
    assert WAITING.search(line) and f"pid {holder.pid} " in line, line
    time.sleep(1.0)
    assert thread.is_alive() and not done and not record.exists()
    go.touch()
    assert holder.wait(timeout=60) == 0, holder.communicate()
    thread.join(timeout=60)
    assert done and record.is_file()


def test_recovery_keeps_a_live_writers_staging_folder_and_reaps_a_dead_ones(
    tmp_path: Path,
) -> None:
    """Two writers open a new generation of ``aerial/D033_2021`` (the second's recovery,
    run while the first is writing, keeps the first's folder); one is SIGKILLed; a
    recovery then deletes the dead one's folder only, and the live one swaps its
    generation in, complete. Planted bug (recover deleting every staging folder, as
    before issue 30): the live writer's folder is gone at the first assert."""
    root = tmp_path / "ds"
    ready = {k: tmp_path / f"ready-{k}" for k in "ab"}
    go = {k: tmp_path / f"go-{k}" for k in "ab"}
    procs = {}
    for k in "ab":  # one after the other: b's own recovery runs while a is writing
        procs[k] = _holder("generation", root, "aerial", ready[k], go[k])
        _until(f"writer {k}", ready[k].exists)
    stages = {
        k: next(p for p in root.glob(f".aerial-{DOMAIN}.{procs[k].pid}-*.flairstage")) for k in "ab"
    }
    assert all(s.is_dir() for s in stages.values())  # b's recovery kept a's folder
    owner = json.loads((stages["a"] / ".owner").read_text())
    assert owner["pid"] == procs["a"].pid and owner["host"] == socket.gethostname()
    assert {"boot_id", "started", "since"} <= owner.keys()

    os.kill(procs["a"].pid, signal.SIGKILL)
    procs["a"].wait(timeout=30)
    done = recover(root, "aerial", DOMAIN)
    assert not stages["a"].exists() and stages["b"].is_dir(), done
    assert (
        f"deleted the unfinished build {stages['a']} (its writer, pid {procs['a'].pid} on host"
        in done[0]
    )
    assert done[1].startswith(
        f"kept {stages['b']}: a live build is writing it (pid {procs['b'].pid} "
    )
    assert (stages["b"] / "aerial" / DOMAIN / "mark.txt").read_text() == str(procs["b"].pid)

    go["b"].touch()
    assert procs["b"].wait(timeout=60) == 0, procs["b"].communicate()
    assert (root / "aerial" / DOMAIN / "mark.txt").read_text() == str(procs["b"].pid)
    assert sorted(p.name for p in root.iterdir()) == ["aerial"]  # no staging folder left


def test_a_dead_writers_folder_is_reaped_even_if_its_pid_is_reused(tmp_path: Path) -> None:
    """An owner file whose lock is free and whose record names this very (live) process
    but another start time is a dead writer's (the pid was reused): reaped. A folder
    without an owner file is kept during its first minute, reaped after."""
    root = tmp_path / "ds"
    reused = root / f".labels-{DOMAIN}.1-aa{'.flairstage'}"
    (reused / "labels" / DOMAIN).mkdir(parents=True)
    import psutil

    record = {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": "", "since": 0}
    record["started"] = psutil.Process().create_time() - 3600  # an older process's pid
    (reused / ".owner").write_text(json.dumps(record))
    young, old = (root / f".labels-{DOMAIN}.{k}.flairstage" for k in ("2-bb", "3-cc"))
    young.mkdir()
    old.mkdir()
    os.utime(old, (time.time() - 120, time.time() - 120))
    done = recover(root, "labels", DOMAIN)
    assert not reused.exists() and not old.exists() and young.is_dir(), done


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


def test_metadata_check_fails_on_img_msk_of_another_grid(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """Dagster runs of one domain from two homes hold one step's lock at a time, so a
    step of one run may land between two of the other's (a new grid after the IMG and MSK
    were built): the metadata step then fails ``img_msk_pairs`` naming the patches, rather
    than describing files of another grid. Planted bug (the `_on_cell` test removed from
    write_domain_metadata): the check passes and the test fails."""
    from flair_pipeline.config import config_from_dict
    from flair_pipeline.dataset.build import build_domain_patches
    from flair_pipeline.dataset.metadata_step import write_domain_metadata
    from flair_pipeline.dataset.sampling import read_patch_grid, write_patch_grid

    raw, layout = RawLayout(tiny_world.out), DatasetLayout(tmp_path / "ds")
    cfg = config_from_dict({"sampling": {"patch_size": 64, "max_patches_per_domain": 3}})
    assert build_domain_patches(DomainContext.open(DOMAIN, raw, layout, cfg)).metadata.passed
    # another run's grid step in between: the same patch ids and zones, cells 2 pixels east
    grid = read_patch_grid(layout.patch_grid(DOMAIN))
    moved = grid.copy()
    moved["geometry"] = grid.geometry.translate(xoff=0.4)
    moved["x_centroid"] = grid["x_centroid"] + 0.4
    write_patch_grid(moved, layout.patch_grid(DOMAIN))
    report = write_domain_metadata(DomainContext.open(DOMAIN, raw, layout, cfg))
    assert not report.passed and report.patches == 0
    assert sorted(p.split(":")[0] for p in report.problems) == sorted(grid["patch_id"])
    assert all("not on the current patch grid" in p for p in report.problems), report.problems
