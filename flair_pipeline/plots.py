"""Figures people would rather see than read: class shares, patch previews.

Rendered with matplotlib's Agg backend to PNG bytes, so they can be written to disk and
embedded in Dagster metadata alike. matplotlib is imported on the first figure
(:func:`pyplot`), not with this module: the asset modules import it, and importing
``matplotlib.pyplot`` costs 1–2 s, which every ``flair-pipeline materialize`` process
(one per DVC stage) would pay even when it draws nothing (issue 17).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from flair_pipeline.nomenclature import BY_CODE, FLAIR_SHARES, MERGED_COLOURS

if TYPE_CHECKING:
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg backend, imported on first use.

    Returns:
        The ``matplotlib.pyplot`` module.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    pyplot().close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str = "figure") -> str:
    """A markdown image with the PNG inlined (renders in the Dagster UI).

    Args:
        png: PNG bytes.
        alt: Alternative text.

    Returns:
        ``![alt](data:image/png;base64,…)``.
    """
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def class_share_chart(shares: Mapping[str, float], title: str) -> bytes:
    """Horizontal bars of class shares (%) next to FLAIR's, in FLAIR colours.

    Args:
        shares: Merged class name -> percent of pixels.
        title: Figure title.

    Returns:
        PNG bytes.
    """
    names = list(FLAIR_SHARES)
    ours = [shares.get(n, 0.0) for n in names]
    fig, ax = pyplot().subplots(figsize=(6, 4))
    y = np.arange(len(names))
    ax.barh(y - 0.2, ours, 0.4, color=MERGED_COLOURS, edgecolor="k", linewidth=0.3, label="this")
    ax.barh(y + 0.2, list(FLAIR_SHARES.values()), 0.4, color="lightgrey", label="FLAIR")
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("% of pixels")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)


def code_cmap() -> ListedColormap:
    """Colour map indexed by FLAIR code 0..19 (0 = unlabelled, white).

    Returns:
        20 colours: index 0 white, then FLAIR's colour of codes 1..19.
    """
    from matplotlib.colors import ListedColormap

    colours = ["#ffffff"] + [BY_CODE[c].colour for c in range(1, 20)]
    return ListedColormap(colours)


#: One panel of :func:`patch_rows`: (array, title, kind). Kinds: ``"image"`` an (H, W, 3)
#: RGB array shown as is; ``"codes"`` an (H, W) map of FLAIR codes 0..19 in FLAIR's colours;
#: ``"elevation"`` an (H, W) band in viridis.
Panel = tuple[np.ndarray, str, str]


def patch_rows(rows: Sequence[Sequence[Panel]]) -> bytes:
    """One row of panels per patch, as PNG bytes: the patch figures of the dataset and evaluation.

    Args:
        rows: per patch, its panels (the same count in every row), left to right.

    Returns:
        PNG bytes (2.5 x 2.5 inch panels, 90 dpi); one empty row when `rows` is empty.

    Raises:
        ValueError: a panel kind other than image, codes, elevation.
    """
    n, cols = max(len(rows), 1), max((len(r) for r in rows), default=3)
    fig, axes = pyplot().subplots(n, cols, figsize=(2.5 * cols, 2.5 * n), squeeze=False)
    cmap = code_cmap()
    for i, row in enumerate(rows):
        for ax, (arr, title, kind) in zip(axes[i], row, strict=True):
            if kind == "image":
                ax.imshow(arr)
            elif kind == "codes":
                ax.imshow(arr, cmap=cmap, vmin=0, vmax=19, interpolation="nearest")
            elif kind == "elevation":
                ax.imshow(arr, cmap="viridis")
            else:
                raise ValueError(f"panel {title!r}: unknown kind {kind!r}")
            ax.set_title(title, fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    return _png(fig)


def patch_preview(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray], titles: Sequence[str]
) -> bytes:
    """Rows of (RGB, elevation, labels) for a few patches: (5, H, W) IMG, (H, W) MSK codes.

    Args:
        images: IMG patches (5, H, W) uint8: R, G, B, NIR, elevation.
        masks: MSK patches (H, W), FLAIR codes.
        titles: One title per patch.

    Returns:
        PNG bytes.
    """
    return patch_rows(
        [
            [
                (np.moveaxis(img[:3], 0, -1), title, "image"),
                (img[4], "elevation", "elevation"),
                (msk, "labels", "codes"),
            ]
            for img, msk, title in zip(images, masks, titles, strict=True)
        ]
    )


def ndvi_profiles(profiles: Mapping[str, Sequence[np.ndarray]], title: str) -> bytes:
    """NDVI through the year per class: points of every sampled pixel, median per month.

    Args:
        profiles: Class name -> one (2, T) array of (day of year, NDVI) rows per sampled
            pixel; T differs between zones (their clear dates differ), hence a sequence.
        title: Figure title.

    Returns:
        PNG bytes.
    """
    from flair_pipeline.nomenclature import MERGED_COLOURS, MERGED_NAMES

    colour = dict(zip(MERGED_NAMES, MERGED_COLOURS, strict=True))
    fig, ax = pyplot().subplots(figsize=(6.5, 3.8))
    for name, arr in sorted(profiles.items()):
        doy = np.concatenate([a[0] for a in arr])
        val = np.concatenate([a[1] for a in arr])
        c = colour.get(name, "#888888")
        c = "#999999" if c.lower() in ("#ffffff", "#000000") else c
        ax.scatter(doy, val, s=4, alpha=0.25, color=c)
        months = np.clip((doy // 30.5).astype(int), 0, 11)
        med = [np.median(val[months == m]) if (months == m).any() else np.nan for m in range(12)]
        ax.plot(np.arange(12) * 30.5 + 15, med, "-o", ms=3, color=c, label=f"{name} ({len(arr)})")
    ax.set_xlabel("day of year")
    ax.set_ylabel("NDVI (cloud-free dates)")
    ax.set_ylim(-0.6, 1.0)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return _png(fig)
