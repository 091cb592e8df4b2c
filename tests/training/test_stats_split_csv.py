"""Normalisation statistics come from the train split only, the split read from
``metadata/splits.csv`` here with the csv module (not with the code's ``by_split`` or
``read_splits``), the pixels read here from the IMG files found on disk for those domains."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import rasterio

from flair_pipeline.training.records import by_split, load_records
from flair_pipeline.training.stats import compute_stats


def domains_of(splits_csv: Path, split: str) -> set[str]:
    with open(splits_csv, newline="") as f:
        return {row["domain"] for row in csv.DictReader(f) if row["split"] == split}


def pixels(dataset: Path, domains: set[str]) -> np.ndarray:
    """(5, N) float64 of every IMG of `domains` (aerial/<domain>/<zone>/img/IMG_*.tif)."""
    files = [
        p for d in sorted(domains) for p in sorted((dataset / "aerial" / d).glob("*/img/*.tif"))
    ]
    assert files, f"no IMG under {dataset / 'aerial'} for {sorted(domains)}"
    arrays = []
    for p in files:
        with rasterio.open(p) as src:
            arrays.append(src.read().reshape(src.count, -1))
    return np.concatenate(arrays, axis=1).astype(np.float64)


def test_stats_are_those_of_the_train_domains_of_splits_csv(tiny_dataset) -> None:
    dataset, _ = tiny_dataset
    splits_csv = dataset / "metadata" / "splits.csv"
    train = domains_of(splits_csv, "train")
    others = domains_of(splits_csv, "validation") | domains_of(splits_csv, "test")
    assert train and others and not train & others
    expected = pixels(dataset, train)
    everything = pixels(dataset, train | others)

    # the code's own path, as train_model takes it: records, train split, statistics
    stats = compute_stats(by_split(load_records(dataset), "train"), 1000, 0)

    np.testing.assert_allclose(stats.mean, expected.mean(1), rtol=1e-9)
    np.testing.assert_allclose(stats.std, expected.std(1), rtol=1e-6)
    # the test can tell the splits apart: statistics over all domains differ clearly
    assert np.abs(everything.mean(1) - expected.mean(1)).max() > 1.0
