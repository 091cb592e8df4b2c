"""`new_domains_sensor` evaluated against a real Dagster instance and real domain folders.

Folders from the tiny synthetic world are copied in one at a time, as a delivery would
arrive; each evaluation's cursor is fed to the next, as the daemon does. A folder is built
once it is complete and unchanged over two evaluations (`settle`), or at once with a READY
file written after the copy: copies by real rsync are paused at each of their stages and
the sensor evaluated there. The reading budget (bytes, seconds) is checked on sparse
domains by counting the bytes the process read (/proc/self/io).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import dagster as dg
import fsspec
import pytest
import yaml

from flair_pipeline.defs.assets.sources import domain_input_files, fingerprint
from flair_pipeline.defs.definitions import defs
from flair_pipeline.defs.resources import FlairConfig
from flair_pipeline.defs.sensors import (
    DOMAIN_ASSETS,
    new_domains_sensor,
    read_cursor,
)
from flair_pipeline.layout import RawLayout
from flair_pipeline.orchestration.run import materialize
from flair_pipeline.sources.synthetic import WorldSummary


def _flair(tmp: Path, raw: str | Path) -> FlairConfig:
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump({"paths": {"raw": str(raw), "dataset": str(tmp / "ds")}}))
    return FlairConfig(config_path=str(params))


def evaluate(instance: dg.DagsterInstance, flair: FlairConfig, cursor: str | None):
    ctx = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources={"flair": flair}
    )
    result = new_domains_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    for req in result.dynamic_partitions_requests or []:  # what the daemon does next
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return result


def settle(instance: dg.DagsterInstance, flair: FlairConfig, cursor: str | None):
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
    from flair_pipeline.sources.synth_ign import to_ign

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
