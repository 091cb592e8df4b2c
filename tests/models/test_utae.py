"""U-TAE: shapes, padded dates have no effect, series of different lengths, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from flair_pipeline.errors import ConfigError
from flair_pipeline.models.utae import UTAE, temporal_aggregate

TINY = {
    "encoder_widths": [8, 8, 16],
    "decoder_widths": [8, 8, 16],
    "out_conv": [8, 13],
    "n_head": 4,
    "d_model": 16,
    "d_k": 4,
}


def tiny_utae(**kw: object) -> UTAE:
    torch.manual_seed(0)
    return UTAE(input_dim=10, **{**TINY, **kw})  # type: ignore[arg-type]


def series(b: int = 2, t: int = 6, size: int = 16) -> tuple[torch.Tensor, ...]:
    """Random series; sample 0 has 4 valid dates then 2 padded, sample 1 is full."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, t, 10, size, size, generator=g)
    dates = torch.sort(torch.randint(0, 365, (b, t), generator=g), dim=1).values
    pad = torch.zeros(b, t, dtype=torch.bool)
    pad[0, 4:] = True
    return x, dates, pad


def scramble_padded(x: torch.Tensor, dates: torch.Tensor, pad: torch.Tensor):
    """Same series, other VALUES (pixels and dates) at the padded positions."""
    x2, d2 = x.clone(), dates.clone()
    x2[pad] = torch.randn_like(x2[pad]) * 100 + 7
    d2[pad] = 300
    return x2, d2


def test_shapes() -> None:
    model = tiny_utae().eval()
    x, dates, pad = series()
    with torch.no_grad():
        out, fmap = model(x, dates, pad)
    assert out.shape == (2, 13, 16, 16)
    assert fmap.shape == (2, 8, 16, 16) and model.feature_channels == 8


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_padded_values_change_nothing(mode: str) -> None:
    model = tiny_utae()
    model.train(mode == "train")
    x, dates, pad = series()
    x2, d2 = scramble_padded(x, dates, pad)
    runs = []
    for xs, ds in [(x, dates), (x2, d2)]:
        torch.manual_seed(3)  # same dropout masks in train mode
        with torch.no_grad():
            runs.append(model(xs, ds, pad))
    torch.testing.assert_close(runs[0][0], runs[1][0], rtol=0, atol=1e-6)
    torch.testing.assert_close(runs[0][1], runs[1][1], rtol=0, atol=1e-6)
    # Control: changing a VALID date does change the output, so the check can fail.
    x3 = x.clone()
    x3[0, 1] += 1.0
    torch.manual_seed(3)
    with torch.no_grad():
        changed = model(x3, dates, pad)[0]
    assert not torch.allclose(changed[0], runs[0][0][0], atol=1e-4)


def test_padded_dates_get_zero_attention() -> None:
    model = tiny_utae().eval()
    x, dates, pad = series()
    pad[1, 0] = True  # a padded date in the middle of the stack, not only at the end
    feats = model._encode(x, ~pad)
    with torch.no_grad():
        _, attn = model.ltae(feats[-1], dates, pad)
    assert attn.shape == (4, 2, 6, 4, 4)
    assert (attn[:, 0, 4:] == 0).all() and (attn[:, 1, 0] == 0).all()
    torch.testing.assert_close(attn.sum(2), torch.ones(4, 2, 4, 4))
    # Upsampled to a skip's size the weights stay zero on padded dates.
    skip = torch.ones(2, 6, 8, 16, 16)
    skip[pad] = 1e6
    agg = temporal_aggregate(skip, attn)
    torch.testing.assert_close(agg, torch.ones(2, 8, 16, 16))


def test_series_of_different_lengths_in_one_batch() -> None:
    model = tiny_utae().eval()
    x, dates, pad = series()
    with torch.no_grad():
        batched = model(x, dates, pad)[0]
        alone = model(x[:1, :4], dates[:1, :4], pad[:1, :4])[0]
        alone_no_mask = model(x[:1, :4], dates[:1, :4], None)[0]
    torch.testing.assert_close(batched[:1], alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alone, alone_no_mask)


def test_all_padded_sample_and_odd_window() -> None:
    model = tiny_utae().eval()
    x, dates, pad = series(size=15)
    pad[0] = True
    with torch.no_grad():
        out, _ = model(x, dates, pad)
    assert out.shape == (2, 13, 15, 15) and torch.isfinite(out).all()


def test_widths_not_multiple_of_heads_use_mean_attention() -> None:
    # FLAIR's 16 heads with a narrow test-size U-TAE (width 8): no error, att_mean instead.
    model = tiny_utae(encoder_widths=[6, 8, 16], n_head=16, d_model=32).eval()
    x, dates, pad = series()
    x2, d2 = scramble_padded(x, dates, pad)
    with torch.no_grad():
        out = model(x, dates, pad)[0]
        torch.testing.assert_close(model(x2, d2, pad)[0], out, rtol=0, atol=1e-6)
    assert out.shape == (2, 13, 16, 16)
    attn = torch.softmax(torch.randn(4, 1, 3, 2, 2), dim=2)
    skip = torch.randn(1, 3, 6, 2, 2)
    expected = (attn.mean(0)[:, :, None] * skip).sum(1)
    torch.testing.assert_close(temporal_aggregate(skip, attn), expected)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="decoder_widths"):
        tiny_utae(decoder_widths=[8, 8, 32])
    with pytest.raises(ConfigError, match="n_head"):
        tiny_utae(d_model=18)
    with pytest.raises(ConfigError, match="norm"):
        tiny_utae(encoder_norm="layer")


def test_few_steps_decrease_loss() -> None:
    model = tiny_utae().train()
    x, dates, pad = series()
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[:, 8:] = 5
    target[1, :, :4] = 2
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = F.cross_entropy(model(x, dates, pad)[0], target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0], losses
