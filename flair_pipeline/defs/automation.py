"""Nightly catch-up of the all-domain assets, with declarative automation.

Per-domain assets are built by `new_domains_sensor` as domains arrive. Everything that
reads all domains (`split_assignment`, `sentinel2_index`, the models, their evaluations
and comparison) must then be brought up to date, but not after every single domain:
training is hours on a GPU. So they carry :func:`nightly_catch_up`, evaluated by the
`downstream_automation` sensor:

* once a cron tick has passed (``FLAIR_DOWNSTREAM_CRON``, default ``0 2 * * *``, in
  ``FLAIR_DOWNSTREAM_TZ``, default UTC) since the asset was last requested or updated,
* if one of its parents was updated since then, or is being requested in this same
  evaluation (so split → models → evaluations → comparison go in one run), or if the
  asset was never built while its parents exist,
* and nothing it reads is still running (it waits, then runs, rather than skip a night).

Why declarative automation rather than a plain schedule: a schedule would retrain every
night whether or not a domain arrived, or re-implement Dagster's "what changed since"
bookkeeping by hand. The condition is per asset, composes with conditions the asset
authors set themselves (those win), and is tested with Dagster's own evaluator.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import dagster as dg

from flair_pipeline.defs.sensors import DOMAIN_ASSETS

DEFAULT_CRON = "0 2 * * *"


def downstream_cron() -> tuple[str, str]:
    """The catch-up cron and its timezone, from FLAIR_DOWNSTREAM_CRON / FLAIR_DOWNSTREAM_TZ.

    Returns:
        ``(cron, timezone)``: the variables' values, else ``"0 2 * * *"`` and ``"UTC"``.
    """
    return (
        os.environ.get("FLAIR_DOWNSTREAM_CRON", DEFAULT_CRON),
        os.environ.get("FLAIR_DOWNSTREAM_TZ", "UTC"),
    )


def nightly_catch_up(
    cron: str, timezone: str = "UTC"
) -> dg.AutomationCondition[dg.AssetKey | dg.AssetCheckKey]:
    """Run after each `cron` tick when a parent changed since the last run (see module).

    Returns:
        The condition labelled ``nightly_catch_up(<cron>, <timezone>)``: a tick passed since
        the asset was last requested or updated, a parent updated since then or requested now
        (or the asset missing while its parents exist), and nothing it reads in progress.
    """
    handled = dg.AutomationCondition.newly_requested() | dg.AutomationCondition.newly_updated()
    changed = (
        dg.AutomationCondition.any_deps_updated().since(handled)
        | dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested())
        | (dg.AutomationCondition.missing() & ~dg.AutomationCondition.any_deps_missing())
    )
    return (
        # dagster types since_last_handled's self as AutomationCondition[AssetKey | AssetCheckKey]
        dg.AutomationCondition.cron_tick_passed(cron, timezone).since_last_handled()  # type: ignore[misc]
        & changed
        & ~dg.AutomationCondition.in_progress()
        & ~dg.AutomationCondition.any_deps_in_progress()
    ).with_label(f"nightly_catch_up({cron}, {timezone})")


def automate_downstream(
    assets: Sequence[dg.AssetsDefinition],
    condition: dg.AutomationCondition[dg.AssetKey | dg.AssetCheckKey] | None = None,
) -> list[dg.AssetsDefinition]:
    """`assets` with `condition` on every all-domain asset without one.

    `assets` with `condition` (default: the nightly catch-up) on every unpartitioned
    asset that has parents and no condition of its own: the all-domain assets.

    Returns:
        One definition per asset of `assets`, in order; only the specs of the all-domain
        assets without a condition of their own are given `condition`.
    """
    condition = condition or nightly_catch_up(*downstream_cron())

    def add(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.partitions_def is None and spec.deps and spec.automation_condition is None:
            return spec.replace_attributes(automation_condition=condition)
        return spec

    return [a.map_asset_specs(add) for a in assets]


#: The all-domain assets: everything downstream of the per-domain ones.
DOWNSTREAM_ASSETS = DOMAIN_ASSETS.downstream(include_self=False)

downstream_automation = dg.AutomationConditionSensorDefinition(
    "downstream_automation",
    target=DOWNSTREAM_ASSETS,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Brings split_assignment, the Sentinel-2 index, the models and their "
    "evaluations up to date after each tick of FLAIR_DOWNSTREAM_CRON (default nightly) "
    "when new domains were built (condition nightly_catch_up).",
)
