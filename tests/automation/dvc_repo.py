"""A real git + DVC repository on the tiny world, for the DVC tests (built once a session).

The repo holds the committed dvc.yaml, .dvc/config (the local remote), the plot
templates, a params.yaml for the `tiny` scenario (every path inside the repo, a recipe
that trains for seconds) and a copy of the code the stages depend on. Stages run the real
`flair-pipeline` console script from .venv, exactly as a user's `dvc repro` does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flair_pipeline.dvc_tool import DvcError, dvc_executable
from tests.conftest import REPO

TINY = ("D004_2021", "D033_2021", "D036_2020")
RUNNING = re.compile(r"Running stage '([^']+)'")


def _dvc() -> str | None:
    """DVC as the project finds it (flair_pipeline.dvc_tool), None when it is not installed."""
    try:
        return dvc_executable()
    except DvcError:
        return None


DVC = _dvc()


def require_dvc() -> str:
    if DVC is None:  # `make test` installs it: a missing DVC is a failure, never a skip
        pytest.fail(
            "dvc is not installed in .venv (`make install` links tools/dvc's into .venv/bin); "
            "FLAIR_DVC=/path/to/dvc runs these tests with another install"
        )
    return DVC


def tiny_params() -> dict:
    """params.yaml with the tiny world: 64 px patches, 4 per domain, one-epoch training.

    Everything else (sections, keys) is the committed params.yaml, so a key the stages
    declare is always present.
    """
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["paths"] = {
        "raw": "data/raw",
        "dataset": "data/dataset",
        "models": "data/models",
        "eval": "data/eval",
    }
    params["synth"]["scenario"] = "tiny"
    params["build"]["domains"] = list(TINY)
    params["sampling"].update(patch_size=64, zone_size_m=60, max_patches_per_domain=4)
    params["train"].update(
        epochs=1,
        batch_size=4,
        downsample=1,
        num_workers=0,
        utae_width=8,
        norm_samples=4,
        precision="32",
    )
    params["eval"].update(batch_size=4)
    # the FLAIR-HUB model: 64 px patches at 1/2 (its U-Net needs a multiple of 32)
    params["hub"]["train"].update(epochs=1, downsample=2)
    return params


def env(repo: Path) -> dict[str, str]:
    bins = [str(Path(sys.executable).parent), str(Path(require_dvc()).parent)]
    return {
        **os.environ,
        "PATH": os.pathsep.join([*bins, os.environ.get("PATH", "")]),
        "DAGSTER_HOME": str(repo.parent / "dagster_home"),
    }


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [require_dvc(), *args],
        cwd=repo,
        env=env(repo),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if check:
        assert r.returncode == 0, f"dvc {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r


def flair(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The `flair-pipeline` console script of .venv, run in `repo`."""
    exe = str(Path(sys.executable).parent / "flair-pipeline")
    return subprocess.run(
        [exe, *args], cwd=repo, env=env(repo), capture_output=True, text=True, timeout=3600
    )


def git(repo: Path, *args: str) -> str:
    r = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return r.stdout


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


def stages(repo: Path) -> set[str]:
    return set(dvc(repo, "stage", "list", "--name-only").stdout.split())


def init_repo(repo: Path) -> None:
    """git init + the project's DVC files and code + tiny params, committed."""
    repo.mkdir(parents=True)
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(REPO / name, repo / name)
    shutil.copytree(
        REPO / "flair_pipeline",
        repo / "flair_pipeline",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "test@example.org")
    git(repo, "config", "user.name", "test")
    dvc(repo, "init", "-q")
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")  # the local remote
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
