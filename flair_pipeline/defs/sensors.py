"""`new_domains_sensor`: build a domain as soon as its raw inputs are complete.

Each evaluation lists ``<paths.raw>/domains`` once (a local folder or any fsspec URL),
and for every folder named like a domain id whose inputs are complete (ortho/*.tif,
dsm.tif, dtm.tif, labels.gpkg, domain.json) it

* adds the domain to the ``domains`` dynamic partitions if it is new, and
* requests a run of the per-domain assets with run key ``<domain>@<fingerprint>#<n>``,
  where ``n`` counts the changes of that domain seen by the sensor (kept in the cursor;
  for a domain the cursor does not know, one more than the sensor runs of its partition
  on the instance). Dagster never launches two runs with one run key, so a re-evaluated
  tick never builds twice, while every change gets a new key and is rebuilt, a revert to
  earlier bytes included (issue 15: with the bare fingerprint as key, the reverted
  domain's key was the first tick's and Dagster skipped it). The full fingerprint is the
  run's ``flair/fingerprint`` tag.

The fingerprint (sha256 of every input byte, the `domain_sources` data version) is costly
on big mosaics, so the cursor keeps, per domain, a cheap stat signature (names, sizes,
mtimes) and the last fingerprint: a folder whose signature did not move is not read at
all, and at most ``FLAIR_SENSOR_MAX_HASHES`` folders are hashed per evaluation (the rest
wait for the next tick), which keeps each evaluation well under the daemon's time limit.

Incomplete folders (still being copied) and folders whose name is not a domain id are
skipped and reported in the log and in the skip reason; they are never half built.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from flair_pipeline.defs.assets import dataset, sentinel2, sources
from flair_pipeline.defs.partitions import DOMAINS, domains_partitions
from flair_pipeline.defs.resources import FlairConfig
from flair_pipeline.domains import domain_id_problem
from flair_pipeline.sources import domain_inputs

#: Everything partitioned by domain: what one new domain needs built.
DOMAIN_ASSETS = dg.AssetSelection.assets(
    sources.domain_sources,
    dataset.patch_grid,
    dataset.aerial_patches,
    dataset.label_masks,
    dataset.dataset_metadata,
    sentinel2.sentinel2_series,
)
CURSOR_VERSION = 1


def max_hashes() -> int:
    """Folders fingerprinted per evaluation (env FLAIR_SENSOR_MAX_HASHES, default 16)."""
    return max(1, int(os.environ.get("FLAIR_SENSOR_MAX_HASHES", "16")))


@dataclass
class Scan:
    """What one evaluation decided (pure data, so tests and logs can read it)."""

    requests: dict[str, str] = field(default_factory=dict)  # domain -> fingerprint
    changes: dict[str, int] = field(default_factory=dict)  # domain -> change number n
    new_partitions: list[str] = field(default_factory=list)
    incomplete: dict[str, list[str]] = field(default_factory=dict)  # domain -> missing
    not_domains: list[str] = field(default_factory=list)
    already_built: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # hashing deferred to a later tick
    cursor: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run_key(self, domain: str) -> str:
        """``<domain>@<first 16 hex of the fingerprint>#<change number>``."""
        return f"{domain}@{self.requests[domain][:16]}#{self.changes[domain]}"

    def skipped_text(self) -> str:
        """One line naming each incomplete domain (and what it lacks) and each ignored folder."""
        parts = [f"{d} incomplete (missing {', '.join(m)})" for d, m in self.incomplete.items()]
        parts += [f"{domain_id_problem(n)} (folder ignored)" for n in self.not_domains]
        return "; ".join(parts)


def read_cursor(text: str | None) -> dict[str, dict[str, Any]]:
    """The sensor's state from its cursor text: domain -> {"sig", "fp", "n"}.

    Domain -> {"sig", "fp", "n"}; an unreadable or older cursor starts over (safe: run keys
    still prevent duplicate builds, the only cost is hashing once more).
    """
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
        return {}
    return {k: v for k, v in data.get("domains", {}).items() if isinstance(v, dict)}


def write_cursor(state: dict[str, dict[str, Any]]) -> str:
    """The sensor cursor for `state` (domain -> its fingerprint record), as sorted JSON.

    Args:
        state: per domain, what the sensor last saw (fingerprint, request time).

    Returns:
        A JSON string carrying the cursor version, read back by :func:`read_cursor`.
    """
    return json.dumps({"v": CURSOR_VERSION, "domains": state}, sort_keys=True)


def _built_fingerprint(instance: dg.DagsterInstance, domain: str) -> str | None:
    """The fingerprint of the last `domain_sources` materialization of `domain`.

    The fingerprint of the last `domain_sources` materialization of `domain`, if any
    (a domain built by the CLI or `dvc repro` before the sensor first saw it).
    """
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("domain_sources"), asset_partitions=[domain]),
        limit=1,
    )
    if not result.records:
        return None
    mat = result.records[0].asset_materialization
    value = mat.metadata.get("fingerprint") if mat else None
    return str(value.value) if value is not None else None


def _sensor_runs(instance: dg.DagsterInstance, domain: str) -> int:
    """How many runs this sensor already launched for `domain`.

    How many runs this sensor already launched for `domain` (the change count to start
    from when the cursor does not know the domain: a new or reset cursor).
    """
    return instance.get_runs_count(
        dg.RunsFilter(tags={"dagster/partition": domain, "flair/front_door": "sensor"})
    )


def scan_raw_root(
    root: str,
    cursor: dict[str, dict[str, Any]],
    instance: dg.DagsterInstance,
    budget: int | None = None,
) -> Scan:
    """Decide what to build under `root` (a folder or URL) given the previous cursor."""
    fs, path = domain_inputs.open_root(root)
    scans, others = domain_inputs.scan_domains(fs, path)
    out = Scan(not_domains=others)
    known = set(instance.get_dynamic_partitions(DOMAINS))
    budget = max_hashes() if budget is None else budget
    state = {d: v for d, v in cursor.items() if d in scans}  # forget deleted folders
    for domain, scan in scans.items():
        prev = state.get(domain)
        if not scan.complete:
            out.incomplete[domain] = scan.missing
            continue
        if prev and prev.get("sig") == scan.signature:
            continue  # nothing moved: no read at all
        if budget <= 0:
            out.pending.append(domain)
            continue
        budget -= 1
        fp = domain_inputs.fingerprint(fs, scan.files, scan.folder)
        n = int(prev["n"]) if prev and "n" in prev else _sensor_runs(instance, domain)
        state[domain] = {"sig": scan.signature, "fp": fp, "n": n}
        if prev and prev.get("fp") == fp:
            continue  # touched (mtime) but same bytes
        if domain not in known:
            out.new_partitions.append(domain)
        elif not prev and _built_fingerprint(instance, domain) == fp:
            out.already_built.append(domain)
            continue
        state[domain]["n"] = n + 1
        out.requests[domain], out.changes[domain] = fp, n + 1
    out.cursor = state
    return out


@dg.sensor(
    name="new_domains_sensor",
    target=DOMAIN_ASSETS,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches <paths.raw>/domains: adds each complete new domain folder to the "
    "`domains` partitions and builds its per-domain assets; rebuilds a domain whose inputs "
    "change, a revert included (run key = domain@fingerprint#change; the fingerprint is the "
    "flair/fingerprint tag). Incomplete or misnamed folders are reported.",
)
def new_domains_sensor(context: dg.SensorEvaluationContext, flair: FlairConfig) -> dg.SensorResult:
    """Request a build of every domain whose raw inputs are complete and new or changed."""
    root = flair.root_urls()[0]
    scan = scan_raw_root(root, read_cursor(context.cursor), context.instance)
    for domain, missing in scan.incomplete.items():
        context.log.warning(f"{root}/domains/{domain}: incomplete, missing {', '.join(missing)}")
    for name in scan.not_domains:
        context.log.warning(f"{root}/domains/{name}: {domain_id_problem(name)}; folder ignored")
    for domain in scan.already_built:
        context.log.info(f"{domain}: already built with these inputs")
    if scan.pending:
        context.log.info(f"{len(scan.pending)} changed folder(s) left for the next evaluation")
    runs = [
        dg.RunRequest(
            run_key=scan.run_key(domain),
            partition_key=domain,
            tags={"flair/front_door": "sensor", "flair/fingerprint": fp},
        )
        for domain, fp in scan.requests.items()
    ]
    kwargs: dict[str, Any] = {"cursor": write_cursor(scan.cursor)}
    if scan.new_partitions:
        kwargs["dynamic_partitions_requests"] = [
            domains_partitions.build_add_request(scan.new_partitions)
        ]
    if runs:
        return dg.SensorResult(run_requests=runs, **kwargs)
    skipped = scan.skipped_text()
    reason = f"no new or changed complete domain under {root}/domains" + (
        f"; skipped: {skipped}" if skipped else ""
    )
    return dg.SensorResult(skip_reason=dg.SkipReason(reason), **kwargs)
