"""dvc.yaml agrees with the Dagster asset graph and the artifact registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from flair_pipeline.definitions import ALL_ASSETS, DATASET_ASSETS, defs
from flair_pipeline.defs.resources import PipelineConfigResource, sentinelhub_credentials
from flair_pipeline.orchestration import dvc_yaml
from flair_pipeline.orchestration.artifacts import ARTIFACTS, COMMAND_STAGES, to_dvc
from tests.conftest import REPO

RESOURCES = {"flair": PipelineConfigResource(), "sentinelhub": sentinelhub_credentials()}


def _committed() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_committed_dvc_yaml_is_current() -> None:
    assert dvc_yaml.check(REPO / "dvc.yaml") is None, (
        "dvc.yaml is stale: run `flair-pipeline dvc-yaml` and commit it"
    )


def test_every_asset_has_a_stage_writing_its_files_and_nothing_else() -> None:
    stages = _committed()
    graph = defs.resolve_asset_graph()
    names = {k.to_user_string() for k in graph.get_all_asset_keys()}
    owned: dict[str, set[str]] = {name: set() for name in stages}
    for name in names:
        art = ARTIFACTS[name]
        body = stages[art.stage].get("do", stages[art.stage])
        assert f"key:{name}" in body["cmd"], f"stage {art.stage} does not materialize {name}"
        owned[art.stage] |= {to_dvc(p) for p in art.owned}
    for name, cmd in COMMAND_STAGES.items():
        owned[name] |= {to_dvc(p) for p in cmd.outs}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        declared = set(body.get("outs", []))
        declared |= {next(iter(m)) if isinstance(m, dict) else m for m in body.get("metrics", [])}
        declared |= {next(iter(p)) if isinstance(p, dict) else p for p in body.get("plots", [])}
        assert declared == owned[name], f"stage {name}: {declared ^ owned[name]}"
        assert body["cmd"].startswith("flair-pipeline ")
        per_domain = "foreach" in stage
        assert per_domain == ("${item}" in body["cmd"]), name


def test_code_dependencies_exist() -> None:
    for name, stage in _committed().items():
        for dep in stage.get("do", stage).get("deps", []):
            if not dep.startswith("${"):
                assert (REPO / dep).exists(), f"stage {name}: dependency {dep} does not exist"


def test_an_unregistered_asset_fails_with_a_pointer_to_the_registry() -> None:
    @dg.asset(deps=["split_assignment"])
    def brand_new_asset() -> None:
        """An asset someone added without declaring it in stages.py."""

    extended = dg.Definitions(assets=[*ALL_ASSETS, brand_new_asset], resources=RESOURCES)
    with pytest.raises(dvc_yaml.RegistryError, match=r"brand_new_asset.*stages\.py"):
        dvc_yaml.generate(extended)


def test_stages_appear_only_for_assets_that_exist() -> None:
    dataset_only = dg.Definitions(assets=DATASET_ASSETS, resources=RESOURCES)
    stages = yaml.safe_load(dvc_yaml.generate(dataset_only))["stages"]
    assert set(stages) == {"synth", "dataset", "crop_labels"}  # crop_labels: issue 25


def test_cli_check_and_write(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).parent / "flair-pipeline")
    ok = subprocess.run([exe, "dvc-yaml", "--check"], cwd=REPO, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    stale = tmp_path / "dvc.yaml"
    stale.write_text("stages: {}\n")
    bad = subprocess.run(
        [exe, "dvc-yaml", "--check", "--out", str(stale)], capture_output=True, text=True
    )
    assert bad.returncode == 1 and "out of date" in bad.stderr
    subprocess.run([exe, "dvc-yaml", "--out", str(stale)], check=True, capture_output=True)
    assert stale.read_text() == (REPO / "dvc.yaml").read_text()


def test_top_level_plots_draw_files_that_stages_write_with_existing_templates() -> None:
    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    outs = {o for st in doc["stages"].values() for o in st.get("do", st).get("outs", [])}
    builtin = {"linear", "bar_horizontal"}  # DVC's own templates used here
    titles = []
    for entry in doc["plots"]:
        ((title, props),) = entry.items()
        titles.append(title)
        files = list(props["y"]) if isinstance(props.get("y"), dict) else [title]
        # a file a stage writes, or one inside a folder it writes (DVCLive's TSVs)
        written = [f in outs or any(f.startswith(o + "/") for o in outs) for f in files]
        assert all(written), f"plot {title}: {files} written by no stage"
        assert props["template"] in builtin or (REPO / props["template"]).is_file(), title
    for model in ("unet", "utt"):
        assert f"training curves {model}" in titles
        assert f"${{paths.eval}}/{model}/confusion.csv" in titles


def test_confusion_template_folds_the_13_classes_of_the_csv() -> None:
    from flair_pipeline.orchestration.artifacts import CONFUSION_TEMPLATE

    template = json.loads((REPO / CONFUSION_TEMPLATE).read_text())
    fold = next(t["fold"] for t in template["spec"]["transform"] if "fold" in t)
    # the CSV's header (evaluation.plots.confusion_csv) after its first column, by hand
    assert fold == [
        "building",
        "pervious surface",
        "impervious surface",
        "bare soil",
        "water",
        "coniferous",
        "deciduous",
        "brushwood",
        "vineyard",
        "herbaceous vegetation",
        "agricultural land",
        "plowed land",
        "other",
    ]
    assert template["data"]["values"] == "<DVC_METRIC_DATA>"


def test_gpu_recipe_args_are_flairs_recipe_and_validated(tmp_path: Path) -> None:
    from flair_pipeline.errors import ConfigError
    from flair_pipeline.recipes import set_args

    args = set_args(REPO / "recipes" / "flair-gpu.yaml", REPO / "params.yaml")
    pairs = dict(a.split("=", 1) for a in args[1::2])
    assert args[::2] == ["-S"] * len(pairs)
    # FLAIR #1/#2: 200 epochs, full resolution, SGD lr 0.02, batch 10, bf16, U-TAE width 64
    assert pairs["train.epochs"] == "200" and pairs["train.downsample"] == "1"
    assert pairs["train.optimizer"] == "sgd" and pairs["train.lr"] == "0.02"
    assert pairs["train.batch_size"] == "10" and pairs["train.precision"] == "bf16-mixed"
    assert pairs["train.utae_width"] == "64"
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["train"]["epochs"] < 200 and params["train"]["downsample"] > 1  # CPU recipe
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: -1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.epochs"):
        set_args(bad, REPO / "params.yaml")
