"""Dagster's `dg` project layout (issue 26): `dg check defs` and `dg list defs` on this
checkout, and the DatasetBuild component loaded from a real defs.yaml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.partitions.context import partition_loading_context

from flair_pipeline.defs.partitions import DOMAINS

from ..conftest import REPO

DG = str(Path(sys.executable).parent / "dg")

#: The project's assets, jobs, sensors and resources, written out by hand (docs/architecture.md).
ASSETS = {
    "domain_sources",
    "patch_grid",
    "aerial_patches",
    "label_masks",
    "crop_labels",
    "dataset_metadata",
    "split_assignment",
    "sentinel2_series",
    "sentinel1_series",
    "sentinel2_index",
    "packed_training_input",
    "model_unet",
    "model_utt",
    "evaluation_unet",
    "evaluation_utt",
    "model_comparison",
    "hub_release",
    "model_hub",
    "evaluation_hub",
}
#: What ``build_domain`` (and every DatasetBuild job) materialises: one domain's dataset files.
DOMAIN_ASSETS = {
    "domain_sources",
    "patch_grid",
    "aerial_patches",
    "label_masks",
    "crop_labels",
    "dataset_metadata",
}
JOBS = {"build_domain", "build_demo_gpu"}  # build_demo_gpu: defs/demo_build/defs.yaml
SENSORS = {"new_domains_sensor", "downstream_automation", "demo_gpu_domains"}
RESOURCES = {"flair", "sentinelhub"}


def _env(tmp_path: Path) -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PYTHONPATH": pythonpath}


def test_dg_check_defs_and_list_defs_show_the_projects_definitions(tmp_path: Path) -> None:
    env = _env(tmp_path)
    (tmp_path / "home").mkdir()
    # both at once: each loads the code location (tens of seconds on a busy machine)
    check = subprocess.Popen(
        [DG, "check", "defs"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    listed = subprocess.run(
        [DG, "list", "defs", "--json"], cwd=REPO, env=env, capture_output=True, timeout=300
    )
    out, _ = check.communicate(timeout=300)
    text = out.decode()
    assert check.returncode == 0, text
    assert "All component YAML validated successfully." in text
    assert "All definitions loaded successfully." in text
    assert "superseded" not in text.lower()

    assert listed.returncode == 0, listed.stderr.decode()
    defs = json.loads(listed.stdout)
    assert {a["asset_key"] for a in defs["assets"]} == ASSETS
    assert {j["name"] for j in defs["jobs"]} == JOBS
    assert {s["name"] for s in defs["sensors"]} == SENSORS
    assert {r["name"] for r in defs["resources"]} == RESOURCES
    jobs = {j["name"]: j for j in defs["jobs"]}
    assert jobs["build_demo_gpu"]["source"] == "flair_pipeline/defs/demo_build/defs.yaml:5"


def test_the_folder_holds_what_the_old_package_loader_found() -> None:
    # load_from_defs_folder (dg) against load_assets_from_package_module (before issue 26)
    from flair_pipeline.definitions import ALL_ASSETS, DATASET_ASSETS, defs
    from flair_pipeline.defs import assets as assets_package

    old = {
        k.to_user_string()
        for a in dg.load_assets_from_package_module(assets_package)
        if isinstance(a, dg.AssetsDefinition)
        for k in a.keys
    }
    assert old == ASSETS
    assert {k.to_user_string() for a in ALL_ASSETS for k in a.keys} == ASSETS
    assert {k.to_user_string() for a in DATASET_ASSETS for k in a.keys} == DOMAIN_ASSETS
    repo = defs.get_repository_def()
    # the nightly condition still reaches the all-domain assets through `defs`
    assert repo.assets_defs_by_key[dg.AssetKey("split_assignment")].automation_conditions_by_key
    assert {s.name for s in repo.sensor_defs} == SENSORS


def _project(tmp_path: Path, attributes: str, recipe: str | None = None) -> tuple[Path, str]:
    """A dg project in `tmp_path` whose defs folder holds one DatasetBuild defs.yaml."""
    module = f"dgtest_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "proj"
    (root / module / "defs" / "gironde").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\nroot_module = "{module}"\n'
        'registry_modules = ["flair_pipeline.components"]\n'
    )
    (root / module / "__init__.py").write_text("")
    (root / module / "defs" / "__init__.py").write_text("")
    (root / module / "defs" / "gironde" / "defs.yaml").write_text(
        f"type: flair_pipeline.components.DatasetBuild\nattributes:\n{attributes}"
    )
    if recipe is not None:
        (root / "recipe.yaml").write_text(recipe)
    return root, module


def test_a_dataset_build_declared_in_yaml_yields_its_job_and_sensor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = _project(
        tmp_path,
        "  name: gironde\n  domains: [D033_2021, D033_2018]\n  recipe: recipe.yaml\n",
        recipe="sampling:\n  patch_size: 256\ndataset:\n  compression: deflate\n",
    )
    monkeypatch.syspath_prepend(str(root))
    defs = dg.load_from_defs_folder(path_within_project=root)

    # the job needs the assets it selects and their resources: beside it, as in the project
    from flair_pipeline.definitions import ALL_ASSETS
    from flair_pipeline.definitions import defs as project

    beside = dg.Definitions(assets=ALL_ASSETS, resources=project.resources)
    repo = dg.Definitions.merge(defs, beside).get_repository_def()
    job = repo.get_job("build_gironde")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == DOMAIN_ASSETS
    assert job.run_tags["flair/recipe"] == "recipe.yaml"
    (sensor,) = repo.sensor_defs
    assert sensor.name == "gironde_domains"
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    with dg.instance_for_test() as instance:
        # the recipe's keys, flattened by hand, are the resource's overrides in every run
        with partition_loading_context(dynamic_partitions_store=instance):
            assert job.partitioned_config is not None  # a per-domain job: its config per partition
            assert job.partitioned_config.get_run_config_for_partition_key("D033_2021") == {
                "resources": {
                    "flair": {
                        "config": {
                            "overrides": ["sampling.patch_size=256", "dataset.compression=deflate"]
                        }
                    }
                }
            }
        # the sensor's own answer (the daemon adds the partitions, then launches the runs)
        result = sensor(dg.build_sensor_context(instance=instance))
        assert [r.partition_key for r in result.run_requests or []] == ["D033_2021", "D033_2018"]
        (add,) = result.dynamic_partitions_requests or []
        assert isinstance(add, dg.AddDynamicPartitionsRequest)
        assert (add.partitions_def_name, list(add.partition_keys)) == (
            DOMAINS,
            ["D033_2021", "D033_2018"],
        )
        instance.add_dynamic_partitions(DOMAINS, ["D033_2021"])
        again = sensor(dg.build_sensor_context(instance=instance))
        (add,) = again.dynamic_partitions_requests or []
        assert list(add.partition_keys) == ["D033_2018"]  # only the one not yet known
        # the same run keys: Dagster launches each domain once per recipe version
        assert [r.run_key for r in again.run_requests or []] == [
            r.run_key for r in result.run_requests or []
        ]


@pytest.mark.parametrize(
    ("attributes", "recipe", "expected"),
    [
        (
            "  name: gironde\n  domains: [D033_2021, D999_2021]\n",
            None,
            "gironde/defs.yaml: domains[1] 'D999_2021': ",
        ),
        ("  name: gironde\n  domains: []\n", None, "gironde/defs.yaml: domains is empty"),
        (
            "  name: gironde\n  domains: [D033_2021]\n  recipe: recipe.yaml\n",
            "sampling:\n  patch_size: big\n",
            "recipe.yaml: ",
        ),
    ],
)
def test_a_bad_declaration_is_one_line_naming_the_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    attributes: str,
    recipe: str | None,
    expected: str,
) -> None:
    root, _ = _project(tmp_path, attributes, recipe)
    monkeypatch.syspath_prepend(str(root))
    with pytest.raises(Exception) as info:
        dg.load_from_defs_folder(path_within_project=root)
    messages = []
    exc: BaseException | None = info.value
    while exc is not None:
        messages.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    line = next(m for m in messages if expected in m)
    assert "\n" not in line, line
