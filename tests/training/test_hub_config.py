"""The FLAIR-HUB training config: IGN's own files, our ``hub:`` section, unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flair_pipeline.errors import ConfigError
from flair_pipeline.model_registry import HUB_FAMILIES
from flair_pipeline.training.hub_config import hub_config_from_ign, load_hub_config
from tests.conftest import REPO

IGN_MODALITIES = (
    REPO.parent
    / "shared"
    / "real-samples"
    / "flair-metadata"
    / "configs"
    / "flair-hub-config_modalities.yaml"
)
# IGN's config_supervision.yaml (IGNF/FLAIR-HUB 3d5693b), both tasks on, names shortened
SUPERVISION = {
    "labels": ["AERIAL_LABEL-COSIA", "ALL_LABEL-LPIS"],
    "labels_configs": {
        "AERIAL_LABEL-COSIA": {
            "task_weight": 1,
            "value_name": {k: f"c{k}" for k in range(19)},
            "value_weights": {
                "default": 1,
                "default_exceptions": {15: 0, 16: 0, 17: 0, 18: 0},
                "per_modality_exceptions": {"AERIAL_RGBI": None, "SENTINEL2_TS": None},
            },
        },
        "ALL_LABEL-LPIS": {
            "task_weight": 0.5,
            "label_channel_nomenclature": 1,
            "value_name": {k: f"l{k}" for k in range(23)},
            "value_weights": {"default": 1, "default_exceptions": None},
        },
    },
}


def test_ign_config_files_as_published(tmp_path: Path) -> None:
    if not IGN_MODALITIES.is_file():
        pytest.skip(f"{IGN_MODALITIES} absent")
    raw = yaml.safe_load(IGN_MODALITIES.read_text())["modalities"]
    cfg = hub_config_from_ign(IGN_MODALITIES)
    assert cfg.inputs == tuple(k for k, v in raw["inputs"].items() if v) == ("AERIAL_RGBI",)
    assert cfg.channels["AERIAL_RGBI"] == (4, 1, 2)
    assert cfg.means["AERIAL_RGBI"] == tuple(raw["normalization"]["AERIAL_RGBI_means"])
    assert cfg.stds["DEM_ELEV"] == (537.55, 537.55)
    assert (cfg.filter_sentinel2_max_cloud, cfg.filter_sentinel2_max_snow) == (1, 1)
    assert cfg.filter_sentinel2_max_frac_cover == 0.05
    assert cfg.calc_elevation and cfg.calc_elevation_stack_dsm
    assert cfg.model_kwargs()["inputs"] == {"AERIAL_RGBI": 3}
    # the defaults are IGN's too: the file changes nothing but modality_dropout's zeros
    assert cfg.model_copy(update={"modality_dropout": {}}) == load_hub_config()
    sup = tmp_path / "config_supervision.yaml"
    sup.write_text(yaml.safe_dump(SUPERVISION))
    both = hub_config_from_ign(IGN_MODALITIES, sup, epochs=3)
    assert both.epochs == 3
    assert both.class_weights("AERIAL_LABEL-COSIA") == [1.0] * 15 + [0.0] * 4
    assert both.class_weights("ALL_LABEL-LPIS") == [1.0] * 23
    assert both.tasks["ALL_LABEL-LPIS"].task_weight == 0.5
    assert both.model_kwargs()["tasks"] == {"AERIAL_LABEL-COSIA": 19, "ALL_LABEL-LPIS": 23}
    # an unknown key of IGN's file is named
    bad = yaml.safe_load(IGN_MODALITIES.read_text())
    bad["modalities"]["pre_processings"]["filter_sentinel2_max_clouds"] = 3
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="unknown key 'filter_sentinel2_max_clouds'"):
        hub_config_from_ign(tmp_path / "bad.yaml")


def test_hub_section_and_its_errors(tmp_path: Path) -> None:
    f = tmp_path / "recipe.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "hub": {
                    "inputs": ["AERIAL_RGBI", "DEM_ELEV", "SENTINEL2_TS"],
                    "calc_elevation_stack_dsm": False,
                    "means": {"AERIAL_RGBI": [1, 2, 3], "DEM_ELEV": [0]},
                    "stds": {"AERIAL_RGBI": [1, 1, 1], "DEM_ELEV": [1]},
                    "aux_loss": ["SENTINEL2_TS"],
                    "tasks": {"ALL_LABEL-LPIS": {"task_weight": 2}},
                    "epochs": 7,
                }
            }
        )
    )
    cfg = load_hub_config(f)
    kw = cfg.model_kwargs()
    assert kw["inputs"] == {"AERIAL_RGBI": 3, "DEM_ELEV": 1, "SENTINEL2_TS": 10}
    assert kw["tasks"] == {"ALL_LABEL-LPIS": 23} and kw["aux_series"] == ("SENTINEL2_TS",)
    assert cfg.epochs == 7
    f.write_text(yaml.safe_dump({"hub": {"epoch": 3}}))
    with pytest.raises(ConfigError, match=r"recipe.yaml: hub: unknown key 'epoch'"):
        load_hub_config(f)
    f.write_text(yaml.safe_dump({"hub": {"inputs": ["SENTINEL2"]}}))
    with pytest.raises(ConfigError, match="unknown modality 'SENTINEL2'"):
        load_hub_config(f)
    f.write_text(yaml.safe_dump({"hub": {"aux_loss": ["AERIAL_RGBI"]}}))
    with pytest.raises(ConfigError, match="aux_loss: 'AERIAL_RGBI': auxiliary heads are for"):
        load_hub_config(f)
    f.write_text(yaml.safe_dump({"hub": {"channels": {"AERIAL_RGBI": [0, 1]}}}))
    with pytest.raises(ConfigError, match=r"channels.AERIAL_RGBI: \[0, 1\], 1-based in 1..4"):
        load_hub_config(f)


def test_ign_models_file_and_the_recipes(tmp_path: Path) -> None:
    # IGN's config_models.yaml (IGNF/FLAIR-HUB 3d5693b), widths changed to see them read
    models = {
        "models": {
            "monotemp_model": {"arch": "swin_base_patch4_window12_384-upernet"},
            "multitemp_model": {
                "ref_date": "06-01",
                "encoder_widths": [32, 64],
                "decoder_widths": [16, 64],
                "agg_mode": "att_group",
                "n_head": 16,
            },
        }
    }
    (tmp_path / "config_models.yaml").write_text(yaml.safe_dump(models))
    (tmp_path / "config_modalities.yaml").write_text(
        yaml.safe_dump({"modalities": {"inputs": {"AERIAL_RGBI": True, "SENTINEL2_TS": True}}})
    )
    cfg = hub_config_from_ign(
        tmp_path / "config_modalities.yaml", models=tmp_path / "config_models.yaml"
    )
    assert cfg.ref_date == "06-01"
    assert cfg.utae["encoder_widths"] == [32, 64] and cfg.utae["decoder_widths"] == [16, 64]
    assert cfg.utae["d_model"] == 256  # IGN's default where the file is silent
    assert cfg.inputs == ("AERIAL_RGBI", "SENTINEL2_TS")
    # the GPU recipes: IGN's optimisation, the published families
    families = {
        "lc-a": ("AERIAL_RGBI",),
        "lc-l": (
            "AERIAL_RGBI",
            "DEM_ELEV",
            "SPOT_RGBI",
            "SENTINEL2_TS",
            "SENTINEL1-ASC_TS",
            "SENTINEL1-DESC_TS",
        ),
        "lpis-i": ("SPOT_RGBI", "SENTINEL2_TS", "SENTINEL1-ASC_TS", "SENTINEL1-DESC_TS"),
    }
    for name, inputs in families.items():
        recipe = load_hub_config(REPO / "recipes" / f"flair-hub-{name}.yaml")
        assert recipe.inputs == inputs
        assert (recipe.epochs, recipe.batch_size, recipe.lr, recipe.optimizer) == (
            150,
            5,
            5e-5,
            "adamw",
        )
        assert recipe.downsample == 1
        family = HUB_FAMILIES[name.upper()]  # IGN's README table, as the registry holds it
        assert set(recipe.inputs) == set(family.inputs)
        assert tuple(recipe.tasks) == family.tasks
        comment = (REPO / "recipes" / f"flair-hub-{name}.yaml").read_text()
        assert f"Published target: {family.published_miou} mIoU" in comment


@pytest.mark.parametrize("name", ["lc-a", "lc-l", "lpis-i"])
def test_hub_recipes_are_dvc_experiments_over_params(name: str) -> None:
    # issue 24: a recipe is `dvc exp run -S …` over params.yaml's hub section: each key it
    # sets exists there (a `+key` does not: Hydra adds it), and params.yaml with the
    # recipe applied (by hand here, as Hydra's override does) is the recipe's HubTrainConfig,
    # the same as `train-flair-hub --config recipe` (over HubTrainConfig's defaults)
    from flair_pipeline.recipes import set_args
    from flair_pipeline.training.hub_config import hub_train_config

    recipe = REPO / "recipes" / f"flair-hub-{name}.yaml"
    args = set_args(recipe, REPO / "params.yaml")
    assert args[::2] == ["-S"] * (len(args) // 2)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for pair in args[1::2]:
        key, _, raw = pair.partition("=")
        assert key.lstrip("+").startswith("hub."), pair  # only hub.* differs
        assert " " not in pair
        *parents, leaf = key.lstrip("+").split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        assert (leaf in node) == (not key.startswith("+")), pair
        node[leaf] = yaml.safe_load(raw)
    applied = hub_train_config(params["hub"]["train"])
    assert applied == load_hub_config(recipe)
    family = HUB_FAMILIES[name.upper()]
    assert set(applied.inputs) == set(family.inputs) and tuple(applied.tasks) == family.tasks
    assert params["hub"]["release"] == "data/FLAIR-HUB"  # IGN's release, not our export
    # the CPU recipe in force without a recipe: LC-A at 1/8, a few epochs
    cpu = hub_train_config(yaml.safe_load((REPO / "params.yaml").read_text())["hub"]["train"])
    assert (cpu.inputs, tuple(cpu.tasks)) == (("AERIAL_RGBI",), ("AERIAL_LABEL-COSIA",))
    assert cpu.epochs <= 5 and cpu.downsample == 8
