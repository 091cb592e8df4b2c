"""Score a folder of predicted maps against a folder of MSK labels (FLAIR's protocol).

Predictions are single-band uint8 GeoTIFFs of FLAIR codes named ``PRED_<id>.tif`` (or
``MSK_<id>.tif``, as FLAIR's own inference writes them), found recursively; labels are
``MSK_<id>.tif``, found recursively. Both sides go through the 13-class merge, so codes
13..19 count as "other" whichever of them a model predicts.

Everything that would make the score silently wrong is refused with an error naming the
file: a labelled patch without a prediction (a missing patch would inflate the score), an
id found twice (which one counts?), a prediction on another grid than its label (pixels
would be compared with their neighbours), a code that is not 1..19. A prediction pixel its
file declares as no data (its nodata value or mask: where the image held nothing, as
``predict`` and ``evaluate_checkpoint`` write them) is not scored; an undeclared 0 is
refused as any other value outside 1..19.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from flair_pipeline.errors import InputError
from flair_pipeline.geo.grid import grid_problem
from flair_pipeline.io import atomic_path
from flair_pipeline.layout import MSK, PRED, file_prefix
from flair_pipeline.metrics import ConfusionAccumulator, Scores, domain_of
from flair_pipeline.nomenclature import INVALID, merge_to_13
from flair_pipeline.progress import Progress, each

PREDICTION_PREFIXES = (file_prefix(PRED), file_prefix(MSK))  # "PRED_", "MSK_"
LABEL_PREFIXES = (file_prefix(MSK),)
_MAX_NAMED = 5


def find_patches(root: str | Path, prefixes: tuple[str, ...], kind: str) -> dict[str, Path]:
    """Map patch id -> file for every ``<prefix><id>.tif`` under `root`, recursively.

    Args:
        root: The folder searched.
        prefixes: File-name prefixes, e.g. ``("MSK_",)``.
        kind: What the files are (``label``, ``prediction``), named in errors.

    Returns:
        Patch id (the name without prefix and ``.tif``) -> file.

    Raises:
        InputError: `root` is not a folder, holds no such file, or holds one id twice.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: {kind} folder not found")
    found: dict[str, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".tif", ".tiff")):
        prefix = next((x for x in prefixes if path.name.startswith(x)), None)
        if prefix is None:
            continue
        pid = path.stem[len(prefix) :]
        if pid in found:
            raise InputError(
                f"duplicate {kind} for patch {pid}: {found[pid]} and {path}; keep one of them"
            )
        found[pid] = path
    if not found:
        names = " or ".join(f"{p}<id>.tif" for p in prefixes)
        raise InputError(f"{root}: no {kind} files ({names}) found")
    return found


def _read_pair(label: Path, pred: Path) -> tuple[np.ndarray, np.ndarray]:
    """Merged class indices of a (label, prediction) pair checked to share one grid.

    Args:
        label: An MSK file (FLAIR codes, 0 = unlabelled).
        pred: Its prediction (FLAIR codes 1..19), one band.

    Returns:
        (truth, prediction) merged class indices (H, W) uint8; unlabelled truth and
        prediction pixels the file declares void (nodata or mask) are INVALID.

    Raises:
        InputError: The prediction has several bands, is not on the label's grid, either
            file is unreadable, or a code is outside FLAIR's.
    """
    try:
        with rasterio.open(label) as lsrc, rasterio.open(pred) as psrc:
            if psrc.count != 1:
                raise InputError(f"{pred}: prediction has {psrc.count} bands, expected 1")
            problem = grid_problem(lsrc, psrc)
            if problem:
                raise InputError(f"{pred}: not on the grid of its label {label}: {problem}")
            truth, guess = lsrc.read(1), psrc.read(1)
            void = psrc.read_masks(1) == 0  # declared no data: nodata value or mask
    except RasterioError as exc:
        raise InputError(f"cannot read {label} or {pred}: {exc}") from None
    if void.any():
        guess = np.where(void, 1, guess)  # any class: overwritten just below
    merged = merge_to_13(guess, source=str(pred))
    merged[void] = INVALID  # no image there: not scored
    return merge_to_13(truth, source=str(label), unlabelled_ok=True), merged


def evaluate(
    predictions: str | Path,
    labels: str | Path,
    *,
    domains: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> Scores:
    """Score every labelled patch under `labels` against its prediction under `predictions`.

    `domains` maps a patch id to its domain; without it the domain is the ``D0xx_YYYY``
    folder of the label (or else of the prediction) path. Predictions without a label are
    ignored (a map may cover more than the test set); labels without a prediction are not.

    Args:
        predictions: Folder of ``PRED_<id>.tif`` files.
        labels: Folder of ``MSK_<id>.tif`` files.
        domains: Patch id -> domain id, or None.
        progress: Counts the patches scored.

    Returns:
        FLAIR's scores from the confusion matrix summed over every patch, and per domain.

    Raises:
        InputError: A labelled patch has no prediction (the first ones named), or see
            :func:`find_patches` and the pair reader.
    """
    label_files = find_patches(labels, LABEL_PREFIXES, "label")
    pred_files = find_patches(predictions, PREDICTION_PREFIXES, "prediction")
    missing = [pid for pid in label_files if pid not in pred_files]
    if missing:
        shown = ", ".join(str(label_files[p]) for p in missing[:_MAX_NAMED])
        more = f" and {len(missing) - _MAX_NAMED} more" if len(missing) > _MAX_NAMED else ""
        raise InputError(
            f"{len(missing)} labelled patch(es) have no PRED_<id>.tif under {predictions}: "
            f"{shown}{more}"
        )
    acc = ConfusionAccumulator()
    for pid, label in each(progress, "patches", list(label_files.items()), "patches"):
        pred = pred_files[pid]
        truth, guess = _read_pair(label, pred)
        domain = (domains or {}).get(pid) or domain_of(label) or domain_of(pred)
        acc.add(truth, guess, domain)
    return acc.scores()


def write_metrics(scores: Scores, out: str | Path) -> Path:
    """Write metrics.json atomically (strict JSON: undefined values are null).

    Args:
        scores: The scores.
        out: The metrics.json written.

    Returns:
        `out` as a Path.
    """
    return write_text(out, json.dumps(scores.to_dict(), indent=2, allow_nan=False) + "\n")


def write_text(out: str | Path, text: str) -> Path:
    """Write a small text artifact atomically.

    Args:
        out: The file written.
        text: Its content (UTF-8).

    Returns:
        `out` as a Path.
    """
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(out)


def write_bytes(out: str | Path, data: bytes) -> Path:
    """Write a small binary artifact (a PNG) atomically.

    Args:
        out: The file written.
        data: Its content.

    Returns:
        `out` as a Path.
    """
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    return Path(out)


def format_scores(scores: Scores) -> str:
    """A plain-text table for the terminal: per-class IoU/F1 and the headline numbers.

    Args:
        scores: The scores.

    Returns:
        The table: IoU, F1 and support per class, then mIoU, overall accuracy and
        patches, then one line per domain.
    """

    def f(x: float) -> str:
        return "   -  " if np.isnan(x) else f"{x:6.4f}"

    lines = [f"{'class':<24}{'IoU':>8}{'F1':>8}{'support':>12}"]
    for i, name in enumerate(scores.names):
        lines.append(
            f"{name:<24}{f(scores.iou[i]):>8}{f(scores.f1[i]):>8}{int(scores.support[i]):>12}"
        )
    lines.append(
        f"\nmIoU (classes 1-12) {f(scores.miou)}   overall accuracy {f(scores.overall_accuracy)}"
        f"   patches {scores.n_patches}"
    )
    for d, s in scores.per_domain.items():
        lines.append(f"  {d}: mIoU {f(s.miou)}  OA {f(s.overall_accuracy)}  ({s.n_patches})")
    return "\n".join(lines)
