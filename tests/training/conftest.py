"""A tiny built dataset (aerial, labels, Sentinel-2, splits) shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from flair_pipeline.config import PipelineConfig, load_config
from flair_pipeline.defs.resources import FlairConfig
from flair_pipeline.defs.run import materialize
from flair_pipeline.sources.synthetic import WorldSummary

BUILD = "group:sources or group:dataset or group:sentinel2"


def tiny_params(raw: Path, root: Path) -> dict:
    """64 px patches, 60 m zones (2 × 2 per domain), 12 patches a domain, CPU training."""
    return {
        "paths": {
            "raw": str(raw),
            "dataset": str(root / "dataset"),
            "models": str(root / "models"),
            "eval": str(root / "eval"),
        },
        "sampling": {"patch_size": 64, "zone_size_m": 60, "max_patches_per_domain": 12},
        "train": {
            "epochs": 3, "batch_size": 4, "lr": 0.003, "optimizer": "adamw",
            "scheduler": "none", "num_workers": 0, "utae_width": 8, "norm_samples": 12,
        },
    }  # fmt: skip


@pytest.fixture(scope="session")
def tiny_dataset(
    tiny_world: WorldSummary, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(dataset root, params.yaml) of the tiny world, built through the real assets."""
    root = tmp_path_factory.mktemp("tiny_built")
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params(tiny_world.out, root)))
    with dg.instance_for_test() as instance:
        materialize(BUILD, (), FlairConfig(config_path=str(params)), instance=instance)
    return root / "dataset", params


def config(params: Path, *overrides: str) -> PipelineConfig:
    return load_config(params, overrides)
