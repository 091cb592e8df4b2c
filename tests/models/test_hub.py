"""FLAIR-HUB's multimodal model: family shapes, tu- encoders, modality dropout, padding, gradients."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from flair_pipeline.errors import ConfigError
from flair_pipeline.models.hub import HubModel
from flair_pipeline.models.hub_inputs import aux_key, dates_key, pad_key

COSIA, LPIS = "AERIAL_LABEL-COSIA", "ALL_LABEL-LPIS"
S2, S1A, S1D = "SENTINEL2_TS", "SENTINEL1-ASC_TS", "SENTINEL1-DESC_TS"
#: channels of each modality as FLAIR-HUB's config selects them (aerial RGBI, DEM: DSM+DTM)
CHANNELS = {"AERIAL_RGBI": 4, "DEM_ELEV": 2, "SPOT_RGBI": 4, S2: 10, S1A: 2, S1D: 2}
#: a narrow U-TAE (the real one is 64/128 wide) so the tests run in seconds on a CPU
UTAE: dict[str, Any] = {
    "encoder_widths": [8, 8, 16],
    "decoder_widths": [8, 8, 16],
    "out_conv": [8, 19],
    "n_head": 4,
    "d_model": 16,
    "d_k": 4,
    "collapse_hidden": 8,
    "dropout": 0.0,
}
H = 32  # aerial side (px); SPOT's at a quarter of it (FLAIR-HUB: 512 and 64 px)


def make(inputs: list[str], tasks: dict[str, int], **kw: Any) -> HubModel:
    torch.manual_seed(0)
    return HubModel(
        inputs={m: CHANNELS[m] for m in inputs},
        tasks=tasks,
        encoder=kw.pop("encoder", "resnet18"),
        utae=UTAE,
        **kw,
    )


def batch(seed: int = 1, b: int = 2, t: int = 4) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {
        "AERIAL_RGBI": torch.randn(b, 4, H, H, generator=g),
        "DEM_ELEV": torch.randn(b, 2, H, H, generator=g),
        "SPOT_RGBI": torch.randn(b, 4, H // 4, H // 4, generator=g),
        COSIA: torch.randint(0, 19, (b, H, H), generator=g),
        LPIS: torch.randint(0, 23, (b, H, H), generator=g),
        "patch_id": [f"p{i}" for i in range(b)],
        "domain": ["D001_2020"] * b,
    }
    for s in (S2, S1A, S1D):
        out[s] = torch.randn(b, t, CHANNELS[s], 10, 10, generator=g)
        out[dates_key(s)] = torch.sort(torch.randint(-130, 220, (b, t), generator=g), 1).values
        pad = torch.zeros(b, t, dtype=torch.bool)
        pad[1, t - 2 :] = True  # the second sample has two dates fewer
        out[pad_key(s)] = pad
    return out


FAMILIES = {
    "LC-A": (["AERIAL_RGBI"], {COSIA: 19}, ()),
    "LC-C": (["AERIAL_RGBI", "DEM_ELEV", "SPOT_RGBI"], {COSIA: 19}, ()),
    "LC-F": (["AERIAL_RGBI", S2, S1A, S1D], {COSIA: 19}, (S2,)),
    "LPIS-I": (["SPOT_RGBI", S2, S1A, S1D], {LPIS: 23}, (S2, S1A)),
    "LPIS-F": ([S2], {LPIS: 23}, (S2,)),
    "multi-task LC-L": (list(CHANNELS), {COSIA: 19, LPIS: 23}, (S2,)),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_predicts_each_task_at_the_label_size(family: str) -> None:
    inputs, tasks, aux = FAMILIES[family]
    model = make(inputs, tasks, aux_series=aux).eval()
    with torch.no_grad():
        out = model(batch())
    expected = {t: (2, k, H, H) for t, k in tasks.items()}
    expected |= {aux_key(s, t): (2, k, H, H) for s in aux for t, k in tasks.items()}
    assert {k: tuple(v.shape) for k, v in out.items()} == expected


def test_without_labels_logits_are_at_the_reference_input_size() -> None:
    b = {k: v for k, v in batch().items() if k not in (COSIA, LPIS)}
    spot_only = make(["SPOT_RGBI", S2], {LPIS: 23}).eval()
    aerial = make(["AERIAL_RGBI", "SPOT_RGBI"], {COSIA: 19}).eval()
    series_only = make([S2], {LPIS: 23}).eval()
    with torch.no_grad():
        assert spot_only(b)[LPIS].shape == (2, 23, H // 4, H // 4)
        assert aerial(b)[COSIA].shape == (2, 19, H, H)
        assert series_only(b)[LPIS].shape == (2, 23, 10, 10)  # the 10 px crop


def test_timm_universal_encoder_from_its_name() -> None:
    model = make(["AERIAL_RGBI", "DEM_ELEV"], {COSIA: 19}, encoder="tu-resnet18").eval()
    assert type(model.encoders["AERIAL_RGBI"]).__name__ == "TimmUniversalEncoder"
    with torch.no_grad():
        assert model(batch())[COSIA].shape == (2, 19, H, H)


def _without(model: HubModel, modality: str) -> HubModel:
    """A copy whose fusion convolutions ignore `modality`: its weight slices set to 0."""
    ref = copy.deepcopy(model)
    i = ref.modalities.index(modality)
    for conv in ref.fuse:
        assert isinstance(conv, torch.nn.Conv2d)
        c = conv.out_channels  # every modality enters with the stage's width
        with torch.no_grad():
            conv.weight[:, i * c : (i + 1) * c] = 0
    ref.dropout_p = dict.fromkeys(ref.dropout_p, 0.0)
    return ref


@pytest.mark.parametrize("dropped", ["DEM_ELEV", S2])
def test_modality_dropout_removes_that_modality_in_training_only(dropped: str) -> None:
    model = make(["AERIAL_RGBI", dropped], {COSIA: 19}, modality_dropout={dropped: 1.0})
    expected = _without(model, dropped)
    b = batch()
    model.train()
    expected.train()
    got = model(b)[COSIA]
    assert torch.allclose(got, expected(b)[COSIA], atol=1e-5)
    # the dropped modality does contribute when kept (so the test above can fail) ...
    kept = copy.deepcopy(model)
    kept.dropout_p[dropped] = 0.0
    assert not torch.allclose(kept(b)[COSIA], got, atol=1e-3)
    # ... and receives no gradient from a sample that dropped it
    got.square().mean().backward()
    branch = model.encoders[dropped] if dropped in model.encoders else model.utaes[dropped]
    assert all(p.grad is None or not p.grad.any() for p in branch.parameters())
    # evaluation never drops
    model.eval()
    never = copy.deepcopy(model)
    never.dropout_p[dropped] = 0.0
    with torch.no_grad():
        assert torch.equal(model(b)[COSIA], never(b)[COSIA])


def test_modality_dropout_never_drops_every_modality_of_a_sample() -> None:
    model = make(
        ["AERIAL_RGBI", "DEM_ELEV"],
        {COSIA: 19},
        modality_dropout={"AERIAL_RGBI": 1.0, "DEM_ELEV": 1.0},
    )
    expected = _without(model, "DEM_ELEV")  # the first modality (aerial) is the one kept
    model.train()
    expected.train()
    b = batch()
    out = model(b)[COSIA]
    assert out.abs().sum() > 0
    assert torch.allclose(out, expected(b)[COSIA], atol=1e-5)


def test_padded_dates_change_nothing() -> None:
    model = make(["AERIAL_RGBI", S2, S1A], {COSIA: 19}, aux_series=(S2,)).eval()
    b = batch()
    with torch.no_grad():
        ref = model(b)
        changed = dict(b)
        for s in (S2, S1A):
            pad = b[pad_key(s)]
            changed[s] = b[s].clone()
            changed[s][pad] = 1e3
            changed[dates_key(s)] = b[dates_key(s)].masked_fill(pad, 7)
        out = model(changed)
        for k in ref:
            assert torch.equal(out[k], ref[k]), k
        # a real (unpadded) date does matter
        changed[S2] = changed[S2].clone()
        changed[S2][1, 0] += 3.0
        assert not torch.allclose(model(changed)[COSIA][1], ref[COSIA][1])


def test_gradients_reach_every_branch() -> None:
    model = make(list(CHANNELS), {COSIA: 19, LPIS: 23}, aux_series=(S2, S1A, S1D)).train()
    out = model(batch())
    sum(v.float().square().mean() for v in out.values()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    branches = {
        **{f"encoder {m}": model.encoders[m] for m in model.mono},
        **{f"U-TAE {s}": model.utaes[s] for s in model.series},
        **{f"fusion {s}": model.series_fusion[s] for s in model.series},
        "fuse": model.fuse,
        **{f"decoder {t}": model.decoders[t] for t in model.tasks},
    }
    for name, module in branches.items():
        assert any(p.grad.abs().sum() > 0 for p in module.parameters() if p.grad is not None), name


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"inputs": {"AERIAL": 4}}, "unknown"),
        ({"tasks": {"COSIA": 19}}, "unknown"),
        ({"modality_dropout": {"AERIAL_RGBI": 1.5}}, r"\[0, 1\]"),
        ({"modality_dropout": {S2: 0.5}}, "keys must be inputs"),
        ({"aux_series": (S2,)}, "not series inputs"),
        ({"utae": {"widths": [8]}}, "unknown keys"),
        ({"encoder": "no-such-encoder"}, "no-such-encoder"),
    ],
)
def test_bad_configurations_are_refused(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"inputs": {"AERIAL_RGBI": 4}, "tasks": {COSIA: 19}, **kwargs}
    with pytest.raises(ConfigError, match=match):
        HubModel(**args)


def test_missing_or_misshapen_inputs_are_named() -> None:
    model = make(["AERIAL_RGBI", S2], {COSIA: 19}).eval()
    b = batch()
    del b[pad_key(S2)]
    with pytest.raises(ValueError, match=r"SENTINEL2_TS__pad"):
        model(b)
    b = batch()
    b["AERIAL_RGBI"] = b["AERIAL_RGBI"][:, :3]
    with pytest.raises(ValueError, match=r"AERIAL_RGBI is \(2, 3, 32, 32\), expected B×4"):
        model(b)


def test_flair_hub_utae_defaults_keep_a_10_px_window() -> None:
    # IGN's multitemp_model (str_conv_k 3, s 1, p 1): no stage downsamples a 10 x 10 window
    from flair_pipeline.models.hub import HUB_UTAE_DEFAULTS, resolve_utae
    from flair_pipeline.models.utae import UTAE as UTAENet

    kw = {
        k: v for k, v in resolve_utae(None, 19).items() if k not in ("crop_px", "collapse_hidden")
    }
    assert kw["out_conv"] == [32, 19] and HUB_UTAE_DEFAULTS["str_conv_k"] == 3
    torch.manual_seed(0)
    net = UTAENet(input_dim=10, **kw).eval()
    x = torch.randn(1, 5, 10, 10, 10)
    with torch.no_grad():
        logits, fmap = net(x, torch.arange(5)[None] * 30, torch.zeros(1, 5, dtype=torch.bool))
    assert logits.shape == (1, 19, 10, 10) and fmap.shape == (1, 32, 10, 10)


@pytest.mark.gpu
def test_lc_l_multitask_at_flair_hub_sizes_on_gpu() -> None:
    """LC-L + LPIS with IGN's U-TAE widths at FLAIR-HUB's sizes: 512 px aerial, 64 px SPOT."""
    torch.manual_seed(0)
    model = HubModel(
        inputs=CHANNELS,
        tasks={COSIA: 19, LPIS: 23},
        encoder="resnet34",
        modality_dropout={"SPOT_RGBI": 0.3, S2: 0.3, S1A: 0.3, S1D: 0.3},
        aux_series=(S2, S1A, S1D),
    ).cuda()
    g = torch.Generator().manual_seed(0)
    b: dict[str, Any] = {
        "AERIAL_RGBI": torch.randn(4, 4, 512, 512, generator=g),
        "DEM_ELEV": torch.randn(4, 2, 512, 512, generator=g),
        "SPOT_RGBI": torch.randn(4, 4, 64, 64, generator=g),
        COSIA: torch.randint(0, 19, (4, 512, 512), generator=g),
    }
    for s, t in ((S2, 20), (S1A, 40), (S1D, 40)):
        b[s] = torch.randn(4, t, CHANNELS[s], 10, 10, generator=g)
        b[dates_key(s)] = torch.sort(torch.randint(-130, 220, (4, t), generator=g), 1).values
        b[pad_key(s)] = torch.zeros(4, t, dtype=torch.bool)
    b = {k: v.cuda() for k, v in b.items()}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model.train()(b)
    loss = sum(v.float().logsumexp(1).mean() for v in out.values())
    loss.backward()
    assert torch.isfinite(loss)
    assert out[LPIS].shape == (4, 23, 512, 512)
    assert out[aux_key(S1D, COSIA)].shape == (4, 19, 512, 512)
