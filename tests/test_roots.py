"""Relative roots are resolved one way, whatever the front door and the working folder.

The rule (``config.resolve_roots``): a relative ``paths.*`` is relative to the folder of
the config file that holds it; without a file, to the working folder. Before it, the CLI
resolved some roots against the config file's folder and others against the working
folder, so ``synth --config other/params.yaml`` wrote where ``materialize`` did not read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from flair_pipeline.config import load_config
from flair_pipeline.defs.resources import PipelineConfigResource

EXE = str(Path(sys.executable).parent / "flair-pipeline")


def _project(tmp_path: Path) -> Path:
    proj = tmp_path / "elsewhere" / "proj"
    proj.mkdir(parents=True)
    (proj / "params.yaml").write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": "in/raw", "dataset": "out/ds", "models": "/abs/models"},
                "synth": {"scenario": "tiny"},
            }
        )
    )
    return proj


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], cwd=cwd, capture_output=True, text=True, check=True)


def test_config_roots_are_the_same_from_any_working_folder(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    a, b = tmp_path / "a", tmp_path / "a" / "b" / "c"
    b.mkdir(parents=True)
    seen = []
    for cwd in (a, b):
        rel = os.path.relpath(proj / "params.yaml", cwd)
        args = ["config", "--config", rel, "--set", "paths.eval=ev"]
        out = yaml.safe_load(
            _run([*args, "--set", "sentinel2.source.catalog=cat/c.json"], cwd).stdout
        )
        seen.append({**out["paths"], "catalog": out["sentinel2"]["source"]["catalog"]})
    expected = {
        "raw": str(proj / "in/raw"),
        "dataset": str(proj / "out/ds"),
        "models": "/abs/models",  # absolute: kept
        "eval": str(proj / "ev"),  # a --set value: relative to the config file too
        "catalog": str(proj / "cat/c.json"),  # a file setting, the same rule
    }
    assert seen == [expected, expected]


def test_cli_and_dagster_resource_write_and_read_the_same_files(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    cwd = tmp_path / "somewhere_else"
    cwd.mkdir()
    _run(["synth", "--config", os.path.relpath(proj / "params.yaml", cwd)], cwd)
    assert not any(cwd.iterdir()), "synth wrote under the working folder"
    written = sorted(p.name for p in (proj / "in/raw/domains").iterdir())
    assert written == ["D004_2021", "D033_2021", "D036_2020"]  # the tiny world's domains
    # the Dagster resource (the UI, the sensor, `materialize`) reads exactly there
    resource = PipelineConfigResource(config_path=str(proj / "params.yaml"))
    assert resource.raw().root == proj / "in/raw"
    assert resource.dataset().root == proj / "out/ds"


def test_without_a_file_the_working_folder_is_the_base(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["paths.raw=r", "paths.dataset=s3://bucket/ds"])
    assert cfg.paths.raw == str(tmp_path / "r")
    assert cfg.paths.dataset == "s3://bucket/ds"  # URLs as given
