"""Refuse, in one line naming the file, an image that does not match a model's card.

A model trained on 0.2 m R, G, B, NIR + elevation patches gives a plausible-looking but
wrong map from a 0.5 m ortho or from an ortho without elevation; so before any window is
predicted, :func:`check_image` compares the image with the checkpoint's
:class:`~flair_pipeline.training.model_card.ModelCard`: pixel size, band count, and the
modalities the model reads besides the image (elevation, Sentinel-2 windows, metadata).
"""

from __future__ import annotations

import math
from pathlib import Path

from flair_pipeline.errors import InputError
from flair_pipeline.evaluation.raster_input import ImageSource
from flair_pipeline.storage import is_remote
from flair_pipeline.training.model_card import ModelCard

#: Relative difference of pixel size tolerated between the image and the card.
RESOLUTION_TOLERANCE = 1e-3


def check_image(
    card: ModelCard,
    image: Path | str | list[Path],
    *,
    elevation_given: bool,
    extra_given: bool,
) -> None:
    """Refuse `image` when it cannot feed the model of `card`.

    Args:
        card: The model card of the checkpoint.
        image: The image as :func:`~flair_pipeline.evaluation.predict.predict_map` takes it.
        elevation_given: A DSM and a DTM were given for the elevation channel.
        extra_given: The Sentinel-2 or metadata inputs the model reads were given.

    Raises:
        InputError: One line naming the image (or the missing input) and what to do.
    """
    what = f"the {card.model} model card"
    if card.needs_s2 and not extra_given:
        raise InputError(
            f"{_name(image)}: {what} reads Sentinel-2 windows ({len(card.inputs.sentinel2_bands)} "
            "bands) besides the image, none were given: pass --year and a sentinel2 config"
        )
    if card.needs_meta and not extra_given:
        raise InputError(
            f"{_name(image)}: {what} reads the acquisition metadata besides the image, none "
            "was given"
        )
    with ImageSource(image) as src:
        res_x, res_y = abs(src.transform.a), abs(src.transform.e)
        want = card.patch.resolution_m
        for res in (res_x, res_y):
            if not math.isclose(res, want, rel_tol=RESOLUTION_TOLERANCE):
                raise InputError(
                    f"{src.path}: {res_x:g} x {res_y:g} m pixels, but {what} was trained on "
                    f"{want:g} m pixels: resample the image to {want:g} m "
                    f"(gdalwarp -tr {want:g} {want:g} -r average)"
                )
        channels = card.inputs.aerial_channels
        need = len(channels) - (1 if card.inputs.needs_elevation and elevation_given else 0)
        if src.count < need:
            missing = ", ".join(channels[src.count : need])
            hint = (
                ": give --dsm and --dtm for the elevation channel"
                if card.inputs.needs_elevation and need == len(channels) == src.count + 1
                else ""
            )
            raise InputError(
                f"{src.path}: {src.count} band(s), but {what} reads {len(channels)} channels "
                f"({', '.join(channels)}); missing {missing}{hint}"
            )


def _name(image: Path | str | list[Path]) -> Path | str:
    if is_remote(image) if isinstance(image, (str, Path)) else False:
        return str(image)  # a URL: a Path would collapse its //
    return Path(image) if isinstance(image, (str, Path)) else Path(image[0]).parent
