"""`dvc repro` end to end in a real git + DVC repo on the tiny world (tests/automation/
dvc_repo.py; one repo built per session): every stage runs, every produced file has an
owner, a second repro is a no-op, errors name the key or folder, and what the UI builds
is recorded by `flair-pipeline dvc-record`. The last tests:
DVC as people share it: `dvc push` to the local remote of .dvc/config, a fresh
`git clone` + `dvc pull` that is up to date, then `dvc exp run -S` (rerunning only the
stages that read the param) and `dvc exp show` / `dvc metrics diff` comparing the runs.
One module, so that `pytest --dist loadscope` builds the repo once."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml

from tests.automation.dvc_repo import TINY, dvc, flair, git, ran, set_param, stages

pytestmark = pytest.mark.slow


def test_first_repro_builds_every_stage(dvc_repo) -> None:
    path, first = dvc_repo
    names = stages(path)
    assert {f"dataset@{d}" for d in TINY} | {f"sentinel2@{d}" for d in TINY} <= names
    assert {f"sentinel1@{d}" for d in TINY} <= names  # issue 25
    assert {
        "synth",
        "split",
        "sentinel2_index",
        "train_unet",
        "train_utt",
        "evaluate_unet",
        "evaluate_utt",
        "compare",
        "demo_map",
    } <= names
    assert ran(first) == names, first.stdout
    assert len(list((path / "data/dataset/aerial").rglob("IMG_*.tif"))) == 3 * 4
    maps = sorted((path / "data/eval/maps").glob("map_*.tif"))
    assert [m.name.rsplit("_", 1)[1] for m in maps] == ["unet.tif", "utt.tif"]


def test_every_produced_file_is_declared_by_a_stage(dvc_repo) -> None:
    # One owner per artifact: nothing the assets write escapes DVC's outs.
    path, _ = dvc_repo
    lock = yaml.safe_load((path / "dvc.lock").read_text())
    declared = [Path(o["path"]) for st in lock["stages"].values() for o in st.get("outs", [])]
    for out in declared:
        assert (path / out).exists(), f"{out} declared but not written"
    for root in ("data/raw", "data/dataset", "data/models", "data/eval"):
        for f in (path / root).rglob("*"):
            rel = f.relative_to(path)
            if f.is_file() and f.name != ".gitignore" and ".locks" not in rel.parts:
                # .locks: the build steps' lock files (dataset/domain_lock.py), no output
                assert any(rel == o or o in rel.parents for o in declared), f"{rel} has no stage"


def test_second_repro_runs_nothing(dvc_repo) -> None:
    path, _ = dvc_repo
    again = dvc(path, "repro")
    assert ran(again) == set(), again.stdout
    status = dvc(path, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout


def test_demo_command_is_dvc_repro_then_the_table(dvc_repo) -> None:
    """`flair-pipeline demo` (what `make demo` runs) on the built repo: DVC has nothing to
    rerun, and it prints the comparison table and the maps the `demo_map` stage wrote."""
    path, _ = dvc_repo
    r = flair(path, "demo")
    assert r.returncode == 0, r.stderr
    assert ran(r) == set() and "Data and pipelines are up to date" in r.stdout + r.stderr
    assert (path / "data/eval/comparison.md").read_text() in r.stdout
    maps = (path / "data/eval/maps/maps.md").read_text().splitlines()
    assert len(maps) == 2 and all(line in r.stdout for line in maps), r.stdout


def test_metrics_show_lists_both_models(dvc_repo) -> None:
    path, _ = dvc_repo
    shown = json.loads(dvc(path, "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]  # the workspace, the only revision
    for model in ("unet", "utt"):
        on_disk = json.loads((path / f"data/eval/{model}/metrics.json").read_text())
        m = files[f"data/eval/{model}/metrics.json"]["data"]
        assert m["miou"] == on_disk["miou"] and 0.0 <= m["miou"] <= 1.0


def test_exp_show_lists_dvclive_metrics_of_each_model(dvc_repo) -> None:
    """`dvc exp show` after the demo's repro: each model's last-epoch metrics as DVCLive
    wrote them (step = epoch, each epoch once), next to the evaluation's."""
    path, _ = dvc_repo
    shown = json.loads(dvc(path, "exp", "show", "--json").stdout)
    workspace = next(r for r in shown if r["rev"] == "workspace")["data"]["metrics"]
    for model in ("unet", "utt"):
        tsv = path / f"data/models/{model}/dvclive/plots/metrics/val_miou.tsv"
        # read by hand, by header (DVCLive's columns: step, then the metric)
        header, *rows = [line.split("\t") for line in tsv.read_text().splitlines()]
        table = [dict(zip(header, r, strict=True)) for r in rows]
        assert [int(r["step"]) for r in table] == list(range(len(table)))  # each epoch once
        m = workspace[f"data/models/{model}/dvclive/metrics.json"]["data"]
        assert m["step"] == int(table[-1]["step"])
        assert m["val_miou"] == float(table[-1]["val_miou"])
        assert {"train_loss", "val_loss"} <= set(m) and "epoch" not in m


def test_plots_show_draws_curves_and_confusion_matrices(dvc_repo, tmp_path: Path) -> None:
    path, _ = dvc_repo
    shown = json.loads(dvc(path, "plots", "show", "--json").stdout)["data"]
    for model in ("unet", "utt"):
        curves = shown[f"training curves {model}"][0]["content"]
        # DVCLive's TSVs, one per metric, against its step (the epoch)
        fields = {row["filename::field"].split("::")[1] for row in curves["data"]["values"]}
        assert fields == {"train_loss", "val_loss", "val_miou"}
        assert curves["encoding"]["x"]["field"] == "step"
        assert curves["encoding"]["x"]["title"] == "epoch"
        conf = shown[f"data/eval/{model}/confusion.csv"][0]["content"]
        # our template (shares of the true class), filled with the CSV's 13 rows
        assert conf["spec"]["transform"][1]["fold"][0] == "building"
        rows = conf["data"]["values"]
        csv_rows = (path / f"data/eval/{model}/confusion.csv").read_text().splitlines()[1:]
        assert [r["truth\\pred"] for r in rows] == [r.split(",")[0] for r in csv_rows]
        assert shown[f"per-domain mIoU {model}"][0]["content"]["encoding"]["y"]["field"] == "domain"
    html = dvc(path, "plots", "show", "-o", str(tmp_path / "plots"))
    index = tmp_path / "plots" / "index.html"
    assert index.is_file(), html.stdout
    assert "training curves utt" in index.read_text()


def test_domain_missing_on_disk_is_named(dvc_repo) -> None:
    path, _ = dvc_repo
    set_param(path, "build.domains", [*TINY, "D001_2020"])
    try:
        r = dvc(path, "repro", "dataset@D001_2020", check=False)
        assert r.returncode != 0
        assert "data/raw/domains/D001_2020" in r.stdout + r.stderr, r.stdout + r.stderr
        assert not (path / "data/dataset/aerial/D001_2020").exists()
    finally:
        set_param(path, "build.domains", list(TINY))


def test_invalid_params_are_named_by_key(dvc_repo) -> None:
    path, _ = dvc_repo
    saved = (path / "params.yaml").read_text()
    try:
        set_param(path, "sampling.patch_size", -3)
        r = dvc(path, "repro", f"dataset@{TINY[0]}", check=False)
        out = r.stdout + r.stderr
        assert r.returncode != 0
        assert "params.yaml" in out and "sampling.patch_size" in out, out
        (path / "params.yaml").write_text("paths: [unclosed\n")
        r = dvc(path, "status", check=False)
        assert r.returncode != 0 and "params.yaml" in r.stdout + r.stderr
    finally:
        (path / "params.yaml").write_text(saved)
        dvc(path, "checkout", "--force", "-q")  # a failed stage leaves its outputs removed


def test_dvc_record_commits_what_the_ui_built_and_refuses_stale_outputs(dvc_repo) -> None:
    """A param changed, then only U-Net's evaluation materialized (as from the UI): it is
    recorded; U-T&T's evaluation and the map read the param but were not rebuilt."""
    path, _ = dvc_repo
    try:
        set_param(path, "eval.batch_size", 2)
        built = flair(path, "materialize", "--select", "key:evaluation_unet")
        assert built.returncode == 0, built.stderr
        r = flair(path, "dvc-record")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "recorded 1 stage(s): evaluate_unet" in r.stdout, r.stdout
        for stale in ("evaluate_utt", "demo_map"):
            assert f"not recorded: {stale}: params.yaml changed after" in r.stdout, r.stdout
        status = json.loads(dvc(path, "status", "--json").stdout)
        # compare too if U-Net's rebuilt outputs differ by a bit (batch size): it reads them
        assert set(status) - {"compare"} == {"evaluate_utt", "demo_map"}, status
        lock = yaml.safe_load((path / "dvc.lock").read_text())["stages"]
        assert lock["evaluate_unet"]["params"]["params.yaml"]["eval"]["batch_size"] == 2
        assert lock["evaluate_utt"]["params"]["params.yaml"]["eval"]["batch_size"] == 4
    finally:  # back to the committed state, outputs from the cache
        git(path, "checkout", "--", "params.yaml", "dvc.lock")
        dvc(path, "checkout", "--force", "-q")
    status = dvc(path, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout


def _pixels(folder: Path, pattern: str) -> dict[str, np.ndarray]:
    out = {}
    for p in sorted(folder.rglob(pattern)):
        with rasterio.open(p) as src:
            out[p.relative_to(folder).as_posix()] = src.read()
    return out


def test_repro_builds_a_domain_from_the_ign_flavour(dvc_repo) -> None:
    """`synth.flavour: ign` (what `dvc exp run -S synth.flavour=ign` sets): `dvc repro` of one
    domain's dataset stage reruns `synth`, which writes the raw world as IGN delivers it,
    then builds the domain through its domain.yaml: the same IMG (R, G, B, NIR) and MSK
    pixels as the plain build, the elevation up to the DSM's documented resampling."""
    path, _ = dvc_repo
    domain = TINY[1]
    aerial, labels = path / "data/dataset/aerial" / domain, path / "data/dataset/labels" / domain
    plain_img, plain_msk = _pixels(aerial, "IMG_*.tif"), _pixels(labels, "MSK_*.tif")
    assert len(plain_img) == 4 and len(plain_msk) == 4
    try:
        set_param(path, "synth.flavour", "ign")
        r = dvc(path, "repro", f"dataset@{domain}")
        assert ran(r) == {"synth", f"dataset@{domain}"}, r.stdout
        folder = path / "data/raw/domains" / domain
        assert (folder / "domain.yaml").is_file() and not (folder / "domain.json").exists()
        jp2 = [p.name for p in (folder / "ortho").glob("*.jp2")]
        assert jp2 and sum("-IRC-" in n for n in jp2) * 2 == len(jp2)
        img, msk = _pixels(aerial, "IMG_*.tif"), _pixels(labels, "MSK_*.tif")
        assert img.keys() == plain_img.keys() and msk.keys() == plain_msk.keys()
        for name, a in plain_img.items():
            assert np.array_equal(a[:4], img[name][:4]), name  # lossless JPEG 2000
        assert all(np.array_equal(a, msk[name]) for name, a in plain_msk.items())
        diff = np.concatenate(
            [np.abs(a[4].astype(int) - img[n][4].astype(int)).ravel() for n, a in plain_img.items()]
        )
        assert np.median(diff) == 0 and np.percentile(diff, 99) <= 6  # docs/inputs.md
        lock = yaml.safe_load((path / "dvc.lock").read_text())["stages"]
        assert lock["synth"]["params"]["params.yaml"]["synth"]["flavour"] == "ign"
    finally:  # back to the plain world of the committed dvc.lock, outputs from the cache
        git(path, "checkout", "--", "params.yaml", "dvc.lock")
        dvc(path, "checkout", "--force", "-q")
    assert (path / "data/raw/domains" / domain / "domain.json").is_file()
    status = dvc(path, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout


# --- shared: push, fresh clone + pull, experiments (was test_dvc_clone.py) -------------


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
    for f in (
        "data/eval/comparison.md",
        "data/eval/unet/metrics.json",
        "data/models/utt/checkpoints/best.ckpt",
    ):
        assert (clone / f).read_bytes() == (path / f).read_bytes(), f
    status = dvc(clone, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    assert ran(dvc(clone, "repro")) == set()


def test_exp_run_reruns_only_the_readers_of_the_param_and_exp_show_compares(clone) -> None:
    if not (clone / "data").exists():
        dvc(clone, "pull", "-q")
    r = dvc(clone, "exp", "run", "-n", "retries5", "-S", "sentinel2.source.max_retries=5")
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
    assert value(base, "params", "params.yaml", "sentinel2", "source", "max_retries") == 3
    assert value(exp, "params", "params.yaml", "sentinel2", "source", "max_retries") == 5
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


def test_a_hub_recipe_is_a_dvc_experiment(clone) -> None:
    """Issue 24: a FLAIR-HUB recipe (hub.* keys over params.yaml) through `recipe-args` and
    `dvc exp run`: only the hub model's stages rerun, a key params.yaml lacks goes in as
    Hydra's `+key`, and `dvc exp show` lists the experiment with its hub metrics."""
    if not (clone / "data").exists():
        dvc(clone, "pull", "-q")
    weights = [1.0] * 15 + [0.0] * 4  # COSIA's 19 classes, IGN's 15-18 unscored
    recipe = clone / "hub-tiny.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "hub": {
                    "train": {
                        "epochs": 2,
                        "tasks": {"AERIAL_LABEL-COSIA": {"class_weights": weights}},
                    }
                }
            }
        )
    )
    args = flair(clone, "recipe-args", str(recipe)).stdout.split()
    assert (
        "+hub.train.tasks.AERIAL_LABEL-COSIA.class_weights=" + str(weights).replace(" ", "") in args
    )
    r = dvc(clone, "exp", "run", "-n", "hub-tiny", *args)
    assert ran(r) == {"train_hub", "evaluate_hub"}, r.stdout
    params = yaml.safe_load((clone / "params.yaml").read_text())["hub"]["train"]
    assert (
        params["epochs"] == 2 and params["tasks"]["AERIAL_LABEL-COSIA"]["class_weights"] == weights
    )
    shown = json.loads(dvc(clone, "exp", "show", "--json").stdout)
    base = next(row for row in shown if row["rev"] != "workspace")
    exps = {e.get("name"): e for x in base.get("experiments") or [] for e in x["revs"]}
    metrics = exps["hub-tiny"]["data"]["metrics"]
    on_disk = json.loads((clone / "data/eval/hub/metrics.json").read_text())
    assert metrics["data/eval/hub/metrics.json"]["data"]["miou"] == on_disk["miou"]
    assert metrics["data/models/hub/dvclive/metrics.json"]["data"]["step"] == 1  # 2 epochs
