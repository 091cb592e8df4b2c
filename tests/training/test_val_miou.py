"""The validation mIoU (checkpoint selection) is FLAIR's: classes 1..12, "other" left out."""

from __future__ import annotations

import pytest
import torch

from flair_pipeline.training.module import miou_from_confusion


def test_val_miou_averages_present_classes_without_other() -> None:
    cm = torch.zeros(13, 13)
    cm[0, 0], cm[1, 0] = 6, 2  # class 0: TP 6, FP 2, FN 0 -> IoU 6/8
    cm[1, 1] = 4  # class 1: TP 4, FP 0, FN 2 -> IoU 4/6
    cm[12, 12] = 50  # "other": perfect, but not averaged (metrics.py: FLAIR's mIoU)
    cm[12, 3] = 5  # a class only ever predicted, never true: IoU 0/5 = 0, averaged
    expected = (6 / 8 + 4 / 6 + 0.0) / 3  # classes absent from truth and prediction: left out
    assert float(miou_from_confusion(cm)) == pytest.approx(expected, abs=1e-6)


def test_val_miou_is_zero_when_no_class_occurs() -> None:
    cm = torch.zeros(13, 13)
    cm[12, 12] = 9  # only "other": no class of the mIoU occurs
    assert float(miou_from_confusion(cm)) == 0.0
