"""Bad input through the CLI: every good domain is built, every problem is one clear line.

A raw root with one good domain whose first ortho tile is cut in half, one domain whose
domain.json lacks its camera and has a non-ISO date, and two misnamed folders.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import rasterio
import shapely

from flair_pipeline.layout import DatasetLayout
from flair_pipeline.synthetic.world import WorldSummary
from tests.conftest import REPO

PATCH = 64
SELECT = "key:domain_sources or key:patch_grid"


def _cli(raw: Path, dataset: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    select = () if "--select" in args else ("--select", SELECT)
    return subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "flair-pipeline"),
            "materialize",
            *select,
            "--set",
            f"paths.raw={raw}",
            "--set",
            f"paths.dataset={dataset}",
            "--set",
            f"sampling.patch_size={PATCH}",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(home)},
    )


def _lost_patches(tile: Path, ortho: Path) -> int:
    """Patches of the 64 px lattice overlapping `tile` (from the intact tiles' headers)."""
    bounds = []
    for p in sorted(ortho.glob("*.tif")):
        with rasterio.open(p) as src:
            bounds.append(tuple(src.bounds))
    x0, y1 = min(b[0] for b in bounds), max(b[3] for b in bounds)
    x1, y0 = max(b[2] for b in bounds), min(b[1] for b in bounds)
    with rasterio.open(tile) as src:
        t = shapely.box(*src.bounds)
    size = PATCH * 0.2
    n = 0
    for r in range(round((y1 - y0) / size)):
        for c in range(round((x1 - x0) / size)):
            b = shapely.box(x0 + c * size, y1 - (r + 1) * size, x0 + (c + 1) * size, y1 - r * size)
            n += b.intersection(t).area > 0
    return n


def test_bad_domains_are_listed_and_good_ones_built(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    good, bad = tiny_world.domains[0].domain, tiny_world.domains[1].domain
    for d in (good, bad):
        shutil.copytree(tiny_world.out / "domains" / d, raw / "domains" / d)
    (raw / "domains" / "D36_2020").mkdir()
    (raw / "domains" / "foo").mkdir()
    info_path = raw / "domains" / bad / "domain.json"
    info = json.loads(info_path.read_text())
    del info["camera"]
    info["date"] = "22/08/" + info["date"][:4]
    info_path.write_text(json.dumps(info))
    tile = sorted((raw / "domains" / good / "ortho").glob("*.tif"))[0]
    lost = _lost_patches(tile, tile.parent)
    data = tile.read_bytes()
    tile.write_bytes(data[: len(data) // 2])  # an interrupted download

    r = _cli(raw, tmp_path / "dataset", tmp_path / "home")
    err = r.stderr
    assert r.returncode == 1, err
    assert "Traceback" not in err and "Stack Trace" not in err
    assert f"ignored {raw}/domains/D36_2020: 'D36_2020' is not a domain id" in err
    assert f"ignored {raw}/domains/foo: 'foo' is not a domain id" in err
    lines = [ln for ln in err.splitlines() if "domain.json" in ln]
    assert len(lines) == 1, err
    assert str(info_path) in lines[0] and "field 'camera': Field required" in lines[0]
    assert "field 'date': '22/08/" in lines[0] and "not an ISO date" in lines[0]
    assert lines[0].strip().startswith(f"domain_sources [{bad}]:")
    assert f"{tile}: unreadable tile, {lost} patch(es) lost" in err
    assert len(err.splitlines()) < 15, err
    # the good domain was built despite the bad one, the bad one not at all
    layout = DatasetLayout(tmp_path / "dataset")
    assert layout.patch_grid(good).is_file() and not layout.patch_grid(bad).exists()
    assert not layout.sources_record(bad).exists()

    verbose = _cli(
        raw,
        tmp_path / "dataset",
        tmp_path / "home",
        "--partition",
        bad,
        "--verbose",
        "--select",
        "key:domain_sources",
    )
    assert verbose.returncode == 1 and "Stack Trace:" in verbose.stderr


def test_failed_check_is_one_line_naming_the_check(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    import dagster as dg
    import pytest
    import yaml

    from flair_pipeline.defs.resources import PipelineConfigResource
    from flair_pipeline.orchestration.run import MaterializeError, materialize

    p = tmp_path / "params.yaml"
    p.write_text(
        yaml.safe_dump(
            {  # patches larger than the 512 px mosaic: an empty grid
                "paths": {"raw": str(tiny_world.out), "dataset": str(tmp_path / "dataset")},
                "sampling": {"patch_size": 1024},
            }
        )
    )
    domain = tiny_world.domains[0].domain
    with dg.instance_for_test() as instance, pytest.raises(MaterializeError) as e:
        materialize(
            "key:domain_sources or key:patch_grid",
            (domain,),
            PipelineConfigResource(config_path=str(p)),
            instance=instance,
        )
    lines = str(e.value).splitlines()
    assert len(lines) == 2 and lines[0].startswith("1 step(s) failed (domains " + domain)
    assert lines[1].strip().startswith(f"patch_grid [{domain}]: ")
    assert lines[1].rstrip().endswith(": has_patches"), lines[1]
