"""One registry of models: the config, the CLI, the model classes and the assets agree with it."""

from __future__ import annotations

import typing

import pytest

from flair_pipeline.config import TrainConfig
from flair_pipeline.errors import ConfigError
from flair_pipeline.model_registry import (
    MODEL_NAMES,
    MODELS,
    MODELS_BY_FOLDER,
    TRAINED,
    get_model,
    model_for_folder,
)


def test_names_folders_and_what_each_model_reads() -> None:
    assert MODEL_NAMES == ("unet", "unet-meta", "utt")
    assert typing.get_args(TrainConfig.model_fields["model"].annotation) == MODEL_NAMES
    assert [m.folder for m in TRAINED] == ["unet", "utt"]
    assert get_model("unet-meta").folder == "unet"  # a variant trains into its baseline's folder
    assert (get_model("utt").needs_s2, get_model("utt").needs_meta) == (True, False)
    assert (get_model("unet-meta").needs_s2, get_model("unet-meta").needs_meta) == (False, True)
    assert not get_model("unet").needs_s2 and not get_model("unet").needs_meta
    with pytest.raises(ConfigError, match="unknown model 'segformer': expected one of unet, "):
        get_model("segformer")


def test_the_model_of_a_folder_follows_train_model() -> None:
    assert model_for_folder("unet", "unet-meta").name == "unet-meta"
    assert model_for_folder("unet", "utt").name == "unet"  # utt trains elsewhere
    assert model_for_folder("utt", "unet-meta").name == "utt"
    assert MODELS_BY_FOLDER["unet"] is MODELS["unet"]


def test_model_classes_declare_the_registry_inputs() -> None:
    for spec in MODELS.values():
        cls = spec.model_class()
        assert cls.name == spec.name
        assert cls.required_inputs == spec.inputs


def test_assets_and_cli_use_the_registry() -> None:
    from flair_pipeline.cli import train_cmd
    from flair_pipeline.orchestration.artifacts import ARTIFACTS

    for m in TRAINED:
        assert f"model_{m.folder}" in ARTIFACTS and f"evaluation_{m.folder}" in ARTIFACTS
    choice = next(p for p in train_cmd.params if p.name == "model_name")
    assert tuple(choice.type.choices) == MODEL_NAMES


def test_flair_hub_families_are_apart_from_the_trained_baselines() -> None:
    from flair_pipeline.model_registry import HUB_FAMILIES
    from flair_pipeline.models.hub_inputs import MONO, SERIES, TASKS

    assert len(HUB_FAMILIES) == 24  # IGN's README: 13 land-cover, 11 crop-type families
    assert not set(HUB_FAMILIES) & set(MODELS) and len(TRAINED) == 2
    for name, fam in HUB_FAMILIES.items():
        assert fam.name == name and set(fam.inputs) <= set(MONO) | set(SERIES), name
        assert len(fam.tasks) == 1 and fam.tasks[0] in TASKS
    # the targets
    assert {n: HUB_FAMILIES[n].published_miou for n in ("LC-A", "LC-L", "LPIS-I")} == {
        "LC-A": 64.1,
        "LC-L": 65.8,
        "LPIS-I": 39.2,
    }
    assert HUB_FAMILIES["LC-L"].inputs == (
        "AERIAL_RGBI",
        "DEM_ELEV",
        "SPOT_RGBI",
        "SENTINEL2_TS",
        "SENTINEL1-ASC_TS",
        "SENTINEL1-DESC_TS",
    )
    assert HUB_FAMILIES["LPIS-I"].inputs == (
        "SPOT_RGBI",
        "SENTINEL2_TS",
        "SENTINEL1-ASC_TS",
        "SENTINEL1-DESC_TS",
    )
