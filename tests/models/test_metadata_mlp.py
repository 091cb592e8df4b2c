"""Metadata encoding (FLAIR's location/camera/year/date/time) and the U-Net + metadata."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F

from flair_pipeline.errors import ConfigError
from flair_pipeline.models import build_model
from flair_pipeline.models.metadata_mlp import UNKNOWN_INDEX, MetadataEncoding, MetadataMLP

RECORDS = [
    {
        "patch_centroid_x": 489_353.6,
        "patch_centroid_y": 6_757_482.4,
        "patch_centroid_z": 95.2,
        "camera": "UCE-M3-f120-s06",
        "date": "2018-06-27",
        "time": "11h23",
    },
    {
        "patch_centroid_x": 853_221.0,
        "patch_centroid_y": 6_527_011.0,
        "patch_centroid_z": 1_412.0,
        "camera": "UCE-M3-f100-s06",
        "date": "2020-09-02",
        "time": "9h05",
    },
]


def blocks(enc: MetadataEncoding, v: torch.Tensor) -> dict[str, torch.Tensor]:
    """Split encoded vectors into their named parts (the documented layout)."""
    sizes = {
        "x": enc.xy_size,
        "y": enc.xy_size,
        "z": enc.z_size,
        "camera": len(enc.cameras) + 1,
        "year": len(enc.years) + 1,
        "date": 2,
        "time": 2,
    }
    out, i = {}, 0
    for name, n in sizes.items():
        out[name] = v[:, i : i + n]
        i += n
    assert i == enc.dim == v.shape[1]
    return out


def test_fit_and_encode_shape() -> None:
    enc = MetadataEncoding.fit(RECORDS)
    assert enc.cameras == ["UCE-M3-f100-s06", "UCE-M3-f120-s06"]
    assert enc.years == [2018, 2020]
    v = enc.encode(RECORDS)
    assert v.dtype == torch.float32 and v.shape == (2, enc.dim)
    assert enc.dim == 32 + 32 + 8 + 3 + 3 + 2 + 2
    b = blocks(enc, v)
    assert b["camera"][0].argmax() == 2 and b["camera"][1].argmax() == 1
    assert b["year"][0].argmax() == 1 and b["year"][1].argmax() == 2


def test_unknown_camera_and_year_use_the_reserved_slot() -> None:
    enc = MetadataEncoding.fit(RECORDS)
    rec = {**RECORDS[0], "camera": "NEW-CAMERA", "date": "2023-03-01"}
    b = blocks(enc, enc.encode([rec]))
    expected = torch.zeros(1, 3)
    expected[0, UNKNOWN_INDEX] = 1.0
    assert torch.equal(b["camera"], expected)
    assert torch.equal(b["year"], expected)


def test_missing_fields_never_crash() -> None:
    enc = MetadataEncoding.fit(RECORDS)
    v = enc.encode(
        [
            {},
            {"patch_centroid_x": 500_000.0, "patch_centroid_y": 6_600_000.0},
            {"date": "garbage", "time": "25h99", "camera": None},
        ]
    )
    assert torch.isfinite(v).all()
    b = blocks(enc, v)
    assert (b["camera"][:, UNKNOWN_INDEX] == 1).all() and (b["year"][:, UNKNOWN_INDEX] == 1).all()
    # A missing value encodes as zeros, which no real value gives (sin/cos pairs have norm 1).
    assert (b["z"] == 0).all() and (b["date"] == 0).all() and (b["time"] == 0).all()
    assert torch.allclose(b["x"][1].pow(2).sum(), torch.tensor(enc.xy_size / 2))


def test_cyclic_date_and_time() -> None:
    enc = MetadataEncoding.fit(RECORDS)
    recs = [
        {**RECORDS[0], "date": d, "time": t}
        for d, t in [("2018-12-31", "23h59"), ("2018-01-01", "0h00"), ("2018-07-02", "12h00")]
    ]
    b = blocks(enc, enc.encode(recs))
    # New Year's Eve and New Year's Day are neighbours; midsummer is opposite.
    assert (b["date"][0] - b["date"][1]).norm() < 0.05
    assert (b["date"][1] - b["date"][2]).norm() > 1.9
    assert (b["time"][0] - b["time"][1]).norm() < 0.01
    assert torch.allclose(
        b["time"][2], torch.tensor([math.sin(math.pi), math.cos(math.pi)]), atol=1e-6
    )


def test_location_encoding_separates_places() -> None:
    enc = MetadataEncoding.fit(RECORDS)
    base = RECORDS[0]
    near = {**base, "patch_centroid_x": base["patch_centroid_x"] + 102.4}
    far = {**base, "patch_centroid_x": base["patch_centroid_x"] + 300_000}
    x = blocks(enc, enc.encode([base, near, far]))["x"]
    assert (x[0] - x[1]).norm() < (x[0] - x[2]).norm()
    assert (x[0] - x[1]).norm() > 0


def test_dict_round_trip_through_json() -> None:
    enc = MetadataEncoding.fit(RECORDS)
    stored = json.loads(json.dumps({"dim": enc.dim, **enc.to_dict()}))
    again = MetadataEncoding.from_dict(stored)
    assert again == enc
    assert torch.equal(again.encode(RECORDS), enc.encode(RECORDS))
    with pytest.raises(ConfigError, match="dim"):
        MetadataEncoding.from_dict({**stored, "dim": enc.dim + 1})
    with pytest.raises(ConfigError, match="bad keys"):
        MetadataEncoding.from_dict({**stored, "colour": "red"})


def test_mlp_shape_and_dropout() -> None:
    mlp = MetadataMLP(45, 512)
    assert mlp(torch.randn(3, 45)).shape == (3, 512)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.4 for m in mlp.modules())


@pytest.fixture(scope="module")
def unet_meta() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("unet-meta", meta_dim=MetadataEncoding.fit(RECORDS).dim).eval()


def test_unet_meta_metadata_reaches_the_logits_per_sample(unet_meta: torch.nn.Module) -> None:
    enc = MetadataEncoding.fit(RECORDS)
    img = torch.randn(2, 5, 64, 64)
    meta = enc.encode(RECORDS)
    other = enc.encode([RECORDS[0], {**RECORDS[1], "camera": "?", "date": "2019-01-15"}])
    with torch.no_grad():
        a = unet_meta({"img": img, "meta": meta})["logits"]
        b = unet_meta({"img": img, "meta": other})["logits"]
    assert a.shape == (2, 13, 64, 64)
    assert torch.equal(a[0], b[0])  # sample 0's metadata did not change
    assert not torch.allclose(a[1], b[1])  # sample 1's did, and so did its logits
    assert unet_meta.required_inputs == ("img", "meta")


def test_unet_meta_input_errors(unet_meta: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match=r"'unet-meta'.*'meta'"):
        unet_meta({"img": torch.randn(1, 5, 64, 64)})
    with pytest.raises(ValueError, match="must be"):
        unet_meta({"img": torch.randn(1, 5, 64, 64), "meta": torch.randn(1, 3)})


def test_unet_meta_rebuilds_from_hparams(unet_meta: torch.nn.Module) -> None:
    kwargs = json.loads(json.dumps(unet_meta.hparams_dict))
    build_model("unet-meta", **kwargs).load_state_dict(unet_meta.state_dict())


def test_unet_meta_few_steps_decrease_loss() -> None:
    torch.manual_seed(0)
    enc = MetadataEncoding.fit(RECORDS)
    model = build_model("unet-meta", meta_dim=enc.dim).train()
    batch = {"img": torch.randn(2, 5, 64, 64), "meta": enc.encode(RECORDS)}
    target = torch.zeros(2, 64, 64, dtype=torch.long)
    target[0] = 4
    target[1, 20:] = 9
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = F.cross_entropy(model(batch)["logits"], target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < 0.9 * losses[0], losses


def test_unet_keys_are_shared_with_unet_meta(unet_meta: torch.nn.Module) -> None:
    # A plain U-Net checkpoint can warm-start the metadata model (only the MLP is new).
    plain = set(build_model("unet").state_dict())
    meta = set(unet_meta.state_dict())
    assert plain < meta
    assert all(k.startswith("mlp.") for k in meta - plain)
