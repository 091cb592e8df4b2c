"""The one Dagster code location of flair_pipeline, in Dagster's ``dg`` project layout.

``pyproject.toml``'s ``[tool.dg]`` names this module the code location (``dg dev``,
``dg check defs``, ``dg list defs``, ``dg launch``) and :mod:`flair_pipeline.defs` its defs
folder, which :func:`dagster.load_from_defs_folder` walks: every module-level asset and
sensor of ``defs/`` (``assets/`` one module per stage group, ``sensors.py`` for new
domains, ``automation.py`` for the nightly catch-up) and every ``defs.yaml`` component
(``type: flair_pipeline.components.DatasetBuild``: a named dataset build of chosen domains
and recipe, see docs/operations.md) is in the code location as soon as it exists; nothing
is kept in a hand-made list. What a folder cannot declare is added here: the nightly
automation condition on the all-domain assets, the ``build_domain`` job the sensor
requests, and the resources. ``adapter.py`` and ``staging.py`` are what the assets share.
Orchestration helpers (instance set-up, the CLI's in-process runs, the UI launcher,
executors, dvc.yaml generation) live in :mod:`flair_pipeline.orchestration`.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from flair_pipeline import redaction
from flair_pipeline.defs.automation import automate_downstream
from flair_pipeline.defs.jobs import build_domain_job, domain_build_assets
from flair_pipeline.defs.resources import PipelineConfigResource, sentinelhub_credentials

redaction.install()  # code servers and runs: credentials masked in every log record (issue 15)


def _folder_definitions() -> dg.Definitions:
    """What ``defs/`` declares, as Dagster's ``dg`` loader finds it.

    A function, not a module-level object: Dagster allows one Definitions at module scope
    (:data:`defs`).

    Returns:
        The merged definitions of every module and ``defs.yaml`` component under ``defs/``.
    """
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


_folder = _folder_definitions()
#: Every asset of the code location (without the nightly condition; see :data:`defs`).
ALL_ASSETS: list[dg.AssetsDefinition] = [
    a for a in _folder.assets or () if isinstance(a, dg.AssetsDefinition)
]
#: The per-domain dataset assets (see :func:`~flair_pipeline.defs.jobs.domain_build_assets`).
DATASET_ASSETS = domain_build_assets(ALL_ASSETS)

build_domain = build_domain_job(ALL_ASSETS)

defs = dg.Definitions(
    assets=automate_downstream(ALL_ASSETS),  # nightly catch-up of the all-domain assets
    jobs=[build_domain, *(_folder.jobs or ())],
    sensors=_folder.sensors,
    schedules=_folder.schedules,
    resources={"flair": PipelineConfigResource(), "sentinelhub": sentinelhub_credentials()},
)
del _folder  # one Definitions object at module scope: `defs`
