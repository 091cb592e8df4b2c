"""U-Net baseline: FLAIR's parameter count, the dict interface, encoder weights loading."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
import torch.nn.functional as F

from flair_pipeline.errors import ConfigError
from flair_pipeline.models import build_model, build_unet, count_parameters


def test_parameter_count_matches_flair() -> None:
    # FLAIR paper: U-Net ResNet34, 5 bands, 13 classes = 24.44 M parameters.
    n = count_parameters(build_unet())
    assert abs(n - 24.44e6) <= 0.05e6, n


def test_forward_dict_interface_and_rebuild() -> None:
    model = build_model("unet").eval()
    assert model.required_inputs == ("img",)
    with torch.no_grad():
        out = model({"img": torch.randn(2, 5, 64, 64)})
    assert set(out) == {"logits"}
    assert out["logits"].shape == (2, 13, 64, 64)
    kwargs = json.loads(json.dumps(model.hparams_dict))
    again = build_model("unet", **kwargs)
    again.load_state_dict(model.state_dict())  # same architecture, key for key


def test_other_channel_and_class_counts() -> None:
    model = build_model("unet", in_channels=3, classes=4).eval()
    with torch.no_grad():
        out = model({"img": torch.randn(1, 3, 64, 64)})["logits"]
    assert out.shape == (1, 4, 64, 64)


def test_missing_key_names_key_and_model() -> None:
    model = build_model("unet")
    with pytest.raises(ValueError, match=r"'unet'.*'img'"):
        model({"image": torch.randn(1, 5, 64, 64)})


def test_unknown_model_and_unused_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown model 'segformer'"):
        build_model("segformer")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="does not use utae"):
        build_model("unet", utae={"n_head": 4})
    with pytest.raises(ConfigError, match="meta_dim"):
        build_model("unet-meta")


def test_encoder_weights_from_local_files(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = build_unet()
    enc_file = tmp_path / "encoder.pt"
    torch.save(source.encoder.state_dict(), enc_file)
    loaded = build_unet(encoder_weights=str(enc_file))
    for k, v in source.encoder.state_dict().items():
        assert torch.equal(loaded.encoder.state_dict()[k], v), k
    # A whole U-Net state dict loads the decoder and head too.
    whole_file = tmp_path / "unet.pt"
    torch.save(source.state_dict(), whole_file)
    whole = build_unet(encoder_weights=str(whole_file))
    w = "segmentation_head.0.weight"
    assert torch.equal(whole.state_dict()[w], source.state_dict()[w])
    # The same files work through build_model for the fused models.
    meta = build_model("unet-meta", meta_dim=8, encoder_weights=str(enc_file))
    k = "layer4.2.conv2.weight"
    assert torch.equal(meta.encoder.state_dict()[k], source.encoder.state_dict()[k])


def test_bad_weight_files_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(ConfigError, match=r"nope\.pt.*not found"):
        build_unet(encoder_weights=str(missing))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match=r"garbage\.pt"):
        build_unet(encoder_weights=str(garbage))
    wrong_keys = tmp_path / "wrong_keys.pt"
    torch.save({"foo.weight": torch.zeros(3)}, wrong_keys)
    with pytest.raises(ConfigError, match=r"wrong_keys\.pt"):
        build_unet(encoder_weights=str(wrong_keys))
    three_band = tmp_path / "rgb_encoder.pt"
    torch.save(build_unet(in_channels=3).encoder.state_dict(), three_band)
    with pytest.raises(ConfigError, match=r"rgb_encoder\.pt.*5 input channels"):
        build_unet(in_channels=5, encoder_weights=str(three_band))


def test_imagenet_offline_is_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An offline machine with an empty hub cache: the download must fail loudly.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match="imagenet"):
        build_unet(encoder_weights="imagenet")


def test_few_steps_decrease_loss() -> None:
    torch.manual_seed(0)
    model = build_model("unet", in_channels=5, classes=13).train()
    img = torch.randn(2, 5, 64, 64)
    target = torch.zeros(2, 64, 64, dtype=torch.long)
    target[:, 32:] = 3
    target[1, :, :16] = 7
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = F.cross_entropy(model({"img": img})["logits"], target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < 0.9 * losses[0], losses
