"""The one Dagster code location of flair_pipeline (loaded by workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from flair_pipeline.defs.assets import dataset, sentinel2, sources
from flair_pipeline.defs.resources import FlairConfig, sentinelhub_credentials

DATASET_ASSETS = [
    sources.domain_sources,
    dataset.patch_grid,
    dataset.aerial_patches,
    dataset.label_masks,
    dataset.dataset_metadata,
]
SENTINEL2_ASSETS = [sentinel2.sentinel2_series, sentinel2.sentinel2_index]
ALL_ASSETS = [*DATASET_ASSETS, dataset.split_assignment, *SENTINEL2_ASSETS]

build_domain = dg.define_asset_job(
    "build_domain",
    selection=dg.AssetSelection.assets(*DATASET_ASSETS),
    description="Build one domain's dataset files (run per domain partition).",
)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[build_domain],
    resources={"flair": FlairConfig(), "sentinelhub": sentinelhub_credentials()},
)
