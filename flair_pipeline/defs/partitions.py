"""Partitions: one per domain, added as domains arrive (by the CLI or the sensor).

Every asset partitioned by domain carries :data:`DOMAIN_BACKFILL`: a backfill of many
domains (from the UI, or ``dagster asset backfill``) launches one run per domain.
Measured against a single run over the whole range (``bench/backfill.py``, figures in
docs/operations.md#backfills), one run per domain costs a few seconds of run start per
domain, and buys what the project relies on: a bad domain fails its own run only (the
others are built and recorded), each domain's data version, blocking checks and staging
stay per domain, and a failed domain is re-run alone. The assets read
``context.partition_key``: one key per run is what they expect. Dagster tags such a run
with a one-domain range (``dagster/asset_partition_range_start``/``_end``), not
``dagster/partition``: the run queue's per-domain limit does not see backfill runs (a
known limit, in docs/operations.md).
"""

import warnings

import dagster as dg

# `backfill_policy` is beta in Dagster 1.13 (stable in use since 1.5): one line per asset
# at every import (CLI, code server, each run worker) would say nothing a user can act on.
warnings.filterwarnings(
    "ignore", message="Parameter `backfill_policy` of function", category=dg.BetaWarning
)

DOMAINS = "domains"
domains_partitions = dg.DynamicPartitionsDefinition(name=DOMAINS)

#: The backfill policy of every per-domain asset: one domain per run (see the module).
DOMAIN_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
