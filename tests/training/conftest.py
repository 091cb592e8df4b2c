"""A tiny built dataset (aerial, labels, Sentinel-2, splits) shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flair_pipeline.config import PipelineConfig, load_config
from flair_pipeline.dataset.assemble import assemble_splits
from flair_pipeline.dataset.build import build_domain_patches
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.sentinel2.build import build_domain_series, merge_centroids
from flair_pipeline.sentinel2.factory import build_provider
from flair_pipeline.synthetic.world import WorldSummary


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
            "epochs": 3,
            "batch_size": 4,
            "lr": 0.003,
            "optimizer": "adamw",
            "scheduler": "none",
            "num_workers": 0,
            "utae_width": 8,
            "norm_samples": 12,
        },
    }


def build_dataset(params: Path) -> None:
    """What the sources, dataset and sentinel2 assets build, through the same core
    functions and without Dagster: each domain, its Sentinel-2 series, the split, the index."""
    cfg = load_config(params)
    raw, dataset = RawLayout(Path(cfg.paths.raw)), DatasetLayout(Path(cfg.paths.dataset))
    provider = build_provider(cfg.sentinel2.source, raw.sentinel2_catalog())
    for domain in sorted(p.name for p in (raw.root / "domains").iterdir()):
        build_domain_patches(DomainContext.open(domain, raw, dataset, cfg))
        build_domain_series(domain, raw, dataset, cfg, provider)
    assert assemble_splits(dataset, cfg.split, raw).passed
    merge_centroids(dataset)


@pytest.fixture(scope="session")
def tiny_dataset(
    tiny_world: WorldSummary, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(dataset root, params.yaml) of the tiny world, built by the assets' core functions."""
    root = tmp_path_factory.mktemp("tiny_built")
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params(tiny_world.out, root)))
    build_dataset(params)
    return root / "dataset", params


def config(params: Path, *overrides: str) -> PipelineConfig:
    return load_config(params, overrides)
