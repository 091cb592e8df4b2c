"""Shared fixtures: the `tiny` synthetic world, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker per core (make test: -n 2): one thread
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # each, inherited by CLI subprocesses
    os.environ.setdefault("MKL_NUM_THREADS", "1")

if TYPE_CHECKING:  # imported in the fixture: bench/gpu.sh's GPU tests run on the device, which
    # has neither pyogrio nor pystac (tests/test_gpu_sh.py imports this file under its guard)
    from flair_pipeline.synthetic.world import WorldSummary

REPO = Path(__file__).resolve().parents[1]
REAL_FLAIR = REPO.parent / "shared" / "real-samples" / "flair"


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> WorldSummary:
    """The `tiny` world (3 domains: train, validation, test), seed 0, read-only for tests."""
    from flair_pipeline.synthetic.world import generate_world

    out = tmp_path_factory.mktemp("tiny_world") / "raw"
    return generate_world(out, "tiny", 0)


@pytest.fixture(scope="session")
def real_flair() -> Path:
    """The five real FLAIR patches in ../shared; tests that need them skip without them."""
    if not REAL_FLAIR.is_dir():
        pytest.skip(f"real FLAIR samples not found at {REAL_FLAIR} (../shared is absent)")
    return REAL_FLAIR


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `gpu` tests on machines without CUDA."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
