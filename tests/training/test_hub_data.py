"""FLAIR-HUB samples and batches from a release built of the five real FLAIR patches.

Expected values are computed here with plain numpy on the arrays the release builder
wrote (:mod:`tests.hub_release`), by other formulas than the loader's (strided sums for
block means, IGN's rules by hand for the planted cloudy/snowy dates).
"""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import torch

from flair_pipeline.models.hub_inputs import IGNORE, dates_key, pad_key
from flair_pipeline.sources.flair_hub import HubRecord, index_hub
from flair_pipeline.training.hub_config import IGN_MEANS, IGN_STDS, HubTrainConfig
from flair_pipeline.training.hub_data import HubDataset, collate_hub
from tests.hub_release import HubRelease, build_hub_release, write_tif

ALL = (
    "AERIAL_RGBI",
    "DEM_ELEV",
    "SPOT_RGBI",
    "SENTINEL2_TS",
    "SENTINEL1-ASC_TS",
    "SENTINEL1-DESC_TS",
)
TASKS = {"AERIAL_LABEL-COSIA": {}, "ALL_LABEL-LPIS": {}}


@pytest.fixture(scope="module")
def hub(real_flair: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[HubRelease, dict]:
    rel = build_hub_release(real_flair, tmp_path_factory.mktemp("hubdata") / "FLAIR-HUB")
    index = index_hub(rel.root)
    assert index.problems == [] and index.missing == {}
    return rel, {r.patch_id: r for r in index.records}


def _down(a: np.ndarray, f: int) -> np.ndarray:
    """Block means by strided sums (another formula than the loader's reshape)."""
    acc = np.zeros((a.shape[0], a.shape[1] // f, a.shape[2] // f))
    for dy in range(f):
        for dx in range(f):
            acc += a[:, dy::f, dx::f]
    return acc / (f * f)


def test_channels_elevation_spot_and_labels(hub: tuple[HubRelease, dict]) -> None:
    rel, recs = hub
    cfg = HubTrainConfig(inputs=ALL, tasks=TASKS, downsample=4)
    pid = str(rel.ids[1])
    sample = HubDataset([recs[pid]], cfg)[0]
    arr = rel.arrays[pid]
    rgbi = arr["AERIAL_RGBI"].astype(float)
    nir_r_g = np.stack([rgbi[3], rgbi[0], rgbi[1]])  # channels [4, 1, 2], 1-based
    m, s = np.array(IGN_MEANS["AERIAL_RGBI"]), np.array(IGN_STDS["AERIAL_RGBI"])
    want = _down((nir_r_g - m[:, None, None]) / s[:, None, None], 4)
    assert sample["AERIAL_RGBI"].shape == (3, 128, 128)
    np.testing.assert_allclose(sample["AERIAL_RGBI"].numpy(), want, rtol=1e-5, atol=1e-5)
    dsm, dtm = arr["DEM_ELEV"].astype(float)
    elev = np.stack([(dsm - 311.06) / 537.55, (dsm - dtm - 311.06) / 537.55])
    np.testing.assert_allclose(sample["DEM_ELEV"].numpy(), _down(elev, 4), rtol=1e-5, atol=1e-6)
    spot = arr["SPOT_RGBI"].astype(float)[[3, 0, 1]]
    # IGN gives SPOT's 4 bands' means: picked by channel (NIR's for NIR)
    ms, ss = np.array(IGN_MEANS["SPOT_RGBI"])[[3, 0, 1]], np.array(IGN_STDS["SPOT_RGBI"])[[3, 0, 1]]
    want_spot = _down((spot - ms[:, None, None]) / ss[:, None, None], 4)
    np.testing.assert_allclose(sample["SPOT_RGBI"].numpy(), want_spot, rtol=1e-5, atol=1e-5)
    # S1: channels per date, every date, not normalised
    s1 = arr["SENTINEL1-ASC_TS"]
    assert sample["SENTINEL1-ASC_TS"].shape == (4, 2, 10, 10)
    for t in range(4):
        for c in range(2):
            np.testing.assert_array_equal(sample["SENTINEL1-ASC_TS"][t, c].numpy(), s1[t * 2 + c])
    # labels: nearest (the top-left pixel of each 4 x 4 block), LPIS band 1
    cosia, lpis = arr["AERIAL_LABEL-COSIA"][0], arr["ALL_LABEL-LPIS"][0]
    for y in (0, 5, 127):
        for x in (0, 77, 127):
            assert sample["AERIAL_LABEL-COSIA"][y, x] == cosia[4 * y, 4 * x]
            assert sample["ALL_LABEL-LPIS"][y, x] == lpis[4 * y, 4 * x]
    assert sample["ALL_LABEL-LPIS"].dtype == torch.int64
    assert (sample["patch_id"], sample["domain"]) == (pid, rel.ids[1].domain)


def _days(ymd: str) -> int:
    d = date(int(ymd[:4]), int(ymd[4:6]), int(ymd[6:]))
    return (d - date(d.year, 5, 15)).days


def test_s2_date_filter_dates_and_padding(hub: tuple[HubRelease, dict]) -> None:
    rel, recs = hub
    cfg = HubTrainConfig(inputs=ALL[3:], tasks=TASKS, downsample=8)
    a, b = str(rel.ids[0]), str(rel.ids[4])
    ds = HubDataset([recs[a], recs[b]], cfg)
    batch = collate_hub([ds[0], ds[1]])
    # planted (tests/hub_release.s2_mask): patch 0 keeps dates 0, 2, 4 (1 cloudy on 20 %,
    # 2 cloudy on exactly 5 %, 3 snowy, 4 cloud value 1); patch 4 is cloudy on every date,
    # so IGN's fallback keeps the dates clear of snow: 0, 1, 2, 4
    kept = {a: [0, 2, 4], b: [0, 1, 2, 4]}
    s2 = batch["SENTINEL2_TS"]
    assert s2.shape == (2, 4, 10, 10, 10)
    for row, pid in enumerate((a, b)):
        raw = rel.arrays[pid]["SENTINEL2_TS"]
        dates = rel.dates[pid]["SENTINEL2"]
        for j, t in enumerate(kept[pid]):
            np.testing.assert_array_equal(s2[row, j].numpy(), raw[t * 10 : (t + 1) * 10])
        want_days = [_days(dates[t]) for t in kept[pid]] + [0] * (4 - len(kept[pid]))
        assert batch[dates_key("SENTINEL2_TS")][row].tolist() == want_days
        pad = [False] * len(kept[pid]) + [True] * (4 - len(kept[pid]))
        assert batch[pad_key("SENTINEL2_TS")][row].tolist() == pad
    assert not s2[0, 3].any()  # padding is zeros
    assert batch["SENTINEL1-DESC_TS"].shape == (2, 3, 2, 10, 10)
    assert not batch[pad_key("SENTINEL1-DESC_TS")].any()
    assert batch[dates_key("SENTINEL1-ASC_TS")][0].tolist() == [
        _days(d) for d in rel.dates[a]["SENTINEL1-ASC"]
    ]
    assert batch["patch_id"] == [a, b]
    # clouds of 90 tolerated: the band order matters (snow first, then cloud)
    lax = HubTrainConfig(inputs=ALL[3:4], tasks=TASKS, downsample=8, filter_sentinel2_max_cloud=95)
    s2_lax = HubDataset([recs[a]], lax)[0]["SENTINEL2_TS"].numpy()
    raw = rel.arrays[a]["SENTINEL2_TS"]
    np.testing.assert_array_equal(s2_lax, raw.reshape(5, 10, 10, 10)[[0, 1, 2, 4]])
    assert batch["AERIAL_LABEL-COSIA"].shape == (2, 64, 64)


def test_bad_labels_and_missing_modalities_are_named(
    hub: tuple[HubRelease, dict], tmp_path: Path
) -> None:
    rel, recs = hub
    pid = str(rel.ids[2])
    lpis = rel.arrays[pid]["ALL_LABEL-LPIS"].copy()
    lpis[0, :3, :] = 30  # above the 23 level-1 classes
    bad = tmp_path / "lpis.tif"
    write_tif(bad, lpis)
    rec = dataclasses.replace(recs[pid], paths=recs[pid].paths | {"ALL_LABEL-LPIS": str(bad)})
    cfg = HubTrainConfig(tasks={"ALL_LABEL-LPIS": {}}, downsample=1)
    with pytest.warns(UserWarning, match=rf"{bad}: 1536 px of ALL_LABEL-LPIS band 1 .* above 22"):
        lab = HubDataset([rec], cfg)[0]["ALL_LABEL-LPIS"].numpy()
    want = lpis[0].astype(np.int64)
    want[want >= 23] = IGNORE
    np.testing.assert_array_equal(lab, want)
    paths = {k: v for k, v in recs[pid].paths.items() if k != "SPOT_RGBI"}
    no_spot: HubRecord = dataclasses.replace(recs[pid], paths=paths)
    cfg = HubTrainConfig(inputs=("AERIAL_RGBI", "SPOT_RGBI"))
    with pytest.warns(UserWarning, match=rf"patch {pid}: no SPOT_RGBI file: left out"):
        ds = HubDataset([no_spot, recs[str(rel.ids[0])]], cfg)
    assert [r.patch_id for r in ds.records] == [str(rel.ids[0])]
    assert ds.left_out == [f"patch {pid}: no SPOT_RGBI file: left out of its split"]
