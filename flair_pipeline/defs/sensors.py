"""`new_domains_sensor`: build a domain as soon as its raw inputs are complete and settled.

Each evaluation lists ``<paths.raw>/domains`` once (a local folder or any fsspec URL).
A folder named like a domain id is built when

* it is **complete**: every input its layout needs is there (ortho/*.tif, dsm.tif,
  dtm.tif, labels.gpkg, domain.json; or, with a ``domain.yaml``, a file for every glob it
  names, a shapefile's .shx and .dbf), and no copy is writing into it (no hidden
  ``.<name>.XXXXXX`` temp file, as rsync writes); and
* it has **settled**: the stat of every file in it (name, size, mtime, inode; hidden
  files included) is the one the previous evaluation saw, kept in the cursor, so a copy
  still adding files is never built half-way (issue 29). A ``READY`` file written into
  the folder after the copy skips that wait (one written before any other file, e.g.
  copied in with them, does not count).

Then, if new or changed, the domain is added to the ``domains`` dynamic partitions and a
run of the per-domain assets is requested with run key ``<domain>@<key>#<n>``, where
``n`` counts the changes of that domain seen by the sensor (kept in the cursor; for a
domain the cursor does not know, one more than the sensor runs of its partition on the
instance). Dagster never launches two runs with one run key, so a re-evaluated tick never
builds twice, while every change gets a new key and is rebuilt, a revert to earlier bytes
included (issue 15). ``<key>`` is the first 16 hex of the content fingerprint (sha256 of
every input byte, the `domain_sources` data version; whole in the ``flair/fingerprint``
tag) when the sensor read it, else ``stat:`` and the stat signature's. On an object store
whose listing gives every input an ETag (S3), the fingerprint is the listing's (names,
sizes, ETags: :func:`~flair_pipeline.sources.domain_inputs.content_fingerprint`), read
from the scan without any byte or budget.

Reading is budgeted in bytes and seconds per evaluation (issue 30; FLAIR deliveries are
tens of GB a domain, Dagster's sensor timeout is 60 s): the cursor keeps per domain the
stat signature of its inputs and the last fingerprint, and

* a folder whose stat signature did not move is not read at all;
* a new domain (nothing to compare with) is hashed only if it fits in what is left of the
  evaluation's budget, else requested on its stat signature without a read;
* a known domain whose stats moved is hashed to tell a touch from a change; when the
  budget is spent it waits for the next evaluation (first in line, via the cursor); one
  larger than the whole budget, or too slow to hash within the whole time budget, is
  rebuilt on its stat change without a read.

Incomplete, in-flight, unsettled and deferred folders, and folders whose name is not a
domain id, are reported in the log and in the skip reason.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from flair_pipeline.defs.assets import dataset, sentinel1, sentinel2, sources
from flair_pipeline.defs.partitions import DOMAINS, domains_partitions
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.domains import domain_id_problem
from flair_pipeline.sources import domain_inputs
from flair_pipeline.sources.domain_inputs import READY_NAME

#: Everything partitioned by domain: what one new domain needs built.
DOMAIN_ASSETS = dg.AssetSelection.assets(
    sources.domain_sources,
    dataset.patch_grid,
    dataset.aerial_patches,
    dataset.label_masks,
    dataset.crop_labels,
    dataset.dataset_metadata,
    sentinel2.sentinel2_series,
    sentinel1.sentinel1_series,  # issue 25: a new domain gets its radar series too
)
CURSOR_VERSION = 2
GIB = 1 << 30


@dataclass(frozen=True)
class Budget:
    """What one evaluation may read to fingerprint domains: bytes and seconds."""

    bytes: int
    seconds: float

    @classmethod
    def from_env(cls) -> Budget:
        """``FLAIR_SENSOR_HASH_GB`` (default 4) and ``FLAIR_SENSOR_HASH_SECONDS`` (default 20).

        Returns:
            The budget; 20 s of reading leaves room within Dagster's 60 s sensor timeout.

        Raises:
            ValueError: A variable is not a number.
        """
        gb = float(os.environ.get("FLAIR_SENSOR_HASH_GB", "4"))
        return cls(int(gb * GIB), float(os.environ.get("FLAIR_SENSOR_HASH_SECONDS", "20")))


@dataclass
class Scan:
    """What one evaluation decided (pure data, so tests and logs can read it)."""

    requests: dict[str, str | None] = field(default_factory=dict)  # domain -> fp (None: stat)
    stat_keys: dict[str, str] = field(default_factory=dict)  # domain -> input stat signature
    changes: dict[str, int] = field(default_factory=dict)  # domain -> change number n
    new_partitions: list[str] = field(default_factory=list)
    incomplete: dict[str, list[str]] = field(default_factory=dict)  # domain -> why not ready
    settling: list[str] = field(default_factory=list)  # files moved since the last look
    not_domains: list[str] = field(default_factory=list)
    already_built: list[str] = field(default_factory=list)
    deferred: dict[str, int] = field(default_factory=dict)  # domain -> bytes left to hash
    unread: dict[str, str] = field(default_factory=dict)  # domain -> why decided by stat
    bytes_read: int = 0
    cursor: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run_key(self, domain: str) -> str:
        """``<domain>@<16 hex of the fingerprint, or stat:…>#<change number>``.

        Returns:
            The run key of `domain`'s request: the same inputs at the same change number give
            the same key, so Dagster launches that build once.
        """
        fp = self.requests[domain]
        key = fp[:16] if fp else f"stat:{self.stat_keys[domain][:16]}"
        return f"{domain}@{key}#{self.changes[domain]}"

    def skipped_text(self) -> str:
        """One line naming each folder not built now and why, and each ignored folder.

        Returns:
            The reasons joined with ``"; "``; empty when nothing was skipped or ignored.
        """
        parts = [f"{d} not ready ({', '.join(m)})" for d, m in self.incomplete.items()]
        parts += [
            f"{d} still changing (built once unchanged for a tick, or write {READY_NAME})"
            for d in self.settling
        ]
        parts += [
            f"{d}: {_gb(b)} left to hash at the next tick (budget spent)"
            for d, b in self.deferred.items()
        ]
        parts += [f"{domain_id_problem(n)} (folder ignored)" for n in self.not_domains]
        return "; ".join(parts)


def _gb(n: int) -> str:
    return f"{n / GIB:.2f} GB" if n >= GIB else f"{n / (1 << 20):.1f} MB"


def read_cursor(text: str | None) -> dict[str, dict[str, Any]]:
    """The sensor's state from its cursor text: domain -> {"seen", "sig", "fp", "n", …}.

    An unreadable cursor starts over (safe: run keys still prevent duplicate builds, the
    only cost is one more look); one of version 1 keeps each domain's fingerprint and
    change count (its stat signatures had no inode, so each domain is checked once more).

    Returns:
        Domain -> its saved state; empty for an empty, unreadable or unknown-version cursor.
    """
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    if not isinstance(data, dict) or data.get("v") not in (1, CURSOR_VERSION):
        return {}
    domains = {k: v for k, v in data.get("domains", {}).items() if isinstance(v, dict)}
    if data["v"] == 1:
        return {k: {x: v[x] for x in ("fp", "n") if x in v} for k, v in domains.items()}
    return domains


def write_cursor(state: dict[str, dict[str, Any]]) -> str:
    """The sensor cursor for `state` (domain -> what the sensor last saw), as sorted JSON.

    Args:
        state: per domain: ``seen`` (stat of every file at the last look), ``sig`` and
            ``fp`` (input stat signature and fingerprint at the last decision), ``n``
            (change count), ``deferred`` (hashing carried over to the next evaluation).

    Returns:
        A JSON string carrying the cursor version, read back by :func:`read_cursor`.
    """
    return json.dumps({"v": CURSOR_VERSION, "domains": state}, sort_keys=True)


def _built_fingerprint(instance: dg.DagsterInstance, domain: str) -> str | None:
    """The fingerprint of the last `domain_sources` materialization of `domain`.

    The fingerprint of the last `domain_sources` materialization of `domain`, if any
    (a domain built by the CLI or `dvc repro` before the sensor first saw it).

    Returns:
        The ``fingerprint`` metadata of that materialization; None when there is no
        materialization or it has no fingerprint.
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

    Returns:
        The count of runs tagged ``flair/front_door=sensor`` for partition `domain`.
    """
    return instance.get_runs_count(
        dg.RunsFilter(tags={"dagster/partition": domain, "flair/front_door": "sensor"})
    )


class _Reader:
    """The evaluation's reading budget: bytes left, a deadline, whether anything was read."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.left = budget.bytes
        self.deadline = time.monotonic() + budget.seconds
        self.started = 0  # fingerprints started in this evaluation

    def can_start(self, nbytes: int) -> bool:
        """True when `nbytes` fit in what is left (the first hash always gets the time).

        Returns:
            Whether a fingerprint of `nbytes` may start: within the bytes left, and before the
            deadline unless nothing was started yet in this evaluation.
        """
        in_time = self.started == 0 or time.monotonic() < self.deadline
        return nbytes <= self.left and in_time


def scan_raw_root(
    root: str,
    cursor: dict[str, dict[str, Any]],
    instance: dg.DagsterInstance,
    budget: Budget | None = None,
) -> Scan:
    """Decide what to build under `root` (a folder or URL) given the previous cursor.

    Args:
        root: The raw root (``paths.raw``), a folder or an fsspec URL.
        cursor: The previous evaluation's state (:func:`read_cursor`).
        instance: The Dagster instance (partitions, earlier runs and materializations).
        budget: What this evaluation may read; default :meth:`Budget.from_env`.

    Returns:
        The decisions, with the cursor for the next evaluation.
    """
    fs, path = domain_inputs.open_root(root)
    scans, others = domain_inputs.scan_domains(fs, path)
    out = Scan(not_domains=others)
    known = set(instance.get_dynamic_partitions(DOMAINS))
    reader = _Reader(Budget.from_env() if budget is None else budget)
    state = {d: dict(v) for d, v in cursor.items() if d in scans}  # forget deleted folders
    # domains whose hashing was carried over go first
    order = sorted(scans, key=lambda d: (not state.get(d, {}).get("deferred"), d))
    for domain in order:
        scan = scans[domain]
        prev = state.get(domain, {})
        rec = state[domain] = {**prev, "seen": scan.folder_key}
        if scan.not_ready:
            out.incomplete[domain] = scan.not_ready
            continue
        if prev.get("sig") == scan.signature:
            continue  # nothing moved since the last decision: no read at all
        if not scan.marker and prev.get("seen") != scan.folder_key:
            out.settling.append(domain)  # moved since the last look: a copy may be running
            continue
        _decide(domain, scan, prev, rec, fs, instance, reader, known, out)
    out.cursor = state
    return out


def _decide(
    domain: str,
    scan: domain_inputs.DomainScan,
    prev: dict[str, Any],
    rec: dict[str, Any],
    fs: Any,
    instance: dg.DagsterInstance,
    reader: _Reader,
    known: set[str],
    out: Scan,
) -> None:
    """Request, skip or defer a complete, settled domain whose inputs' stats moved."""
    base = prev.get("fp") or _built_fingerprint(instance, domain)  # what it was built from
    fp: str | None = None
    if scan.listing_fingerprint:  # an object store's listing: no byte read, no budget
        fp = scan.listing_fingerprint
    elif reader.can_start(scan.nbytes):
        first = reader.started == 0
        reader.started += 1
        fp, read = domain_inputs.content_fingerprint(fs, scan, reader.deadline)
        reader.left -= read
        out.bytes_read += read
        if fp is None and not first and base:
            rec["deferred"] = True  # out of time: first in line at the next evaluation
            out.deferred[domain] = scan.nbytes
            return
        if fp is None:
            out.unread[domain] = f"not hashed within {reader.budget.seconds:g} s"
    elif base and scan.nbytes <= reader.budget.bytes:
        rec["deferred"] = True  # fits a whole budget: hashed first at the next evaluation
        out.deferred[domain] = scan.nbytes
        return
    else:
        out.unread[domain] = (
            f"{_gb(scan.nbytes)} over the hashing budget of {_gb(reader.budget.bytes)}"
            if scan.nbytes > reader.budget.bytes
            else "budget spent, nothing to compare with"
        )
    rec.pop("deferred", None)
    n = int(prev["n"]) if "n" in prev else _sensor_runs(instance, domain)
    rec.update(sig=scan.signature, fp=fp, n=n)
    if fp is not None and fp == base:
        if "sig" not in prev:
            out.already_built.append(domain)  # built by the CLI or dvc before the sensor saw it
        return  # touched (mtime, inode) but same bytes
    if domain not in known:
        out.new_partitions.append(domain)
    rec["n"] = n + 1
    out.requests[domain], out.stat_keys[domain], out.changes[domain] = fp, scan.signature, n + 1


@dg.sensor(
    name="new_domains_sensor",
    target=DOMAIN_ASSETS,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches <paths.raw>/domains: adds each complete new domain folder to the "
    "`domains` partitions and builds its per-domain assets once its files stayed unchanged "
    "for a tick (or it has a READY file written after the copy); rebuilds a domain whose "
    "inputs change, a revert included (run key = domain@fingerprint#change). Reads at most "
    "FLAIR_SENSOR_HASH_GB / FLAIR_SENSOR_HASH_SECONDS per tick. Incomplete, still-changing "
    "or misnamed folders are reported.",
)
def new_domains_sensor(
    context: dg.SensorEvaluationContext, flair: PipelineConfigResource
) -> dg.SensorResult:
    """Request a build of every domain whose raw inputs are complete, settled, new or changed.

    Returns:
        A ``dg.SensorResult`` with the cursor for the next tick and any new ``domains``
        partitions, plus one run request per domain to build (keyed by :meth:`Scan.run_key`)
        or else a skip reason naming the folders not built and why.
    """
    root = flair.root_urls()[0]
    scan = scan_raw_root(root, read_cursor(context.cursor), context.instance)
    for domain, missing in scan.incomplete.items():
        context.log.warning(f"{root}/domains/{domain}: not ready, {', '.join(missing)}")
    for domain in scan.settling:
        context.log.info(
            f"{root}/domains/{domain}: files changed since the last tick; built once they "
            f"stay unchanged for a tick (or write {READY_NAME} into it when the copy is done)"
        )
    for name in scan.not_domains:
        context.log.warning(f"{root}/domains/{name}: {domain_id_problem(name)}; folder ignored")
    for domain in scan.already_built:
        context.log.info(f"{domain}: already built with these inputs")
    for domain, reason in scan.unread.items():
        context.log.info(f"{domain}: requested on its file stats without reading ({reason})")
    if scan.deferred:
        context.log.info(
            f"read {_gb(scan.bytes_read)} this tick; hashing of "
            + ", ".join(f"{d} ({_gb(b)})" for d, b in scan.deferred.items())
            + " carried over to the next tick"
        )
    runs = []
    for domain, fp in scan.requests.items():
        tags = {"flair/front_door": "sensor", "flair/stat_key": scan.stat_keys[domain]}
        if fp:
            tags["flair/fingerprint"] = fp
        runs.append(dg.RunRequest(run_key=scan.run_key(domain), partition_key=domain, tags=tags))
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
