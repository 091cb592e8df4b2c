"""FLAIR-HUB's scores of a real module whose heads are set to predict one class everywhere.

The decoders' last convolutions are zeroed and given a bias, so the prediction is known
without running anything of ours: every expected IoU below is counted by hand from the
labels drawn here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from flair_pipeline.evaluation.hub_scoring import score_hub
from flair_pipeline.models.hub_inputs import IGNORE
from flair_pipeline.training.hub_module import HubModule

COSIA, LPIS = "AERIAL_LABEL-COSIA", "ALL_LABEL-LPIS"


def constant_module(cosia_class: int, lpis_class: int) -> HubModule:
    torch.manual_seed(0)
    module = HubModule(
        {"inputs": {"AERIAL_RGBI": 4}, "tasks": {COSIA: 19, LPIS: 23}, "encoder": "resnet18"},
        {COSIA: [1.0] * 15 + [0.0] * 4, LPIS: [1.0] * 23},
        {},
    )
    for task, cls in ((COSIA, cosia_class), (LPIS, lpis_class)):
        conv = module.model.decoders[task].head[0]
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()
            conv.bias[cls] = 10.0
    return module


def patch_batch(
    cosia: list[torch.Tensor], lpis: list[torch.Tensor], domains: list[str]
) -> dict[str, Any]:
    n = len(cosia)
    return {
        "AERIAL_RGBI": torch.randn(n, 4, 32, 32),
        COSIA: torch.stack(cosia),
        LPIS: torch.stack(lpis),
        "patch_id": [f"p{i}" for i in range(n)],
        "domain": domains,
    }


def test_scores_follow_flair_hub_over_scored_classes_per_domain() -> None:
    module = constant_module(cosia_class=0, lpis_class=22).train()
    a = torch.zeros(32, 32, dtype=torch.long)  # rows 0-15: class 0 (512 px)
    a[16:24] = 1  # 256 px of class 1
    a[24:] = 17  # 256 px of an unscored class (weight 0): not counted at all
    b = torch.full((32, 32), 3)  # 992 px of class 3 ...
    b[0] = IGNORE  # ... a row not scored
    c = torch.zeros(32, 32, dtype=torch.long)  # 1024 px of class 0
    lpis_a = torch.full((32, 32), 22)  # background
    lpis_b = torch.full((32, 32), IGNORE)  # no crop-type label on this patch
    lpis_c = torch.full((32, 32), 5)
    batches = [
        patch_batch([a, b], [lpis_a, lpis_b], ["D001_2020", "D002_2021"]),
        patch_batch([c], [lpis_c], ["D001_2020"]),
    ]
    report = score_hub(module, batches)
    assert module.training  # the module's mode is restored

    cosia = report.tasks[COSIA]
    # predicted 0 everywhere: TP_0 = 512 + 1024, FP_0 = 256 (class 1) + 992 (class 3)
    assert cosia.miou == pytest.approx((1536 / (1536 + 1248)) / 15)  # 15 scored classes
    assert cosia.per_domain["D001_2020"].miou == pytest.approx((1536 / (1536 + 256)) / 15)
    assert cosia.per_domain["D002_2021"].miou == 0.0
    assert cosia.n_patches == 3
    assert cosia.matrix[17, 0] == 256  # the full matrix keeps the unscored class
    lpis = report.tasks[LPIS]
    # patch b has no LPIS label: not a patch of that task; TP_22 = 1024, FP_22 = 1024
    assert lpis.n_patches == 2
    assert lpis.miou == pytest.approx(0.5 / 23)
    assert set(lpis.per_domain) == {"D001_2020"}

    data = json.loads(report.to_json())
    assert data["miou"] == pytest.approx((cosia.miou + lpis.miou) / 2)
    t = data["tasks"][COSIA]
    assert t["unscored"] == ["clear cut", "ligneous", "mixed", "other"]
    assert t["per_class"]["building"]["iou"] == pytest.approx(1536 / 2784)
    assert t["per_class"]["building"]["precision"] == pytest.approx(1536 / 2784)
    assert t["per_class"]["building"]["recall"] == 1.0
    assert t["per_class"]["impervious surface"] == {
        "iou": 0.0,
        "precision": 0.0,
        "recall": 0.0,
        "fscore": 0.0,
        "support": 992,
    }
    assert t["overall_accuracy"] == pytest.approx(1536 / 2784)
    assert t["per_domain"]["D002_2021"]["n_patches"] == 1
    assert data["tasks"][LPIS]["per_class"]["background"]["iou"] == pytest.approx(0.5)


def test_a_batch_without_domain_is_named() -> None:
    module = constant_module(0, 22)
    b = patch_batch(
        [torch.zeros(32, 32, dtype=torch.long)], [torch.zeros(32, 32, dtype=torch.long)], ["D1"]
    )
    del b["domain"]
    with pytest.raises(ValueError, match=r"lacks \['domain'\]"):
        score_hub(module, [b])
