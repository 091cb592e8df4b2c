"""One declaration per stage (issue 28): assets, checks, jobs and dvc.yaml come from it.

A trivial stage added in the test as one declaration plus its body appears as an asset
(with its partitions, dependency and blocking check, and materializes on a real Dagster
instance), in the ``build_domain`` job and as a dvc stage, and every other dvc stage is
unchanged. The project's assets agree with their declarations, checked against values
written here by hand (the assets as they were written before the declarations).
"""

from dataclasses import dataclass
from typing import Any

import dagster as dg
import pytest
import yaml

from flair_pipeline import layout as L
from flair_pipeline.definitions import ALL_ASSETS, defs
from flair_pipeline.defs.declared import stage_asset
from flair_pipeline.defs.jobs import stage_jobs
from flair_pipeline.defs.partitions import DOMAINS
from flair_pipeline.defs.resources import PipelineConfigResource, sentinelhub_credentials
from flair_pipeline.layout import PathTemplate
from flair_pipeline.orchestration import dvc_yaml
from flair_pipeline.orchestration.code_deps import import_closure
from flair_pipeline.reports import JSON, StageReport
from flair_pipeline.stages import BUILD_DOMAIN, STAGES, STAGES_BY_NAME, Stage, by_name
from tests.conftest import REPO

RESOURCES = {"flair": PipelineConfigResource(), "sentinelhub": sentinelhub_credentials()}
PATCH_COUNT = PathTemplate("dataset", "metadata/patch_count/{domain}.json")

#: The trivial stage: one declaration ...
COUNT = Stage(
    name="patch_count",
    group="dataset",
    description="How many patches a domain's grid holds.",
    function="flair_pipeline.layout:patch_id_of",
    dvc_stage="count",
    per_domain=True,
    inputs=("patch_grid",),
    outputs=(PATCH_COUNT,),
    params=("sampling",),
    check="counted",
    kinds=frozenset({"python"}),
    jobs=(BUILD_DOMAIN,),
)
EXTENDED = (*STAGES, COUNT)


@dataclass(frozen=True)
class CountReport(StageReport):
    """The trivial stage's report."""

    patches: int = 0

    def as_metadata(self) -> dict[str, JSON]:
        """The count."""
        return {"patches": self.patches}


# ... plus its code. A real stage's body lives in defs/assets/, whose module is the root of
# the stage's code dependencies; the test's body says it lives there.
def patch_count(context: dg.AssetExecutionContext, flair: PipelineConfigResource) -> StageReport:
    """Asset body of the trivial stage."""
    return CountReport(patches=len(context.partition_key))


patch_count.__module__ = "flair_pipeline.defs.assets.dataset"
COUNT_ASSET = stage_asset(COUNT, by_name(EXTENDED))(patch_count)


def _extended_defs() -> dg.Definitions:
    assets = [*ALL_ASSETS, COUNT_ASSET]
    return dg.Definitions(
        assets=assets, jobs=stage_jobs(assets, by_name(EXTENDED)), resources=RESOURCES
    )


def test_a_declared_stage_is_an_asset_with_its_check_and_partitions() -> None:
    graph = _extended_defs().resolve_asset_graph()
    node = graph.get(dg.AssetKey("patch_count"))
    assert node.is_partitioned and node.group_name == "dataset"
    assert {p.to_user_string() for p in node.parent_keys} == {"patch_grid"}
    (spec,) = COUNT_ASSET.check_specs
    assert spec.name == "counted" and spec.blocking
    assert COUNT_ASSET.descriptions_by_key[dg.AssetKey("patch_count")] == COUNT.description


def test_a_declared_stage_materializes_and_its_check_passes() -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DOMAINS, ["D077_2021"])
        out = dg.materialize(
            [COUNT_ASSET],
            partition_key="D077_2021",
            instance=instance,
            resources=RESOURCES,
            selection=[COUNT_ASSET],
        )
        (mat,) = out.asset_materializations_for_node("patch_count")
        assert mat.metadata["patches"].value == len("D077_2021")
        (check,) = out.get_asset_check_evaluations()
        assert check.check_name == "counted" and check.passed


def test_a_declared_stage_joins_its_job() -> None:
    job = _extended_defs().resolve_job_def(BUILD_DOMAIN)
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    # the five domain assets as written by hand, plus the new one
    base = {"domain_sources", "patch_grid", "aerial_patches", "label_masks", "dataset_metadata"}
    base |= {"crop_labels"}  # issue 25
    assert keys == base | {"patch_count"}


def test_a_declared_stage_is_a_dvc_stage_and_nothing_else_changes() -> None:
    stages = yaml.safe_load(dvc_yaml.generate(_extended_defs(), EXTENDED))["stages"]
    committed = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    count = stages.pop("count")
    assert stages == committed
    body = count["do"]
    assert count["foreach"] == "${build.domains}"
    assert (
        body["cmd"] == "flair-pipeline materialize --select 'key:patch_count' --partition ${item}"
    )
    assert body["outs"] == ["${paths.dataset}/metadata/patch_count/${item}.json"]
    assert body["params"] == ["sampling"]
    # its input's file (written by the dataset stage), then its code
    assert body["deps"][0] == "${paths.dataset}/metadata/patch_grid/${item}.gpkg"
    assert "flair_pipeline/stages.py" in body["deps"]


def test_declarations_are_validated() -> None:
    with pytest.raises(ValueError, match="patch_grid is declared twice"):
        by_name([*STAGES, STAGES_BY_NAME["patch_grid"]])
    bad = Stage(name="x", group="g", description="", function="m:f", dvc_stage="x", inputs=("y",))
    with pytest.raises(ValueError, match=r"x names unknown input\(s\) or job\(s\) \['y'\]"):
        by_name([*STAGES, bad])
    with pytest.raises(ValueError, match="body patch_count for stage domain_sources"):
        stage_asset(STAGES_BY_NAME["domain_sources"])(patch_count)


#: The project's assets as they were written by hand before the declarations: their
#: dependencies, partitioning, check, group and staged dataset files (None: not staged).
HAND: dict[str, tuple[set[str], bool, str | None, str, Any]] = {
    "domain_sources": (set(), True, None, "sources", ()),
    "patch_grid": ({"domain_sources"}, True, "has_patches", "dataset", (L.SOURCES_RECORD,)),
    "aerial_patches": (
        {"patch_grid"},
        True,
        "img_format",
        "dataset",
        (L.PATCH_GRID, L.SOURCES_RECORD),
    ),
    "label_masks": ({"patch_grid"}, True, "msk_codes", "dataset", (L.PATCH_GRID,)),
    "crop_labels": ({"patch_grid"}, True, "crop_codes", "dataset", (L.PATCH_GRID, L.RAW_RPG)),
    "dataset_metadata": (
        {"aerial_patches", "label_masks", "domain_sources"},
        True,
        "img_msk_pairs",
        "dataset",
        (L.PATCH_GRID, L.AERIAL, L.LABELS, L.SOURCES_RECORD),
    ),
    "sentinel2_series": ({"patch_grid"}, True, "series_valid", "sentinel2", None),
    "sentinel1_series": ({"patch_grid"}, True, "s1_series_valid", "sentinel1", None),  # issue 25
    "split_assignment": (
        {"dataset_metadata"},
        False,
        "no_split_leakage",
        "dataset",
        (L.DOMAIN_METADATA.all_domains(),),
    ),
    "sentinel2_index": ({"sentinel2_series"}, False, None, "sentinel2", None),
    "packed_training_input": (
        {"split_assignment", "aerial_patches", "label_masks"},
        False,
        None,
        "training",
        None,
    ),
    "model_unet": (
        {"split_assignment", "aerial_patches", "label_masks", "packed_training_input"},
        False,
        None,
        "training",
        None,
    ),
    "model_utt": (
        {
            "split_assignment",
            "aerial_patches",
            "label_masks",
            "sentinel2_index",
            "packed_training_input",
        },
        False,
        None,
        "training",
        None,
    ),
    "evaluation_unet": (
        {"model_unet", "split_assignment", "aerial_patches", "label_masks"},
        False,
        None,
        "evaluation",
        None,
    ),
    "evaluation_utt": (
        {"model_utt", "split_assignment", "aerial_patches", "label_masks", "sentinel2_index"},
        False,
        None,
        "evaluation",
        None,
    ),
    "model_comparison": ({"evaluation_unet", "evaluation_utt"}, False, None, "evaluation", None),
    # issue 24: the FLAIR-HUB model (params.yaml hub), after the baselines
    "hub_release": (
        {"split_assignment", "aerial_patches", "label_masks", "sentinel2_index"},
        False,
        None,
        "training",
        None,
    ),
    "model_hub": ({"hub_release"}, False, None, "training", None),
    "evaluation_hub": ({"model_hub", "hub_release"}, False, None, "evaluation", None),
}


def test_the_project_assets_are_their_declarations() -> None:
    graph = defs.resolve_asset_graph()
    names = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert names == set(HAND) == set(STAGES_BY_NAME)
    for name, (parents, per_domain, check, group, staged) in HAND.items():
        node = graph.get(dg.AssetKey(name))
        assert {p.to_user_string() for p in node.parent_keys} == parents, name
        assert node.is_partitioned == per_domain, name
        checks = {c.name for c in node.assets_def.check_specs}
        assert checks == ({check} if check else set()), name
        assert node.group_name == group, name
        assert STAGES_BY_NAME[name].staged == staged, name
    pools = {n: graph.get(dg.AssetKey(n)).assets_def.op.pool for n in HAND}
    assert {n for n, p in pools.items() if p == "gpu"} == {"model_unet", "model_utt", "model_hub"}


def test_each_declared_function_exists_and_is_a_code_dependency_of_its_stage() -> None:
    graph = defs.resolve_asset_graph()
    for stage in STAGES:
        assert callable(stage.resolve()), stage.name
        module = dvc_yaml._asset_module(graph.get(dg.AssetKey(stage.name)).assets_def)
        assert module.startswith("flair_pipeline.defs.assets."), stage.name
        assert stage.function_module in import_closure([module]), stage.name
