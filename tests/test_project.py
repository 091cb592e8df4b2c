"""One project per front door: the same command writes the same files wherever it runs.

``Project.load`` resolves every relative root against the config file's folder, so running
``build-domain`` from two working folders, or with a config file kept in another folder
that names the same roots relatively, writes the same files with the same bytes. Before
the project, some commands resolved roots against the working folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flair_pipeline.config import PathsConfig, PipelineConfig
from flair_pipeline.errors import ConfigError
from flair_pipeline.project import Project
from flair_pipeline.synthetic.world import WorldSummary

EXE = str(Path(sys.executable).parent / "flair-pipeline")
DOMAIN = "D004_2021"  # the tiny world's one-patch domain: a build takes seconds


def _files(root: Path) -> dict[str, str]:
    """Every file under `root` (lock files aside: they hold the writer's pid) → its sha256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".locks" not in p.parts
    }


def _build(config: Path, cwd: Path) -> None:
    cwd.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(config, cwd)
    subprocess.run(
        [EXE, "-q", "build-domain", DOMAIN, "--sentinel2", "--config", rel],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    assert not any(cwd.iterdir()), f"build-domain wrote under the working folder {cwd}"


def test_same_command_from_anywhere_writes_the_same_files(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "r").symlink_to(tiny_world.out)  # the read-only tiny world as the raw root
    config = proj / "params.yaml"
    config.write_text(yaml.safe_dump({"paths": {"raw": "r", "dataset": "ds"}}))
    runs = []
    for cwd in (tmp_path / "a", tmp_path / "b" / "c" / "d"):
        _build(config, cwd)
        runs.append(_files(proj / "ds"))
        shutil.rmtree(proj / "ds")
    # a config file in another folder naming the same roots relatively to itself
    other = tmp_path / "configs" / "x" / "params.yaml"
    other.parent.mkdir(parents=True)
    other.write_text(yaml.safe_dump({"paths": {"raw": "../../proj/r", "dataset": "../../proj/ds"}}))
    _build(other, tmp_path / "e")
    runs.append(_files(proj / "ds"))
    # what a build writes (checked by name, from docs/data-format.md), then byte equality
    assert {
        f"aerial/{DOMAIN}/Z1_FU/img/IMG_0042100000000.tif",
        f"labels/{DOMAIN}/Z1_FU/msk/MSK_0042100000000.tif",
        f"sentinel/{DOMAIN}/Z1_FU/sen/SEN2_sp_{DOMAIN}-Z1_FU_data.npy",
        f"metadata/domains/{DOMAIN}.json",
    } <= set(runs[0])
    assert runs[1] == runs[0] and runs[2] == runs[0]


def test_project_layouts_and_provider_come_from_the_config_folder(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "params.yaml").write_text(
        yaml.safe_dump({"paths": {"raw": "../raw", "dataset": "ds", "models": "/abs/m"}})
    )
    p = Project.load(conf / "params.yaml", ["paths.eval=ev"])
    assert (p.base, p.config_path) == (conf.resolve(), (conf / "params.yaml").resolve())
    assert p.raw.root == tmp_path.resolve() / "raw"  # normalised: one spelling per folder
    assert p.dataset.root == conf.resolve() / "ds"
    assert (p.models, p.evaluations) == (Path("/abs/m"), conf.resolve() / "ev")
    assert p.model_files("utt").folder == Path("/abs/m") / p.registry["utt"].folder
    stac = p.provider()
    assert stac.name == "stac"
    assert stac.catalog == str(tmp_path.resolve() / "raw" / "sentinel2" / "catalog.json")
    # built from a config in code: relative roots against the given base
    q = Project.of(PipelineConfig(paths=PathsConfig(raw="r", dataset="s3://b/ds")), tmp_path)
    assert (q.base, q.raw.root) == (tmp_path.resolve(), tmp_path.resolve() / "r")
    with pytest.raises(ConfigError, match=r"paths\.dataset: s3://b/ds is a URL root"):
        q.dataset  # noqa: B018  (the property raises)
