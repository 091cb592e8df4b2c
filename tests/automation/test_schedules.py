"""The nightly catch-up condition, evaluated by Dagster's own automation evaluator."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from flair_pipeline.definitions import defs
from flair_pipeline.defs.automation import DOWNSTREAM_ASSETS, downstream_cron

DAY = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)


def _built(instance: dg.DagsterInstance, asset: str, domain: str | None = None) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=domain))


def _requested(result) -> set[str]:
    graph = defs.resolve_asset_graph()
    return {k.to_user_string() for k in graph.get_all_asset_keys() if result.get_num_requested(k)}


def test_downstream_waits_for_the_nightly_tick_then_catches_up() -> None:
    assert downstream_cron() == ("0 2 * * *", "UTC")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("domains", ["D033_2021"])
        evening = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, evaluation_time=DAY.replace(hour=20)
        )
        _built(instance, "dataset_metadata", "D033_2021")  # a new domain arrived
        late = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            evaluation_time=DAY.replace(hour=23),
            cursor=evaluation_cursor(evening),
        )
        assert late.total_requested == 0  # no tick yet: wait for the night
        night = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            evaluation_time=DAY.replace(hour=2) + dt.timedelta(1),
            cursor=evaluation_cursor(late),
        )
        graph = defs.resolve_asset_graph()
        expected = {
            k.to_user_string()
            for k in DOWNSTREAM_ASSETS.resolve(graph)
            if k.to_user_string() != "sentinel2_index"  # its parents did not change
        }
        assert "split_assignment" in expected
        assert _requested(night) == expected
        for name in expected:
            _built(instance, name)
        after = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            evaluation_time=DAY.replace(hour=3) + dt.timedelta(1),
            cursor=evaluation_cursor(night),
        )
        assert after.total_requested == 0  # handled: nothing until new data and a new tick
        next_night = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            evaluation_time=DAY.replace(hour=2, minute=5) + dt.timedelta(2),
            cursor=evaluation_cursor(after),
        )
        assert next_night.total_requested == 0  # a tick, but no new domain


def evaluation_cursor(result):
    return result.cursor
