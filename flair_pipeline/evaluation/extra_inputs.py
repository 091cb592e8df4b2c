"""What `predict` feeds a model besides the image: Sentinel-2 windows, aerial metadata.

U-T&T needs, for every prediction window, the 40 × 40 px Sentinel-2 window around the
window's centre, preprocessed as in training (cloud filter, monthly averages: the options
stored in the checkpoint) and normalised with the training statistics. The whole image's
series is fetched **once** from the configured provider over one grid covering the image
plus half a window on every side, then cut per window in memory: one request (or one pass
over the scenes) for the map, not one per window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from flair_pipeline.config import S2Preprocessing
from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.windows import PatchWindow
from flair_pipeline.sentinel2.provider import RES, Grid, Sentinel2Provider
from flair_pipeline.training.checkpoint import Inference
from flair_pipeline.training.samples import collate, cut_window, preprocess_window


class S2Windows:
    """``extra_inputs`` for :func:`predict_map`: normalised S2 windows per prediction window."""

    def __init__(
        self,
        inf: Inference,
        bounds: tuple[float, float, float, float],
        provider: Sentinel2Provider,
        year: int,
    ) -> None:
        card, norm = inf.card, inf.card.normalisation
        if card.sentinel2 is None or norm.s2_mean is None or norm.s2_std is None:
            raise InputError(
                f"checkpoint {inf.path}: the {inf.name!r} model has no Sentinel-2 input"
            )
        self.opts: S2Preprocessing = card.sentinel2
        half = self.opts.window * RES / 2 + RES
        x0, y0, x1, y1 = bounds
        self.grid = Grid.around((x0 - half, y0 - half, x1 + half, y1 + half))
        series = provider.fetch([self.grid], dt.date(year, 1, 1), dt.date(year, 12, 31))[0]
        self.data, self.masks, self.dates = series.data, series.masks, series.dates
        self.mean = torch.tensor(norm.s2_mean).view(1, 1, -1, 1, 1)
        self.std = torch.tensor(norm.s2_std).view(1, 1, -1, 1, 1)

    def __call__(self, windows: Sequence[PatchWindow]) -> Mapping[str, torch.Tensor]:
        """``s2`` (N, T, 10, w, w), ``dates`` (N, T) and ``pad_mask`` (N, T) around each window.

        Args:
            windows: The batch's windows (bounds in Lambert-93, m).

        Returns:
            The windows' series cut around each centre, preprocessed as in training, collated
            (padded to the longest T) and normalised with the checkpoint's S2 statistics.
        """
        samples = []
        w = self.opts.window
        for pw in windows:
            x0, y0, x1, y1 = pw.bounds
            r, c = self.grid.rowcol((x0 + x1) / 2, (y0 + y1) / 2)
            what = f"prediction window at ({x0:.1f}, {y1:.1f})"
            data, masks = cut_window(self.data, self.masks, r, c, w, what)
            win, doy = preprocess_window(data, masks, list(self.dates), self.opts)
            samples.append({"s2": torch.from_numpy(win), "dates": torch.from_numpy(doy)})
        batch = collate(samples)
        batch["s2"] = (batch["s2"] - self.mean) / self.std
        return batch


def s2_windows_from_config(
    inf: Inference, image: Any, year: int, provider: Sentinel2Provider
) -> S2Windows:
    """S2Windows over `image` from the configured Sentinel-2 provider.

    Args:
        inf: the U-T&T checkpoint's inference bundle.
        image: the ortho (file or folder) whose bounds the series must cover.
        year: the Sentinel-2 year to fetch.
        provider: the configured provider (``Project.provider()``,
            :func:`flair_pipeline.sentinel2.factory.build_provider`).

    Returns:
        The ``extra_inputs`` source of the predictor.

    Raises:
        InputError: the image is not in Lambert-93.
    """
    bounds, crs = image_bounds(image)
    check_lambert93(crs, str(image))
    return S2Windows(inf, bounds, provider, year)


class MetaWindows:
    """``extra_inputs`` for `unet-meta`: each window's location and acquisition facts.

    ``extra_inputs`` for `unet-meta`: each window's location, plus the acquisition facts
    the user gives (camera, date, time); missing facts encode as the unknown slot.
    """

    def __init__(self, inf: Inference, facts: Mapping[str, Any]) -> None:
        from flair_pipeline.models.metadata_mlp import MetadataEncoding

        enc = inf.card.meta_encoding
        if not enc:
            raise InputError(
                f"checkpoint {inf.path}: the {inf.name!r} model has no metadata encoding"
            )
        self.encoding = MetadataEncoding.from_dict(enc)
        self.facts = dict(facts)

    def __call__(self, windows: Sequence[PatchWindow]) -> Mapping[str, torch.Tensor]:
        """``meta`` (N, encoding dim) float32: each window's centroid (Lambert-93, m) and the facts.

        Args:
            windows: The batch's windows (bounds in Lambert-93, m).

        Returns:
            The encoded metadata as the checkpoint's encoding makes it.
        """
        records = []
        for pw in windows:
            x0, y0, x1, y1 = pw.bounds
            records.append(
                {**self.facts, "patch_centroid_x": (x0 + x1) / 2, "patch_centroid_y": (y0 + y1) / 2}
            )
        return {"meta": self.encoding.encode(records)}


def check_lambert93(crs: Any, what: str) -> None:
    """Sentinel-2 grids are built in EPSG:2154: the image must be in it too.

    Args:
        crs: The image's CRS.
        what: The image, named in the error.

    Raises:
        InputError: `crs` is not Lambert-93 in any of its forms.
    """
    from flair_pipeline.geo.crs import same_crs

    if not same_crs(crs, "EPSG:2154"):
        raise InputError(f"{what}: CRS {crs} is not EPSG:2154 (Lambert-93), which U-T&T needs")


def image_bounds(image: Any) -> tuple[tuple[float, float, float, float], Any]:
    """(bounds, crs) of an image given as predict_map takes it (file, .vrt or folder).

    Args:
        image: A file, a .vrt or a folder of tiles.

    Returns:
        (left, bottom, right, top) in the image's CRS units, and that CRS.
    """
    from flair_pipeline.evaluation.raster_input import ImageSource

    with ImageSource(image) as src:
        b = src.src.bounds
        return (b.left, b.bottom, b.right, b.top), src.crs
