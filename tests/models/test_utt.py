"""U-T&T: fusion shapes, per-sample collapse, centre crop, modality dropout, training."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
import torch.nn.functional as F

from flair_pipeline.errors import ConfigError
from flair_pipeline.models import build_model
from flair_pipeline.models.utt import FusionModule, centre_crop

UTAE = {
    "encoder_widths": [8, 8, 16],
    "decoder_widths": [8, 8, 16],
    "out_conv": [8, 13],
    "n_head": 4,
    "d_model": 16,
    "d_k": 4,
}


def tiny_utt(**fusion: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("utt", utae=UTAE, fusion={"crop_px": 4, **fusion})


def batch(t: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    pad = torch.zeros(2, t, dtype=torch.bool)
    pad[1, 3:] = True
    return {
        "img": torch.randn(2, 5, 64, 64, generator=g),
        "s2": torch.randn(2, t, 10, 16, 16, generator=g),
        "dates": torch.sort(torch.randint(0, 365, (2, t), generator=g), dim=1).values,
        "pad_mask": pad,
    }


@pytest.fixture(scope="module")
def utt() -> torch.nn.Module:
    return tiny_utt().eval()


def run(model: torch.nn.Module, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return model(b)


def test_shapes_and_interface(utt: torch.nn.Module) -> None:
    out = run(utt, batch())
    assert set(out) == {"logits", "aux"}
    assert out["logits"].shape == (2, 13, 64, 64)
    assert out["aux"].shape == (2, 13, 16, 16)
    assert utt.required_inputs == ("img", "s2", "dates", "pad_mask")
    b = batch()
    del b["pad_mask"]
    with pytest.raises(ValueError, match=r"'utt'.*'pad_mask'"):
        utt(b)


def test_collapse_is_per_sample(utt: torch.nn.Module) -> None:
    b = batch()
    ref = run(utt, b)
    b["s2"] = b["s2"].clone()
    b["s2"][1] = torch.randn_like(b["s2"][1]) * 3
    out = run(utt, b)
    assert torch.equal(out["logits"][0], ref["logits"][0])  # sample 0 untouched
    assert not torch.allclose(out["logits"][1], ref["logits"][1])  # sample 1 did change


def test_padded_dates_do_not_matter(utt: torch.nn.Module) -> None:
    b = batch()
    ref = run(utt, b)
    b["s2"] = b["s2"].clone()
    b["s2"][b["pad_mask"]] = 1e3
    b["dates"] = b["dates"].masked_fill(b["pad_mask"], 7)
    out = run(utt, b)
    torch.testing.assert_close(out["logits"], ref["logits"], rtol=0, atol=1e-5)
    torch.testing.assert_close(out["aux"], ref["aux"], rtol=0, atol=1e-6)


def test_centre_crop_takes_the_patch_footprint() -> None:
    x = torch.arange(40 * 40.0).view(1, 1, 40, 40)
    crop = centre_crop(x, 10)
    assert crop.shape == (1, 1, 10, 10)
    assert crop[0, 0, 0, 0] == 15 * 40 + 15 and crop[0, 0, -1, -1] == 24 * 40 + 24
    assert centre_crop(x, 99).shape == (1, 1, 40, 40)  # clamped to the window


def test_fusion_branches() -> None:
    torch.manual_seed(0)
    fuse = FusionModule(8, 32, crop_px=4, hidden=16).eval()
    fmap = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        ref = fuse(fmap, (32, 32))
        border = fmap.clone()
        border[..., :6, :] += 5.0  # outside the 4x4 centre (rows 6..9)
        out = fuse(border, (32, 32))
    assert ref.shape == (2, 32, 32, 32)
    # Outside the crop only the collapsed (spatially constant) branch changes.
    diff = out - ref
    assert diff.abs().max() > 1e-3
    torch.testing.assert_close(diff, diff[..., :1, :1].expand_as(diff), rtol=0, atol=1e-5)


def test_modality_dropout() -> None:
    model = tiny_utt(modality_dropout=1.0)
    b = batch()
    other = {**b, "s2": torch.randn_like(b["s2"])}
    model.train()
    torch.manual_seed(5)
    a = run(model, b)["logits"]
    torch.manual_seed(5)
    c = run(model, other)["logits"]
    torch.testing.assert_close(a, c, rtol=0, atol=1e-6)  # satellite dropped for every sample
    model.eval()  # never in evaluation
    assert not torch.allclose(run(model, b)["logits"], run(model, other)["logits"])


def test_rebuild_from_hparams_and_config_errors(utt: torch.nn.Module) -> None:
    kwargs = json.loads(json.dumps(utt.hparams_dict))
    assert kwargs["fusion"]["crop_px"] == 4 and kwargs["utae"]["n_head"] == 4
    build_model("utt", **kwargs).load_state_dict(utt.state_dict())
    with pytest.raises(ConfigError, match="unknown keys"):
        build_model("utt", utae={"heads": 4})
    with pytest.raises(ConfigError, match="modality_dropout"):
        build_model("utt", utae=UTAE, fusion={"modality_dropout": 2})
    with pytest.raises(ConfigError, match="class count"):
        build_model("utt", utae={**UTAE, "out_conv": [8, 5]})


def test_few_steps_decrease_loss() -> None:
    model = tiny_utt(modality_dropout=0.2).train()
    b = batch()
    target = torch.zeros(2, 64, 64, dtype=torch.long)
    target[:, 32:] = 6
    aux_target = F.interpolate(target[:, None].float(), size=(16, 16)).long()[:, 0]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(4):
        opt.zero_grad()
        out = model(b)
        loss = F.cross_entropy(out["logits"], target) + 0.5 * F.cross_entropy(
            out["aux"], aux_target
        )
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < 0.9 * losses[0], losses
