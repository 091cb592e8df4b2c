"""Runs that end: the generated instance config, one run per domain at a time, and sensor
run keys that survive a revert (issue 15, point 3)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.test_utils import create_run_for_test
from dagster._utils.tags import TagConcurrencyLimitsCounter

from flair_pipeline.defs.sensors import read_cursor
from flair_pipeline.orchestration.instance import OLD_GENERATED_YAMLS, prepare_home
from flair_pipeline.orchestration.launcher import FlairRunLauncher
from tests.automation.test_sensor import _copy, _flair, _fp, settle


def test_generated_instance_monitors_retries_and_queues(tmp_path: Path) -> None:
    home = prepare_home(tmp_path / "home")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert instance.run_monitoring_enabled
        # a launcher whose workers the monitoring daemon can probe (the default one cannot)
        assert isinstance(instance.run_launcher, FlairRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_max_resume_run_attempts == 0
        assert instance.run_monitoring_start_timeout_seconds == 300
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False  # input errors
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        # Dagster's own queue counter, fed with our limits: a second run of a domain waits
        running = create_run_for_test(instance, tags={"dagster/partition": "D033_2021"})
        counter = TagConcurrencyLimitsCounter(limits, [running])
        same = create_run_for_test(instance, tags={"dagster/partition": "D033_2021"})
        other = create_run_for_test(instance, tags={"dagster/partition": "D004_2021"})
        assert counter.is_blocked(same)
        assert not counter.is_blocked(other)
    finally:
        instance.dispose()


def test_old_generated_config_is_upgraded_and_a_written_one_kept(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    written = "telemetry:\n  enabled: true\n"
    (own / "dagster.yaml").write_text(written)
    prepare_home(own)
    assert (own / "dagster.yaml").read_text() == written
    assert len(OLD_GENERATED_YAMLS) == 2  # telemetry only; then without the run launcher
    for i, text in enumerate(OLD_GENERATED_YAMLS):
        old = tmp_path / f"old{i}"
        old.mkdir()
        (old / "dagster.yaml").write_text(text)
        prepare_home(old)
        config = yaml.safe_load((old / "dagster.yaml").read_text())
        assert config["run_monitoring"]["enabled"]
        assert config["run_launcher"]["class"] == "FlairRunLauncher"
        assert sorted(p.name for p in old.iterdir()) == ["dagster.yaml"]  # no temp file left


def _launch(instance: dg.DagsterInstance, result) -> list[str]:
    """What the daemon does with a tick: one run per request whose run key is new."""
    keys = []
    for req in result.run_requests:
        used = instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": req.run_key}))
        if not used:
            tags = {
                **req.tags,
                "dagster/run_key": req.run_key,
                "dagster/partition": req.partition_key,
            }
            create_run_for_test(instance, tags=tags)
            keys.append(req.run_key)
    return keys


def test_a_reverted_domain_is_rebuilt(tiny_world, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _copy(tiny_world, raw, "D033_2021")
    flair = _flair(tmp_path, raw)
    info = raw / "domains" / "D033_2021" / "domain.json"
    original = info.read_text()
    with dg.instance_for_test() as instance:
        # each evaluation is two ticks: a domain is decided once its files stay unchanged
        first = settle(instance, flair, None)
        fp_a = _fp(raw, "D033_2021")
        info.write_text(original + "\n")  # an edit ...
        second = settle(instance, flair, first.cursor)
        shutil.copy(tiny_world.out / "domains" / "D033_2021" / "domain.json", info)  # reverted
        third = settle(instance, flair, second.cursor)
        launched = [_launch(instance, r) for r in (first, second, third)]
        assert [len(k) for k in launched] == [1, 1, 1], launched  # the revert is built too
        assert third.run_requests[0].tags["flair/fingerprint"] == fp_a
        assert len({k[0] for k in launched}) == 3

        info.write_text(original + "\n\n")  # a cursor lost (reset) then a change
        reset = settle(instance, flair, None)
        assert _launch(instance, reset) == [f"D033_2021@{_fp(raw, 'D033_2021')[:16]}#4"]
        assert read_cursor(reset.cursor)["D033_2021"]["n"] == 4
