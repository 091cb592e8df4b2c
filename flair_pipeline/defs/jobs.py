"""Jobs of the code location, from the stage declarations (:attr:`Stage.jobs`).

``build_domain`` (one domain's dataset files, run by the new-domains sensor) is the
assets whose declaration names it: ``domain_sources``, ``patch_grid``,
``aerial_patches``, ``label_masks``, ``dataset_metadata``; the all-domain
``split_assignment`` and the Sentinel-2 series are not part of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg

from flair_pipeline.stages import BUILD_DOMAIN, JOBS, STAGES_BY_NAME, Stage


def job_assets(
    job: str, assets: Sequence[dg.AssetsDefinition], stages: Mapping[str, Stage] = STAGES_BY_NAME
) -> list[dg.AssetsDefinition]:
    """The assets of `assets` whose declaration names `job`, in the order given.

    Args:
        job: A job of :data:`flair_pipeline.stages.JOBS`.
        assets: Every asset of the code location.
        stages: Every declaration by name (default: the project's).

    Returns:
        The assets declared in that job (an asset without a declaration is in none).
    """
    return [
        a for a in assets if (s := stages.get(a.key.to_user_string())) is not None and job in s.jobs
    ]


def domain_build_assets(
    assets: Sequence[dg.AssetsDefinition], stages: Mapping[str, Stage] = STAGES_BY_NAME
) -> list[dg.AssetsDefinition]:
    """The assets that build one domain's dataset files (the ``build_domain`` job's).

    Args:
        assets: Every asset of the code location.
        stages: Every declaration by name (default: the project's).

    Returns:
        :func:`job_assets` of ``build_domain``.
    """
    return job_assets(BUILD_DOMAIN, assets, stages)


def stage_jobs(
    assets: Sequence[dg.AssetsDefinition], stages: Mapping[str, Stage] = STAGES_BY_NAME
) -> list[dg.UnresolvedAssetJobDefinition]:
    """Every job of :data:`~flair_pipeline.stages.JOBS` that has assets in `assets`.

    Args:
        assets: Every asset of the code location.
        stages: Every declaration by name (default: the project's).

    Returns:
        One asset job per declared job, over :func:`job_assets`.
    """
    jobs = []
    for name, description in JOBS.items():
        members = job_assets(name, assets, stages)
        if members:
            jobs.append(
                dg.define_asset_job(
                    name, selection=dg.AssetSelection.assets(*members), description=description
                )
            )
    return jobs


def build_domain_job(
    assets: Sequence[dg.AssetsDefinition], stages: Mapping[str, Stage] = STAGES_BY_NAME
) -> dg.UnresolvedAssetJobDefinition:
    """The ``build_domain`` job over :func:`domain_build_assets` of `assets`.

    Args:
        assets: Every asset of the code location.
        stages: Every declaration by name (default: the project's).

    Returns:
        The job the new-domains sensor requests, one run per domain partition.
    """
    return dg.define_asset_job(
        BUILD_DOMAIN,
        selection=dg.AssetSelection.assets(*domain_build_assets(assets, stages)),
        description=JOBS[BUILD_DOMAIN],
    )
