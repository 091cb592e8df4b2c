"""The one Dagster code location of flair_pipeline (loaded by workspace.yaml).

``defs/`` holds definitions only, by role: ``assets/`` (one module per stage group, each
asset a thin adapter around a core stage function), ``automation.py`` (the nightly
catch-up of the all-domain assets), ``sensors.py`` (new domains), ``jobs.py`` (the
per-domain build), ``resources.py`` and ``partitions.py``; ``adapter.py`` and
``staging.py`` are what the assets share. The assets are collected from the ``assets``
package by Dagster's loader, not from a hand-kept list: an asset defined there is in the
code location, the CLI's ``materialize`` and dvc.yaml's generation as soon as it exists.
Orchestration helpers (instance set-up, the CLI's in-process runs, the UI launcher,
executors, dvc.yaml generation) live in :mod:`flair_pipeline.orchestration`.
"""

from __future__ import annotations

import dagster as dg

from flair_pipeline import redaction
from flair_pipeline.defs import assets as assets_package
from flair_pipeline.defs.automation import automate_downstream, downstream_automation
from flair_pipeline.defs.jobs import build_domain_job, domain_build_assets
from flair_pipeline.defs.resources import PipelineConfigResource, sentinelhub_credentials
from flair_pipeline.defs.sensors import new_domains_sensor

#: Every asset of the code location, as Dagster's loader finds them in ``defs/assets/``.
ALL_ASSETS: list[dg.AssetsDefinition] = [
    a
    for a in dg.load_assets_from_package_module(assets_package)
    if isinstance(a, dg.AssetsDefinition)
]
#: The per-domain dataset assets (see :func:`~flair_pipeline.defs.jobs.domain_build_assets`).
DATASET_ASSETS = domain_build_assets(ALL_ASSETS)

build_domain = build_domain_job(ALL_ASSETS)

redaction.install()  # code servers and runs: credentials masked in every log record (issue 15)

defs = dg.Definitions(
    assets=automate_downstream(ALL_ASSETS),  # nightly catch-up of the all-domain assets
    jobs=[build_domain],
    sensors=[new_domains_sensor, downstream_automation],
    resources={"flair": PipelineConfigResource(), "sentinelhub": sentinelhub_credentials()},
)
