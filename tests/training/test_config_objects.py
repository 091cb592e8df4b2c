"""Config objects build the runtime objects; checkpoints written before them still load."""

from __future__ import annotations

from pathlib import Path

import lightning
import torch

from flair_pipeline.config import S2Preprocessing, config_from_dict
from flair_pipeline.evaluation.checkpoint_eval import dataset_for
from flair_pipeline.model_registry import architecture
from flair_pipeline.orchestration.artifacts import ARTIFACTS
from flair_pipeline.training.checkpoint import load_inference
from flair_pipeline.training.model_card import card_for_training
from flair_pipeline.training.module import FlairModule

STATS = {"mean": [100.0] * 5, "std": [50.0] * 5, "s2_mean": [0.1] * 10, "s2_std": [0.05] * 10}
#: A U-T&T checkpoint's s2_options as the code before S2Preprocessing wrote them
#: (dataclasses.asdict of the former training.samples.S2Options), in its key order.
OLD_S2 = {
    "window": 20,
    "filter_clouds": True,
    "cloud_threshold": 50,
    "cloud_max_fraction": 0.4,
    "monthly_average": True,
}


def _cfg():
    return config_from_dict(
        {
            "sentinel2": {
                "window": 20,
                "filter_clouds": True,
                "cloud_threshold": 50,
                "cloud_max_fraction": 0.4,
                "monthly_average": True,
                "max_size": 60,
            },
            "train": {
                "optimizer": "adamw",
                "lr": 0.003,
                "scheduler": "none",
                "epochs": 3,
                "utae_width": 8,
                "aux_weight": 0.25,
                "seed": 4,
                "downsample": 2,
            },
            "sampling": {"resolution": 0.2, "elevation_scale": 4.0},
        }
    )


def test_preprocessing_is_one_model_for_config_and_checkpoint() -> None:
    cfg = _cfg()
    assert isinstance(cfg.sentinel2, S2Preprocessing)  # inherited, not copied
    assert cfg.sentinel2.preprocessing.model_dump() == OLD_S2  # same keys, same order
    assert list(S2Preprocessing.model_validate(OLD_S2).model_dump()) == list(OLD_S2)
    # dvc.yaml's params of U-T&T: the very fields, in the order the committed file has
    assert ARTIFACTS["model_utt"].params[-5:] == tuple(f"sentinel2.{k}" for k in OLD_S2)


def test_module_from_config_equals_the_hand_built_one_and_old_checkpoints_load(
    tmp_path: Path,
) -> None:
    cfg = _cfg()
    kwargs = architecture(
        "utt",
        in_channels=5,
        meta_dim=None,
        patch_m=12.8,
        utae_width=cfg.train.utae_width,
        modality_dropout=cfg.train.modality_dropout,
    )
    new = FlairModule.from_config(cfg, card_for_training(cfg, "utt", STATS, patch_px=32))
    torch.manual_seed(0)
    old = FlairModule(  # the pre-from_config call of train_model, spelled by hand
        "utt",
        kwargs,
        STATS,
        optimizer="adamw",
        lr=0.003,
        weight_decay=0.0,
        scheduler="none",
        epochs=3,
        augment=True,
        aux_weight=0.25,
        seed=4,
        patch_size=32,
        resolution=0.2,
        downsample=2,
        elevation_scale=4.0,
        meta_encoding=None,
        s2_options=dict(OLD_S2),
        channels_last=False,
        encoder_weights=None,
    )
    assert dict(new.hparams) == dict(old.hparams)
    # a checkpoint in Lightning's format written by the old call loads through the new code
    path = tmp_path / "old.ckpt"
    torch.save(
        {
            "state_dict": old.state_dict(),
            "hyper_parameters": dict(old.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    inf = load_inference(path)
    geometry = inf.card.patch
    assert (inf.name, geometry.model_px, geometry.downsample) == ("utt", 16, 2)
    assert inf.card.inputs.elevation_scale == 4.0
    assert dataset_for(inf, []).s2 == S2Preprocessing(**OLD_S2)
    for k, v in old.state_dict().items():
        assert torch.equal(inf.module.state_dict()[k], v), k
