"""`dvc repro` end to end in a real git + DVC repo (tmp dir), on the tiny world.

The repo holds the committed dvc.yaml, a params.yaml for the `tiny` scenario with every
path inside the repo, and a copy of the code the stages depend on. Stages run the real
`flair-pipeline` console script from .venv, so this is exactly what a user's
`dvc repro` does, and it checks DVC's own bookkeeping: a second run does nothing, a
changed param reruns only the stages that declare it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow

TINY = {"D033_2021", "D004_2021", "D036_2020"}
RUNNING = re.compile(r"Running stage '([^']+)'")


def _dvc() -> str | None:
    """DVC from the project's venv (PATH must hold .venv/bin for `flair-pipeline`)."""
    for candidate in (
        os.environ.get("FLAIR_DVC"),
        str(Path(sys.executable).parent / "dvc"),
        shutil.which("dvc"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


DVC = _dvc()
if DVC is None:
    pytest.skip(
        "dvc is not installed in .venv (pyproject dependency `dvc>=3.50`); "
        "FLAIR_DVC=/path/to/dvc runs these tests with another install",
        allow_module_level=True,
    )


def tiny_params() -> dict:
    """params.yaml of the repo with the tiny world, 64 px patches and seconds-long training."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["paths"] = {"raw": "data/raw", "dataset": "data/dataset",
                       "models": "data/models", "eval": "data/eval"}  # fmt: skip
    params["synth"]["scenario"] = "tiny"
    params["build"]["domains"] = sorted(TINY)
    params["sampling"].update(patch_size=64, zone_size_m=60, max_patches_per_domain=12)
    params["train"].update(
        epochs=1, batch_size=4, lr=0.003, optimizer="adamw", scheduler="none",
        num_workers=0, utae_width=16, norm_samples=12, precision="32",
    )  # fmt: skip
    return params


def _env(repo: Path) -> dict[str, str]:
    bins = [str(Path(sys.executable).parent), str(Path(DVC).parent)]
    return {
        **os.environ,
        "PATH": os.pathsep.join([*bins, os.environ.get("PATH", "")]),
        "DAGSTER_HOME": str(repo.parent / "dagster_home"),
    }


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([DVC, *args], cwd=repo, env=_env(repo), capture_output=True, text=True,
                       timeout=900)  # fmt: skip
    if check:
        assert r.returncode == 0, f"dvc {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def ran(r: subprocess.CompletedProcess[str]) -> set[str]:
    return set(RUNNING.findall(r.stdout + r.stderr))


def set_param(repo: Path, key: str, value: object) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    node = params
    *parents, last = key.split(".")
    for p in parents:
        node = node[p]
    node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def repo() -> Iterator[tuple[Path, subprocess.CompletedProcess]]:
    """A fresh clone-like repo after its first `dvc repro`.

    In its own temporary folder rather than pytest's tmp_path: pytest deletes older
    sessions' folders when new sessions start, and this module runs for minutes.
    """
    with tempfile.TemporaryDirectory(prefix="flair-dvc-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        yield repo, _init_and_repro(repo)


def _init_and_repro(repo: Path) -> subprocess.CompletedProcess:
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(REPO / name, repo / name)
    shutil.copytree(REPO / "flair_pipeline", repo / "flair_pipeline",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "test@example.org")
    git(repo, "config", "user.name", "test")
    dvc(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    return dvc(repo, "repro")


def _stages(repo: Path) -> set[str]:
    r = dvc(repo, "stage", "list", "--name-only")
    return set(r.stdout.split())


def test_first_repro_builds_every_stage(repo) -> None:
    path, first = repo
    stages = _stages(path)
    assert {f"dataset@{d}" for d in TINY} | {f"sentinel2@{d}" for d in TINY} <= stages
    assert {"synth", "split", "sentinel2_index"} <= stages
    assert ran(first) == stages, first.stdout
    assert len(list((path / "data/dataset/aerial").rglob("IMG_*.tif"))) == 3 * 12


def test_every_produced_file_is_declared_by_a_stage(repo) -> None:
    # One owner per artifact: nothing the assets write escapes DVC's outs.
    path, _ = repo
    lock = yaml.safe_load((path / "dvc.lock").read_text())
    declared = [Path(o["path"]) for st in lock["stages"].values() for o in st.get("outs", [])]
    for out in declared:
        assert (path / out).exists(), f"{out} declared but not written"
    for root in ("data/dataset", "data/models", "data/eval"):
        for f in (path / root).rglob("*"):
            rel = f.relative_to(path)
            if f.is_file() and f.name != ".gitignore":
                assert any(rel == o or o in rel.parents for o in declared), f"{rel} has no stage"


def test_second_repro_runs_nothing(repo) -> None:
    path, _ = repo
    again = dvc(path, "repro")
    assert ran(again) == set(), again.stdout
    status = dvc(path, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout


def test_changed_param_reruns_only_the_stages_that_read_it(repo) -> None:
    path, _ = repo
    set_param(path, "sentinel2.max_retries", 5)
    r = dvc(path, "repro")
    # only the Sentinel-2 stages declare `sentinel2`; their outputs are unchanged, so the
    # index and U-T&T training (which read them) are not rerun either
    assert ran(r) == {f"sentinel2@{d}" for d in TINY}, r.stdout


def test_metrics_show(repo) -> None:
    path, _ = repo
    if not any(s.startswith("evaluate_") for s in _stages(path)):
        pytest.skip("no evaluation stages in dvc.yaml yet (evaluation assets missing)")
    r = dvc(path, "metrics", "show", "--json")
    shown = json.loads(r.stdout)
    files = next(iter(shown.values()))["data"]
    for model in ("unet", "utt"):
        m = files[f"data/eval/{model}/metrics.json"]["data"]
        assert 0.0 <= m["miou"] <= 1.0


def test_domain_missing_on_disk_is_named(repo) -> None:
    path, _ = repo
    set_param(path, "build.domains", [*sorted(TINY), "D001_2020"])
    r = dvc(path, "repro", "dataset@D001_2020", check=False)
    assert r.returncode != 0
    assert "data/raw/domains/D001_2020" in r.stdout + r.stderr, r.stdout + r.stderr
    assert not (path / "data/dataset/aerial/D001_2020").exists()
    set_param(path, "build.domains", sorted(TINY))


def test_invalid_params_are_named_by_key(repo) -> None:
    path, _ = repo
    set_param(path, "sampling.patch_size", -3)
    r = dvc(path, "repro", f"dataset@{sorted(TINY)[0]}", check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "params.yaml" in out and "sampling.patch_size" in out, out
    set_param(path, "sampling.patch_size", 64)
    (path / "params.yaml").write_text("paths: [unclosed\n")
    r = dvc(path, "status", check=False)
    assert r.returncode != 0 and "params.yaml" in r.stdout + r.stderr
