import json
from pathlib import Path

import pytest
import yaml

from flair_pipeline.config import (
    PipelineConfig,
    apply_overrides,
    load_config,
    read_params,
    resolve_roots,
)
from flair_pipeline.errors import ConfigError

from .conftest import REPO


def test_repo_params_match_the_model_defaults() -> None:
    # params.yaml is the single config DVC tracks: it must validate and spell out every key.
    # It holds the CPU recipe; the model's defaults are FLAIR's GPU recipe, which is
    # params.yaml plus recipes/flair-gpu.yaml (issue 17): nothing else differs.
    from flair_pipeline.recipes import flatten

    gpu = yaml.safe_load((REPO / "recipes" / "flair-gpu.yaml").read_text())
    overrides = [f"{k}={json.dumps(v)}" for k, v in flatten(gpu).items()]
    # roots come back absolute, against the file's folder (tests/test_roots.py)
    assert load_config(REPO / "params.yaml", overrides) == resolve_roots(PipelineConfig(), REPO)
    cpu = load_config(REPO / "params.yaml").train  # the CPU recipe in force (issue 17)
    assert (cpu.epochs, cpu.batch_size, cpu.downsample) == (20, 4, 8)
    data = read_params(REPO / "params.yaml")
    assert set(data) == set(PipelineConfig.model_fields)
    for section, model in PipelineConfig.model_fields.items():
        assert set(data[section]) == set(model.annotation.model_fields), section


def test_overrides_are_typed_from_yaml() -> None:
    cfg = load_config(
        REPO / "params.yaml",
        [
            "synth.seed=7",
            "sampling.patch_size=256",
            "sentinel2.filter_clouds=true",
            "sampling.max_patches_per_domain=null",
            "synth.scenario=tiny",
        ],
    )
    assert cfg.synth.seed == 7
    assert cfg.sampling.patch_size == 256
    assert cfg.sentinel2.filter_clouds is True
    assert cfg.sampling.max_patches_per_domain is None
    assert cfg.synth.scenario == "tiny"


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"sampling\.patch_sise: unknown key"):
        load_config(REPO / "params.yaml", ["sampling.patch_sise=3"])


def test_invalid_value_is_named_with_what_was_found() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(REPO / "params.yaml", ["sentinel2.window=-4", "synth.scenario=huge"])
    msg = str(e.value)
    assert "sentinel2.window" in msg and "-4" in msg
    assert "synth.scenario" in msg and "huge" in msg


def test_cross_field_rule() -> None:
    with pytest.raises(ConfigError, match="window"):
        load_config(None, ["sentinel2.window=200", "sentinel2.max_size=110"])


@pytest.mark.parametrize("bad", ["nokey", "=3", "a.b=[unclosed"])
def test_malformed_override(bad: str) -> None:
    with pytest.raises(ConfigError, match="override"):
        load_config(None, [bad])


def test_override_cannot_descend_into_a_value() -> None:
    with pytest.raises(ConfigError, match="is a value"):
        apply_overrides({"synth": {"seed": 1}}, ["synth.seed.x=2"])


def test_broken_files_name_the_file(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text("synth: [1, 2\n")
    with pytest.raises(ConfigError, match=str(p)):
        load_config(p)
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    p.write_text("train:\n  epochs: 0\n")
    with pytest.raises(ConfigError, match=rf"{p}.*\n  train\.epochs"):
        load_config(p)
