"""An empty DSM is named as empty by ``domain_sources``, before any patch is cut (issue 30).

Two kinds of empty: a 0-byte file (an interrupted copy) and a GeoTIFF whose every pixel is
its declared nodata. Both through the real CLI (``build-domain``: one line, exit 1, nothing
written); a DSM with a single valid pixel, in a corner block, is not empty.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from flair_pipeline.config import PipelineConfig
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.sources_record import record_domain_sources
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.synthetic.world import WorldSummary
from tests.conftest import REPO

DOMAIN = "D033_2021"
CLI = str(Path(sys.executable).parent / "flair-pipeline")


def _raw(tiny_world: WorldSummary, tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(tiny_world.out / "domains" / DOMAIN, raw / "domains" / DOMAIN)
    return raw


def _rewrite_dsm(dsm: Path, fill: float, valid_at: tuple[int, int] | None = None) -> None:
    """The same grid and header, every pixel `fill` (declared nodata), but `valid_at`."""
    with rasterio.open(dsm) as src:
        profile = src.profile
        shape = (src.height, src.width)
    profile.update(nodata=-9999.0, tiled=True, blockxsize=16, blockysize=16)
    a = np.full(shape, fill, dtype=profile["dtype"])
    if valid_at is not None:
        a[valid_at] = 42.0
    with rasterio.open(dsm, "w", **profile) as dst:
        dst.write(a, 1)


def _build_domain(raw: Path, ds: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, "build-domain", DOMAIN, "--raw", str(raw), "--dataset", str(ds)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(raw.parent / "home")},
    )


@pytest.mark.parametrize("kind", ["zero-bytes", "all-nodata"])
def test_an_empty_dsm_is_named_as_empty_at_domain_sources(
    tiny_world: WorldSummary, tmp_path: Path, kind: str
) -> None:
    raw = _raw(tiny_world, tmp_path)
    dsm = RawLayout(raw).dsm(DOMAIN)
    if kind == "zero-bytes":
        dsm.write_bytes(b"")
        expected = f"error: {dsm}: empty file (0 bytes; an interrupted copy or download?)"
    else:
        _rewrite_dsm(dsm, -9999.0)
        expected = f"error: {dsm}: empty DSM: every pixel is nodata (nodata = -9999) in the file"
    r = _build_domain(raw, tmp_path / "ds")
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), r.stderr
    assert "rerun" in lines[0]
    # caught at domain_sources: not even the sources record is written, no patch, no grid
    # (the build steps' lock files aside: empty once released)
    ds = tmp_path / "ds"
    files = [p for p in ds.rglob("*") if p.is_file() and ".locks" not in p.relative_to(ds).parts]
    assert files == []
    assert all(p.stat().st_size == 0 for p in (ds / ".locks").rglob("*.lock"))


def test_a_dsm_with_one_valid_pixel_in_a_corner_is_not_empty(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    raw = _raw(tiny_world, tmp_path)
    dsm = RawLayout(raw).dsm(DOMAIN)
    with rasterio.open(dsm) as src:
        corner = (src.height - 1, src.width - 1)  # the last block, read last
    _rewrite_dsm(dsm, -9999.0, valid_at=corner)
    report = record_domain_sources(
        DomainContext.open(DOMAIN, RawLayout(raw), DatasetLayout(tmp_path / "ds"), PipelineConfig())
    )
    assert report.domain == DOMAIN
    assert DatasetLayout(tmp_path / "ds").sources_record(DOMAIN).is_file()
