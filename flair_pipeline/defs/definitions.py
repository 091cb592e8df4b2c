"""The one Dagster code location of flair_pipeline (loaded by workspace.yaml)."""

from __future__ import annotations

import dagster as dg

from flair_pipeline import redaction
from flair_pipeline.defs.assets import dataset, evaluation, sentinel2, sources, training
from flair_pipeline.defs.resources import FlairConfig, sentinelhub_credentials
from flair_pipeline.defs.schedules import automate_downstream, downstream_automation
from flair_pipeline.defs.sensors import new_domains_sensor

DATASET_ASSETS = [
    sources.domain_sources,
    dataset.patch_grid,
    dataset.aerial_patches,
    dataset.label_masks,
    dataset.dataset_metadata,
]
SENTINEL2_ASSETS = [sentinel2.sentinel2_series, sentinel2.sentinel2_index]
TRAINING_ASSETS = [training.packed_training_input, training.model_unet, training.model_utt]
EVALUATION_ASSETS = [
    evaluation.evaluation_unet,
    evaluation.evaluation_utt,
    evaluation.model_comparison,
]
ALL_ASSETS = [
    *DATASET_ASSETS,
    dataset.split_assignment,
    *SENTINEL2_ASSETS,
    *TRAINING_ASSETS,
    *EVALUATION_ASSETS,
]

build_domain = dg.define_asset_job(
    "build_domain",
    selection=dg.AssetSelection.assets(*DATASET_ASSETS),
    description="Build one domain's dataset files (run per domain partition).",
)

redaction.install()  # code servers and runs: credentials masked in every log record (issue 15)

defs = dg.Definitions(
    assets=automate_downstream(ALL_ASSETS),  # nightly catch-up of the all-domain assets
    jobs=[build_domain],
    sensors=[new_domains_sensor, downstream_automation],
    resources={"flair": FlairConfig(), "sentinelhub": sentinelhub_credentials()},
)
