"""The real console script, run as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO


def _cli() -> list[str]:
    exe = shutil.which("flair-pipeline", path=str(Path(sys.executable).parent))
    assert exe, "console script flair-pipeline not installed"
    return [exe]


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_cli(), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_synth_prints_summary(tmp_path: Path) -> None:
    r = run("synth", "--out", str(tmp_path / "raw"), "--scenario", "tiny", "--seed", "2")
    assert r.returncode == 0, r.stderr
    assert "Synthetic world 'tiny' (seed 2)" in r.stdout
    for d in ("D033_2021", "D004_2021", "D036_2020"):
        assert d in r.stdout
        assert (tmp_path / "raw" / "domains" / d / "labels.gpkg").is_file()
    assert "agricultural land" in r.stdout and "S2 dates" in r.stdout
    # progress on stderr (a pipe: lines): one domain after another, then done
    lines = [x for x in r.stderr.splitlines() if x.startswith("synth tiny domains: ")]
    assert [x.split(": ")[1].split(" (")[0] for x in lines] == ["1/3", "2/3", "3/3"], r.stderr
    assert "done in" in lines[-1]
    q = subprocess.run(
        [*_cli(), "--quiet", "synth", "--out", str(tmp_path / "q"), "--scenario", "tiny"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert q.returncode == 0 and "synth tiny domains" not in q.stderr


def test_config_shows_overrides() -> None:
    r = run("config", "--set", "sampling.patch_size=128")
    assert r.returncode == 0, r.stderr
    assert "patch_size: 128" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("synth", "--scenario", "huge"), "synth.scenario"),
        (("synth", "--set", "synth.seed=-1"), "synth.seed"),
        (("synth", "--set", "synth.flavour=lidar"), "synth.flavour"),
        (("synth", "--set", "sampling.nope=1"), "sampling.nope: unknown key"),
        (("config", "--config", "missing.yaml"), "missing.yaml: config file not found"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    r = run(*args, "--set", f"paths.raw={tmp_path / 'raw'}", cwd=REPO)
    assert r.returncode != 0
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "raw").exists()


def test_unwritable_out(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("")
    r = run("synth", "--scenario", "tiny", "--out", str(f / "raw"))
    assert r.returncode == 1 and "cannot write" in r.stderr and "Traceback" not in r.stderr


def test_invalid_params_file(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text("synth:\n  scenario: tiny\n  seed: abc\n")
    r = run("synth", "--config", str(p), "--out", str(tmp_path / "raw"))
    assert r.returncode == 1
    assert f"{p}" in r.stderr and "synth.seed" in r.stderr
    assert not (tmp_path / "raw").exists()


def test_materialize_runs_show_in_the_persistent_instance(tiny_world, tmp_path: Path) -> None:
    import os

    import dagster as dg

    home = tmp_path / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    r = subprocess.run(
        [
            *_cli(),
            "materialize",
            "--select",
            "key:domain_sources",
            "--partition",
            "D033_2021",
            "--set",
            f"paths.raw={tiny_world.out}",
            "--set",
            f"paths.dataset={tmp_path / 'ds'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "1 run(s) succeeded" in r.stdout
    instance = dg.DagsterInstance.from_config(str(home))
    ev = instance.get_latest_materialization_event(dg.AssetKey("domain_sources"))
    assert ev is not None and ev.asset_materialization.partition == "D033_2021"
    assert "D033_2021" in instance.get_dynamic_partitions("domains")


def test_rasterize_labels_onto_a_real_flair_image(real_flair: Path, tmp_path: Path) -> None:
    import geopandas as gpd
    import rasterio
    import shapely

    img = next(real_flair.rglob("IMG_*.tif"))
    with rasterio.open(img) as src:
        b = src.bounds
        grid = (src.transform, src.shape)
    labels = tmp_path / "l.gpkg"
    gpd.GeoDataFrame(
        {"code": [7]}, geometry=[shapely.box(b.left, b.bottom, b.right, b.top)], crs=2154
    ).to_file(labels)
    r = run(
        "rasterize-labels",
        "--labels",
        str(labels),
        "--like",
        str(img),
        "--out",
        str(tmp_path / "m.tif"),
    )
    assert r.returncode == 0, r.stderr
    with rasterio.open(tmp_path / "m.tif") as m:
        assert (m.transform, m.shape) == grid
        assert (m.read(1) == 7).all()


def test_import_flair_on_the_real_samples(real_flair: Path, tmp_path: Path) -> None:
    r = run("import-flair", str(real_flair), "--out", str(tmp_path / "manifest.csv"))
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "manifest.csv").read_text().splitlines()
    assert len(lines) == 6 and lines[0].startswith("patch_id,domain,zone")
    assert "0 problem(s)" in r.stdout
    r = run("import-flair", str(tmp_path / "nothing"), "--out", str(tmp_path / "m2.csv"))
    assert r.returncode == 1 and "nothing" in r.stderr and not (tmp_path / "m2.csv").exists()
