"""`new_domains_sensor` evaluated against a real Dagster instance and real domain folders.

Folders from the tiny synthetic world are copied in one at a time, as a delivery would
arrive; each evaluation's cursor is fed to the next, as the daemon does. A folder is built
once it is complete and unchanged over two evaluations (`settle`), or at once with a READY
file written after the copy: copies by real rsync are paused at each of their stages and
the sensor evaluated there. The reading budget (bytes, seconds) is checked on sparse
domains by counting the bytes the process read (/proc/self/io).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import string
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import fsspec
import pytest
import yaml

from flair_pipeline.definitions import defs
from flair_pipeline.defs.assets.sources import domain_input_files, fingerprint
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.defs.sensors import (
    DOMAIN_ASSETS,
    Budget,
    new_domains_sensor,
    read_cursor,
    scan_raw_root,
)
from flair_pipeline.layout import RawLayout
from flair_pipeline.orchestration.run import materialize
from flair_pipeline.synthetic.world import WorldSummary


def _flair(tmp: Path, raw: str | Path) -> PipelineConfigResource:
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump({"paths": {"raw": str(raw), "dataset": str(tmp / "ds")}}))
    return PipelineConfigResource(config_path=str(params))


def evaluate(instance: dg.DagsterInstance, flair: PipelineConfigResource, cursor: str | None):
    ctx = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources={"flair": flair}
    )
    result = new_domains_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    for req in result.dynamic_partitions_requests or []:  # what the daemon does next
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return result


def settle(instance: dg.DagsterInstance, flair: PipelineConfigResource, cursor: str | None):
    """Two evaluations over unchanged folders, as two daemon ticks a minute apart.

    The first sees files it has not seen before (a copy may still be running): it requests
    nothing and says so; the second, seeing the same stats, decides. Returns the second.
    """
    first = evaluate(instance, flair, cursor)
    assert not first.run_requests, [r.run_key for r in first.run_requests]
    return evaluate(instance, flair, first.cursor)


def _fp(raw: Path, domain: str) -> str:
    layout = RawLayout(raw)
    return fingerprint(domain_input_files(layout, domain), layout.domain(domain))


def _copy(world: WorldSummary, raw: Path, domain: str, skip: tuple[str, ...] = ()) -> None:
    shutil.copytree(
        world.out / "domains" / domain,
        raw / "domains" / domain,
        ignore=shutil.ignore_patterns(*skip),
    )


def test_new_changed_incomplete_and_misnamed_folders(tiny_world, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "domains").mkdir(parents=True)
    flair = _flair(tmp_path, raw)
    with dg.instance_for_test() as instance:
        empty = evaluate(instance, flair, None)
        assert not empty.run_requests and "no new or changed" in empty.skip_reason.skip_message

        _copy(tiny_world, raw, "D033_2021")  # a new complete domain: partition + run
        seen = evaluate(instance, flair, empty.cursor)  # ... once its files stay unchanged
        assert not seen.run_requests and not seen.dynamic_partitions_requests
        assert "D033_2021 still changing" in seen.skip_reason.skip_message
        first = evaluate(instance, flair, seen.cursor)
        fp = _fp(raw, "D033_2021")
        assert [(r.partition_key, r.run_key) for r in first.run_requests] == [
            ("D033_2021", f"D033_2021@{fp[:16]}#1")
        ]
        assert first.dynamic_partitions_requests[0].partition_keys == ["D033_2021"]
        assert instance.get_dynamic_partitions("domains") == ["D033_2021"]

        again = evaluate(instance, flair, first.cursor)  # the same folder: nothing
        assert not again.run_requests and not again.dynamic_partitions_requests

        info = raw / "domains" / "D033_2021" / "domain.json"
        os.utime(info, (1e9, 1e9))  # touched, same bytes: hashed again, not rebuilt
        touched = settle(instance, flair, again.cursor)
        assert not touched.run_requests
        assert read_cursor(touched.cursor) != read_cursor(again.cursor)  # new signature kept

        info.write_text(info.read_text() + "\n")  # changed input: a new run key, same partition
        changed = settle(instance, flair, touched.cursor)
        new_fp = _fp(raw, "D033_2021")
        assert new_fp != fp
        assert [r.run_key for r in changed.run_requests] == [f"D033_2021@{new_fp[:16]}#2"]
        assert not changed.dynamic_partitions_requests

        _copy(tiny_world, raw, "D004_2021", skip=("dsm.tif",))  # still being copied
        (raw / "domains" / "scratch_copy").mkdir()
        partial = evaluate(instance, flair, changed.cursor)
        assert not partial.run_requests
        reason = partial.skip_reason.skip_message
        assert "D004_2021 not ready (dsm.tif)" in reason
        assert "'scratch_copy' is not a domain id" in reason
        assert "D004_2021" not in instance.get_dynamic_partitions("domains")

        shutil.copy(
            tiny_world.out / "domains" / "D004_2021" / "dsm.tif", raw / "domains" / "D004_2021"
        )
        done = settle(instance, flair, partial.cursor)  # completed: built once settled
        assert [r.partition_key for r in done.run_requests] == ["D004_2021"]


def test_domain_built_before_the_sensor_is_not_rebuilt(tiny_world, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _copy(tiny_world, raw, "D036_2020")
    flair = _flair(tmp_path, raw)
    with dg.instance_for_test() as instance:
        materialize("key:domain_sources", ["D036_2020"], flair, instance=instance)  # the CLI
        result = settle(instance, flair, None)
        assert not result.run_requests
        assert read_cursor(result.cursor)["D036_2020"]["fp"] == _fp(raw, "D036_2020")


def test_fsspec_url_root(tiny_world, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    src = tiny_world.out / "domains" / "D033_2021"
    for f in src.rglob("*"):
        if f.is_file():
            fs.pipe(f"/sensor-test/raw/domains/D033_2021/{f.relative_to(src)}", f.read_bytes())
    fs.pipe("/sensor-test/raw/domains/D004_2021/domain.json", json.dumps({}).encode())
    flair = _flair(tmp_path, "memory://sensor-test/raw")
    try:
        with dg.instance_for_test() as instance:
            result = settle(instance, flair, None)
            fp = _fp(tiny_world.out, "D033_2021")  # same bytes, same relative names
            assert [r.run_key for r in result.run_requests] == [f"D033_2021@{fp[:16]}#1"]
            assert instance.get_dynamic_partitions("domains") == ["D033_2021"]
    finally:
        fs.rm("/sensor-test", recursive=True)


def test_sensor_targets_every_per_domain_asset() -> None:
    graph = defs.resolve_asset_graph()
    per_domain = {k for k in graph.get_all_asset_keys() if graph.get(k).is_partitioned}
    assert DOMAIN_ASSETS.resolve(graph) == per_domain, "add the new asset to DOMAIN_ASSETS"
    sensor = defs.resolve_sensor_def("new_domains_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED


@pytest.mark.parametrize("cursor", [None, "", "not json", '{"v": 0}'])
def test_unreadable_cursor_starts_over(cursor: str | None) -> None:
    assert read_cursor(cursor) == {}


def test_an_ign_flavour_domain_is_seen_built_once_and_rebuilt_when_a_tile_changes(
    tiny_world, tmp_path: Path
) -> None:
    """A domain delivered as IGN's products (domain.yaml, JPEG 2000 RVB + IRC, .asc DTM,
    LiDAR HD DSM, OCS GE labels): the sensor requests it, not again once `domain_sources`
    recorded the same fingerprint, and again when a re-delivered IRC tile changes."""
    from flair_pipeline.synthetic.ign import to_ign

    raw = tmp_path / "raw"
    folder = raw / "domains" / "D036_2020"
    to_ign(tiny_world.out / "domains" / "D036_2020", folder)
    products = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert "domain.yaml" in products and not (folder / "domain.json").exists()
    flair = _flair(tmp_path, raw)
    with dg.instance_for_test() as instance:
        first = settle(instance, flair, None)
        fp = _fp(raw, "D036_2020")
        assert [(r.partition_key, r.run_key) for r in first.run_requests] == [
            ("D036_2020", f"D036_2020@{fp[:16]}#1")
        ]
        assert instance.get_dynamic_partitions("domains") == ["D036_2020"]
        # the fingerprint covers every product file, whatever the spec's globs pick
        assert [
            Path(f).relative_to(folder).as_posix()
            for f in domain_input_files(RawLayout(raw), "D036_2020")
        ] == products
        materialize("key:domain_sources", ["D036_2020"], flair, instance=instance)
        built = settle(instance, flair, None)  # a fresh cursor: the recorded version counts
        assert not built.run_requests, built.run_requests

        irc = sorted(folder.glob("ortho/*-IRC-E080.jp2"))[0]
        with irc.open("ab") as fh:  # a re-delivered tile: other bytes, same name
            fh.write(b"\0")
        changed = settle(instance, flair, built.cursor)
        new_fp = _fp(raw, "D036_2020")
        assert new_fp != fp
        assert [r.run_key for r in changed.run_requests] == [f"D036_2020@{new_fp[:16]}#1"]


# --- issue 29: folders copied in while the sensor ticks --------------------------------


def _names(folder: Path) -> dict[str, int]:
    """Relative name -> size of every file under `folder`, hidden ones included."""
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            p = Path(d) / f
            with contextlib.suppress(FileNotFoundError):  # renamed away while listing
                out[p.relative_to(folder).as_posix()] = p.stat().st_size
    return out


def _sha(folder: Path, names: list[str]) -> str:
    """The fingerprint's definition, by hand: sha256 over each relative name then its bytes."""
    h = hashlib.sha256()
    for n in names:
        h.update(n.encode())
        h.update((folder / n).read_bytes())
    return h.hexdigest()


def _rsync(src: Path, dest_parent: Path, on_stage: Callable[[], None]) -> None:
    """Copy `src` into `dest_parent` with real rsync, stopped at each of its stages.

    rsync -a, slowed down with --bwlimit, is polled; whenever the set of file names under
    the destination changes (a temp file created, a file renamed into place) its process
    group is stopped (SIGSTOP), `on_stage` is called, and it is continued.
    """
    dest = dest_parent / src.name
    proc = subprocess.Popen(
        ["rsync", "-a", "--bwlimit=400", str(src), f"{dest_parent}/"],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    last: frozenset[str] | None = None
    try:
        while proc.poll() is None:
            if frozenset(_names(dest)) != last:
                os.killpg(proc.pid, signal.SIGSTOP)
                time.sleep(0.02)  # let a write in progress land before looking
                last = frozenset(_names(dest))
                try:
                    on_stage()
                finally:
                    os.killpg(proc.pid, signal.SIGCONT)
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def _copy_like_rsync(src: Path, dest_parent: Path, on_stage: Callable[[], None]) -> None:
    """rsync's order and temp names in Python (where rsync is not installed).

    Per folder, its files in sorted order, then its subfolders; each file written to a
    hidden ``.<name>.XXXXXX`` beside its target (half, a stage, the rest), given the
    source's mtime and renamed into place (a stage).
    """

    def copy_dir(s: Path, d: Path) -> None:
        d.mkdir(parents=True, exist_ok=True)
        entries = sorted(s.iterdir(), key=lambda p: p.name)
        for f in (p for p in entries if p.is_file()):
            data = f.read_bytes()
            tmp = d / f".{f.name}.{''.join(random.choices(string.ascii_letters, k=6))}"
            tmp.write_bytes(data[: len(data) // 2])
            on_stage()
            with tmp.open("ab") as fh:
                fh.write(data[len(data) // 2 :])
            os.utime(tmp, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns))
            tmp.rename(d / f.name)
            on_stage()
        for sub in (p for p in entries if p.is_dir()):
            copy_dir(sub, d / sub.name)

    copy_dir(src, dest_parent / src.name)


@pytest.fixture(scope="module")
def ign_domain(tiny_world, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """D036_2020 as IGN delivers it: domain.yaml, 4 RVB + 4 IRC .jp2 tiles, .asc DTM, …"""
    from flair_pipeline.synthetic.ign import to_ign

    out = tmp_path_factory.mktemp("ign") / "D036_2020"
    to_ign(tiny_world.out / "domains" / "D036_2020", out)
    return out


@pytest.mark.parametrize("layout", ["spec", "raw"])
def test_a_folder_copied_in_by_rsync_is_built_once_complete_and_settled(
    layout: str, tiny_world, ign_domain: Path, tmp_path: Path
) -> None:
    """The sensor ticks at every stage of a real rsync: no request while the copy runs (only
    domain.yaml there, 2 of 4 tiles, a tile in rsync's hidden temp file, even over two
    ticks), exactly one, with the fingerprint of the whole source, once it has settled."""
    if layout == "spec":
        src = ign_domain
        inputs = sorted(_names(src))
    else:
        src = tiny_world.out / "domains" / "D033_2021"
        tiles = sorted(f"ortho/{p.name}" for p in (src / "ortho").glob("*.tif"))
        inputs = [*tiles, "dsm.tif", "dtm.tif", "labels.gpkg", "domain.json"]
    raw = tmp_path / "raw"
    (raw / "domains").mkdir(parents=True)
    dest = raw / "domains" / src.name
    flair = _flair(tmp_path, raw)
    stages: list[list[str]] = []
    with dg.instance_for_test() as instance:
        cursor = evaluate(instance, flair, None).cursor

        def tick() -> None:  # the sensor's tick at this stage of the copy
            nonlocal cursor
            names = sorted(_names(dest))
            stages.append(names)
            result = evaluate(instance, flair, cursor)
            assert not result.run_requests, names
            temps = [n for n in names if n.rsplit("/", 1)[-1].startswith(".")]
            if temps:  # a copy stalled in the middle of a file, over a second tick
                again = evaluate(instance, flair, result.cursor)
                assert not again.run_requests, names
                assert f"copy in progress: {temps[0]}" in again.skip_reason.skip_message
                result = again
            cursor = result.cursor

        copy = _rsync if shutil.which("rsync") else _copy_like_rsync
        copy(src, raw / "domains", tick)
        assert sorted(_names(dest)) == sorted(_names(src))  # the copy is whole
        after = []
        for _ in range(3):  # ticks after the copy: built once, when seen unchanged
            result = evaluate(instance, flair, cursor)
            cursor = result.cursor
            after.append(result.run_requests)
    assert any(any("/." in f"/{n}" for n in s) for s in stages), stages  # a temp file seen
    assert len(stages) >= 4, stages
    if layout == "spec":  # the spec arrives first (sorted order): alone, it is not enough
        assert any(s and all(n == "domain.yaml" or "/." in n for n in s) for s in stages)
    requests = [r for rs in after for r in rs]
    assert len(requests) == 1, after
    fp = _sha(dest, inputs)
    assert requests[0].run_key == f"{src.name}@{fp[:16]}#1"
    assert requests[0].tags["flair/fingerprint"] == fp


def test_ready_marker_builds_at_once_unless_written_before_the_files(
    tiny_world, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    flair = _flair(tmp_path, raw)
    with dg.instance_for_test() as instance:
        _copy(tiny_world, raw, "D033_2021")
        (raw / "domains" / "D033_2021" / "READY").touch()  # written after the copy
        first = evaluate(instance, flair, None)  # no wait for the files to settle
        fp = _fp(tiny_world.out, "D033_2021")  # READY is not an input
        assert [r.run_key for r in first.run_requests] == [f"D033_2021@{fp[:16]}#1"]

        early = raw / "domains" / "D004_2021"  # a READY that landed before the files
        early.mkdir()
        (early / "READY").touch()
        shutil.copytree(tiny_world.out / "domains" / "D004_2021", early, dirs_exist_ok=True)
        _copy(  # READY, but an input missing
            tiny_world, raw, "D036_2020", skip=("labels.gpkg",)
        )
        (raw / "domains" / "D036_2020" / "READY").touch()
        second = evaluate(instance, flair, first.cursor)
        assert not second.run_requests
        reason = second.skip_reason.skip_message
        assert "D004_2021 still changing" in reason
        assert "D036_2020 not ready (labels.gpkg)" in reason
        third = evaluate(instance, flair, second.cursor)  # D004_2021 settled
        assert [r.partition_key for r in third.run_requests] == ["D004_2021"]


SPEC = """
ortho:
  - {name: rvb, glob: "ortho/*-E080.jp2", bands: {R: 1, G: 2, B: 3}}
  - {name: irc, glob: "ortho/*-IRC.jp2", bands: {NIR: 1}}
dsm: {glob: "dsm/*.tif"}
dtm: {glob: "dtm/*.asc", crs: "EPSG:2154"}
labels: {glob: "labels/OCS.shp", field: code}
acquisition: {date: "2021-06-01", time: "10:30:00", camera: "UCE"}
"""


def test_a_spec_domain_waits_for_every_input_its_spec_names(tmp_path: Path) -> None:
    """Each glob must match a visible file (case ignored), a shapefile needs .shx and .dbf;
    an unreadable domain.yaml is named, never built."""
    raw = tmp_path / "raw"
    folder = raw / "domains" / "D033_2021"
    for name in ("ortho/a-E080.jp2", "dsm/x.tif", "dtm/y.asc", "labels/OCS.shp", "labels/ocs.DBF"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    (folder / "ortho" / ".a-IRC.jp2.Ab12Cd").write_bytes(b"x")  # rsync's temp: not a tile
    (folder / "domain.yaml").write_text(SPEC)
    (raw / "domains" / "D004_2021").mkdir()
    (raw / "domains" / "D004_2021" / "domain.yaml").write_text("ortho: [\n")
    flair = _flair(tmp_path, raw)
    with dg.instance_for_test() as instance:
        result = evaluate(instance, flair, None)
        reason = result.skip_reason.skip_message
        assert (
            "D033_2021 not ready (ortho 'irc' 'ortho/*-IRC.jp2' (no file yet), "
            "labels/ocs.shx, copy in progress: ortho/.a-IRC.jp2.Ab12Cd)"
        ) in reason
        assert "D004_2021 not ready (domain.yaml unreadable (" in reason
        (folder / "ortho" / ".a-IRC.jp2.Ab12Cd").rename(folder / "ortho" / "a-IRC.jp2")
        (folder / "labels" / "OCS.SHX").write_bytes(b"x")
        done = settle(instance, flair, result.cursor)
        assert [r.partition_key for r in done.run_requests] == ["D033_2021"]


# --- issue 30: the reading budget at FLAIR scale ---------------------------------------

MIB = 1 << 20


def _sparse_domain(raw: Path, domain: str, size: int) -> None:
    """A raw-layout domain whose one tile is a sparse file of `size` bytes (zeros, no disk)."""
    folder = raw / "domains" / domain
    (folder / "ortho").mkdir(parents=True)
    with (folder / "ortho" / "tile.tif").open("wb") as fh:
        fh.truncate(size)
    for name in ("dsm.tif", "dtm.tif", "labels.gpkg", "domain.json"):
        (folder / name).write_bytes(name.encode())


def _sparse_fp(domain: str, size: int) -> str:
    """Its fingerprint by hand (sha256 of names and bytes), without reading the files."""
    h = hashlib.sha256(b"ortho/tile.tif")
    for _ in range(size // MIB):
        h.update(bytes(MIB))
    for name in ("dsm.tif", "dtm.tif", "labels.gpkg", "domain.json"):
        h.update(name.encode() + name.encode())
    return h.hexdigest()


def _bytes_read() -> int:
    """Bytes this process got from read() calls so far (the kernel's count, /proc/self/io)."""
    io = Path("/proc/self/io")
    if not io.exists():
        pytest.skip("needs /proc/self/io (Linux) to count the bytes read")
    return int(io.read_text().split("rchar:")[1].split()[0])


def _touch_all(raw: Path, domain: str, when: float) -> None:
    """A re-delivery of the same bytes: every file of the domain gets a new mtime."""
    for p in (raw / "domains" / domain).rglob("*"):
        if p.is_file():
            os.utime(p, (when, when))


def test_reading_is_budgeted_in_bytes_and_carried_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted by the kernel: a tick never reads more than its byte budget; hashing that does
    not fit waits for the next tick (named in the skip reason), first in line; a domain
    larger than the whole budget is requested on its stats without a single read."""
    size = 24 * MIB
    domains = ["D004_2021", "D013_2020", "D033_2021", "D036_2020"]
    raw = tmp_path / "raw"
    for d in domains:
        _sparse_domain(raw, d, size)
    flair = _flair(tmp_path, raw)
    with dg.instance_for_test() as instance:
        before = _bytes_read()
        seen = evaluate(instance, flair, None)  # first look: stats only
        assert _bytes_read() - before < 2 * MIB
        first = evaluate(instance, flair, seen.cursor)  # default budget (4 GB): all hashed
        assert {r.partition_key: r.tags["flair/fingerprint"] for r in first.run_requests} == {
            d: _sparse_fp(d, size) for d in domains
        }

        for d in domains:  # re-delivered, same bytes; a tick may read 50 MiB
            _touch_all(raw, d, 1.7e9)
        monkeypatch.setenv("FLAIR_SENSOR_HASH_GB", str(50 / 1024))
        settling = evaluate(instance, flair, first.cursor)
        before = _bytes_read()
        tick = evaluate(instance, flair, settling.cursor)
        read = _bytes_read() - before
        assert 2 * size <= read <= 50 * MIB + 2 * MIB, read / MIB  # two fit, not three
        assert not tick.run_requests  # same bytes: nothing rebuilt
        reason = tick.skip_reason.skip_message
        assert "D033_2021: 24.0 MB left to hash at the next tick (budget spent)" in reason
        assert "D036_2020: 24.0 MB left to hash at the next tick (budget spent)" in reason
        cursor = read_cursor(tick.cursor)
        assert [d for d in domains if cursor[d].get("deferred")] == ["D033_2021", "D036_2020"]

        big = raw / "domains" / "D036_2020" / "ortho" / "tile.tif"
        with big.open("r+b") as fh:  # meanwhile one of them really changed
            fh.seek(size - 1)
            fh.write(b"\1")
        before = _bytes_read()  # next tick: D033_2021, carried over, is hashed first; ...
        moved = evaluate(instance, flair, tick.cursor)
        assert size <= _bytes_read() - before <= size + 2 * MIB
        assert not moved.run_requests  # ... D036_2020's stats moved: it waits to settle
        assert "D036_2020 still changing" in moved.skip_reason.skip_message
        before = _bytes_read()
        carried = evaluate(instance, flair, moved.cursor)
        assert size <= _bytes_read() - before <= size + 2 * MIB
        assert [r.partition_key for r in carried.run_requests] == ["D036_2020"]
        h = hashlib.sha256(b"ortho/tile.tif")
        h.update(bytes(size - 1) + b"\1")
        for name in ("dsm.tif", "dtm.tif", "labels.gpkg", "domain.json"):
            h.update(name.encode() + name.encode())
        assert carried.run_requests[0].tags["flair/fingerprint"] == h.hexdigest()
        assert not any(v.get("deferred") for v in read_cursor(carried.cursor).values())

        _sparse_domain(raw, "D069_2020", 30 * 2**30)  # FLAIR size: 30 GB, over the budget
        quiet = evaluate(instance, flair, carried.cursor)
        before = _bytes_read()
        huge = evaluate(instance, flair, quiet.cursor)
        assert _bytes_read() - before < 2 * MIB  # not one byte of the 30 GB
        (request,) = huge.run_requests
        stat_key = request.tags["flair/stat_key"]
        assert request.run_key == f"D069_2020@stat:{stat_key[:16]}#1"
        assert "flair/fingerprint" not in request.tags


def test_time_budget_stops_a_slow_hash(tmp_path: Path) -> None:
    """Out of time in the middle of a domain: the tick's first hash is not retried forever
    (the domain is requested on its stats), the next one waits for the next tick."""
    raw = tmp_path / "raw"
    for d in ("D004_2021", "D013_2020"):
        _sparse_domain(raw, d, 8 * MIB)
    with dg.instance_for_test() as instance:
        seen = scan_raw_root(str(raw), {}, instance)
        first = scan_raw_root(str(raw), seen.cursor, instance)
        assert set(first.requests) == {"D004_2021", "D013_2020"}
        for d in ("D004_2021", "D013_2020"):
            _touch_all(raw, d, 1.7e9)
        settling = scan_raw_root(str(raw), first.cursor, instance)
        before = _bytes_read()
        tick = scan_raw_root(str(raw), settling.cursor, instance, Budget(2**30, 0.0))
        assert _bytes_read() - before <= 2 * MIB  # stopped after its first MiB
        assert tick.requests == {"D004_2021": None}  # decided on its stats
        assert "not hashed within 0 s" in tick.unread["D004_2021"]
        assert list(tick.deferred) == ["D013_2020"] and tick.cursor["D013_2020"]["deferred"]


def test_a_version_1_cursor_keeps_fingerprints_and_change_counts(
    tiny_world, tmp_path: Path
) -> None:
    """An older cursor (no inode in its stat signatures) costs a look and a hash, not a
    rebuild: its fingerprints and change counts are kept."""
    raw = tmp_path / "raw"
    _copy(tiny_world, raw, "D033_2021")
    fp = _fp(raw, "D033_2021")
    old = json.dumps({"v": 1, "domains": {"D033_2021": {"sig": "0" * 64, "fp": fp, "n": 3}}})
    flair = _flair(tmp_path, raw)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("domains", ["D033_2021"])
        same = settle(instance, flair, old)
        assert not same.run_requests
        assert read_cursor(same.cursor)["D033_2021"]["n"] == 3
        info = raw / "domains" / "D033_2021" / "domain.json"
        info.write_text(info.read_text() + "\n")
        changed = settle(instance, flair, same.cursor)
        assert [r.run_key for r in changed.run_requests] == [
            f"D033_2021@{_fp(raw, 'D033_2021')[:16]}#4"
        ]
