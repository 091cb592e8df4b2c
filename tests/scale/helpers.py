"""Helpers shared by the scale-out tests: build the dataset of some domains in process."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import yaml

from flair_pipeline.definitions import DATASET_ASSETS
from flair_pipeline.defs.assets.dataset import split_assignment
from flair_pipeline.defs.resources import PipelineConfigResource, sentinelhub_credentials

PATCH = 64


def write_params(
    folder: Path, raw: str, dataset: str, extra: dict[str, dict[str, object]] | None = None
) -> Path:
    """A params.yaml with the given roots and tiny patches; `extra`: more sections' keys."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "params.yaml"
    params: dict[str, dict[str, object]] = {
        "paths": {"raw": raw, "dataset": dataset},
        "sampling": {"patch_size": PATCH},
    }
    for section, keys in (extra or {}).items():
        params[section] = {**params.get(section, {}), **keys}
    path.write_text(yaml.safe_dump(params))
    return path


def build_in_process(
    flair: PipelineConfigResource,
    instance: dg.DagsterInstance,
    domains: Sequence[str],
    *,
    split: bool,
) -> None:
    """The reference build: the per-domain assets for each domain, then the split."""
    new = [d for d in domains if d not in set(instance.get_dynamic_partitions("domains"))]
    instance.add_dynamic_partitions("domains", new)
    assets = [*DATASET_ASSETS, split_assignment]
    resources = {"flair": flair, "sentinelhub": sentinelhub_credentials()}
    for d in domains:
        result = dg.materialize(
            assets,
            selection=dg.AssetSelection.assets(*DATASET_ASSETS),
            partition_key=d,
            instance=instance,
            resources=resources,
        )
        assert result.success
    if split:
        result = dg.materialize(
            assets,
            selection=dg.AssetSelection.assets(split_assignment),
            instance=instance,
            resources=resources,
        )
        assert result.success


def rasters(root: Path) -> dict[str, bytes]:
    """Relative name → bytes of every IMG/MSK/CROP GeoTIFF under a dataset root."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.tif"))}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
