"""DVC as people share it: `dvc push` to the local remote of .dvc/config, a fresh
`git clone` + `dvc pull` that is up to date, then `dvc exp run -S` (rerunning only the
stages that read the param) and `dvc exp show` / `dvc metrics diff` comparing the runs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.automation.dvc_repo import TINY, dvc, git, ran

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clone(dvc_repo) -> Iterator[Path]:
    """A fresh clone of the built repo, its data pulled from the local remote."""
    path, _ = dvc_repo
    dvc(path, "push", "-q")
    fresh = path.parent / "clone"
    subprocess.run(["git", "clone", "-q", str(path), str(fresh)], check=True)
    git(fresh, "config", "user.email", "test@example.org")
    git(fresh, "config", "user.name", "test")
    yield fresh


def test_fresh_clone_pulls_everything_and_is_up_to_date(dvc_repo, clone: Path) -> None:
    path, _ = dvc_repo
    remote = path.parent / "flair-dvc-remote"  # ../../flair-dvc-remote from repo/.dvc
    assert any(remote.rglob("*")), "dvc push wrote nothing to the remote of .dvc/config"
    assert not (clone / "data").exists()
    dvc(clone, "pull", "-q")
    for f in ("data/eval/comparison.md", "data/eval/unet/metrics.json",
              "data/models/utt/checkpoints/best.ckpt"):  # fmt: skip
        assert (clone / f).read_bytes() == (path / f).read_bytes(), f
    status = dvc(clone, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    assert ran(dvc(clone, "repro")) == set()


def test_exp_run_reruns_only_the_readers_of_the_param_and_exp_show_compares(clone) -> None:
    if not (clone / "data").exists():
        dvc(clone, "pull", "-q")
    r = dvc(clone, "exp", "run", "-n", "retries5", "-S", "sentinel2.max_retries=5")
    # only the Sentinel-2 stages and the map declare `sentinel2`; the series they write are
    # unchanged, so the index and U-T&T's training (which read them) do not rerun
    assert ran(r) == {f"sentinel2@{d}" for d in TINY} | {"demo_map"}, r.stdout
    shown = json.loads(dvc(clone, "exp", "show", "--json").stdout)
    # rows: the workspace, then the baseline commit with its experiments
    base = next(row for row in shown if row["rev"] != "workspace")
    exps = {e.get("name"): e for x in base.get("experiments") or [] for e in x["revs"]}
    assert "retries5" in exps, list(exps)

    def value(run: dict, kind: str, file: str, *keys: str) -> object:
        node = run["data"][kind][file]["data"]
        for k in keys:
            node = node[k]
        return node

    exp = exps["retries5"]
    assert value(base, "params", "params.yaml", "sentinel2", "max_retries") == 3
    assert value(exp, "params", "params.yaml", "sentinel2", "max_retries") == 5
    for model in ("unet", "utt"):
        on_disk = json.loads((clone / f"data/eval/{model}/metrics.json").read_text())["miou"]
        for run in (base, exp):  # read from the cache: data/ is git-ignored
            assert value(run, "metrics", f"data/eval/{model}/metrics.json", "miou") == on_disk
    # HEAD's metrics and plots come from the cache (data/ is git-ignored): same data, so
    # `metrics diff` finds no change, and `plots diff` draws both revisions
    diff = json.loads(dvc(clone, "metrics", "diff", "HEAD", "--all", "--json").stdout)
    for model in ("unet", "utt"):
        on_disk = json.loads((clone / f"data/eval/{model}/metrics.json").read_text())["miou"]
        miou = diff[f"data/eval/{model}/metrics.json"]["miou"]
        assert miou["old"] == miou["new"] == on_disk and miou["diff"] == 0, diff
    plots = json.loads(dvc(clone, "plots", "diff", "HEAD", "--json").stdout)["data"]
    for title in ("training curves utt", "data/eval/utt/confusion.csv"):
        assert set(plots[title][0]["revisions"]) == {"HEAD", "workspace"}, title
