"""The one Dagster code location of flair_pipeline (loaded by workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from flair_pipeline.defs.assets import dataset, sources
from flair_pipeline.defs.resources import FlairConfig

DATASET_ASSETS = [
    sources.domain_sources,
    dataset.patch_grid,
    dataset.aerial_patches,
    dataset.label_masks,
    dataset.dataset_metadata,
]
ALL_ASSETS = [*DATASET_ASSETS, dataset.split_assignment]

build_domain = dg.define_asset_job(
    "build_domain",
    selection=dg.AssetSelection.assets(*DATASET_ASSETS),
    description="Build one domain's dataset files (run per domain partition).",
)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[build_domain],
    resources={"flair": FlairConfig()},
)
