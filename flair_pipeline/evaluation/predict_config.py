"""Large-area prediction configured by one object: ``PredictConfig(...).build(model)``.

:func:`~flair_pipeline.evaluation.predict.predict_map` takes eighteen arguments; most of
them come from the checkpoint (patch size, normalisation, downsampling, elevation scale)
or from the ``eval`` section of params.yaml (overlap, batch size). A :class:`PredictConfig`
gathers them once, validated (as Raster Vision's configs build their runtime objects),
and :meth:`PredictConfig.build` gives a :class:`Predictor` that maps any image with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flair_pipeline.config import EvalConfig
from flair_pipeline.progress import Progress
from flair_pipeline.training.model_card import ModelCard

if TYPE_CHECKING:
    import torch

    from flair_pipeline.evaluation.predict import ExtraInputs, PredictReport
    from flair_pipeline.training.checkpoint import Inference


class PredictConfig(BaseModel):
    """Everything :func:`predict_map` needs besides the model, the image and the output.

    Attributes:
        patch_size: Window side in pixels the model sees (after downsampling).
        overlap: Fraction of a window overlapped by its neighbours, in [0, 1).
        batch_size: Windows per forward pass.
        mean: Per-channel normalisation mean, 0..255 units (1 to 5 channels).
        std: Per-channel normalisation standard deviation, same length as `mean`.
        elevation_scale: uint8 elevation = clip((DSM - DTM) * scale, 0, 255).
        downsample: Area-averaging factor of the training patches.
        device: ``cpu``, ``cuda`` or None (cuda when present).
        block_size: Output tile side in pixels (multiple of 16).
        stripe_width: Width in pixels of the column stripes (multiple of `block_size`).
        readers: Threads reading windows ahead of the model (None: one per core, at most
            8); the map's bytes do not depend on it.
        card: The checkpoint's model card, or None (no check of the image).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    patch_size: int = Field(gt=0)
    # one source for the defaults: the ``eval`` section (params.yaml spells its values)
    overlap: float = Field(EvalConfig.model_fields["overlap"].default, ge=0, lt=1)
    batch_size: int = Field(EvalConfig.model_fields["batch_size"].default, gt=0)
    mean: tuple[float, ...] = Field(min_length=1, max_length=5)
    std: tuple[float, ...] = Field(min_length=1, max_length=5)
    elevation_scale: float = Field(5.0, gt=0)
    downsample: int = Field(1, gt=0)
    device: str | None = None
    block_size: int = Field(512, gt=0, multiple_of=16)
    stripe_width: int = Field(4096, gt=0)
    readers: int | None = Field(None, gt=0)
    # when set, Predictor.map refuses an image that does not match it (card_check)
    card: ModelCard | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PredictConfig:
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean/std give {len(self.mean)}/{len(self.std)} channels")
        if self.stripe_width % self.block_size:
            raise ValueError("stripe_width must be a multiple of block_size")
        return self

    @classmethod
    def for_checkpoint(
        cls, inf: Inference, evaluation: EvalConfig | None = None, **options: Any
    ) -> PredictConfig:
        """The prediction settings of a loaded checkpoint.

        Args:
            inf: The checkpoint (:func:`flair_pipeline.training.checkpoint.load_inference`):
                patch size, normalisation, downsampling and elevation scale come from it.
            evaluation: The ``eval`` section of the config, for `overlap` and `batch_size`.
            **options: Any other field (they win over `evaluation`).

        Returns:
            The validated settings.

        Raises:
            pydantic.ValidationError: A value out of range.
        """
        return cls.for_card(inf.card, evaluation, **options)

    @classmethod
    def for_card(
        cls, card: ModelCard, evaluation: EvalConfig | None = None, **options: Any
    ) -> PredictConfig:
        """The prediction settings of a model card.

        Args:
            card: The model card: the window the model sees (its ``model_px``), the
                normalisation, downsampling and elevation scale come from it.
            evaluation: The ``eval`` section of the config, for `overlap` and `batch_size`.
            **options: Any other field (they win over `evaluation`).

        Returns:
            The validated settings.

        Raises:
            pydantic.ValidationError: A value out of range.
        """
        fields: dict[str, Any] = {
            "patch_size": card.patch.model_px,
            "mean": card.normalisation.mean,
            "std": card.normalisation.std,
            "elevation_scale": card.inputs.elevation_scale,
            "downsample": card.patch.downsample,
            "card": card,
        }
        if evaluation is not None:
            fields.update(overlap=evaluation.overlap, batch_size=evaluation.batch_size)
        return cls(**{**fields, **options})

    def build(self, model: torch.nn.Module, extra_inputs: ExtraInputs | None = None) -> Predictor:
        """A predictor running `model` (and its extra inputs, e.g. Sentinel-2 windows).

        Args:
            model: The trained network, already on its device.
            extra_inputs: What the model needs besides the image (Sentinel-2 windows, aerial
                metadata), or None for an image-only model.

        Returns:
            A predictor holding this configuration (window size, overlap, batch size).
        """
        return Predictor(self, model, extra_inputs)


@dataclass(frozen=True)
class Predictor:
    """A model ready to map images with fixed settings."""

    config: PredictConfig
    model: torch.nn.Module
    extra_inputs: ExtraInputs | None = None

    def map(
        self,
        image: Path | str | list[Path],
        out: Path,
        *,
        dsm: Path | str | None = None,
        dtm: Path | str | None = None,
        probabilities: Path | None = None,
        progress: Progress | None = None,
    ) -> PredictReport:
        """Write the land-cover map of `image` to `out` (see :func:`predict_map`).

        Args:
            image: One GeoTIFF, a .vrt, a folder of tiles or a list of tiles (R, G, B, NIR),
                or a URL read in place (str: ``https://``, ``s3://``, ``/vsicurl/``).
            out: The map to write (COG, uint8 FLAIR codes 1..13, the image's grid and CRS).
            dsm: Surface model for the elevation channel (with `dtm`).
            dtm: Terrain model (with `dsm`).
            probabilities: Also write the 13 class probabilities here (uint8 0..255).
            progress: Where to show the count of windows predicted, or None.

        Returns:
            What was written, and how fast.

        Raises:
            InputError: An unusable image or DSM/DTM, or an image that does not match the
                card (resolution, bands, modalities); nothing is written then.
        """
        from flair_pipeline.evaluation.card_check import check_image
        from flair_pipeline.evaluation.predict import predict_map

        c = self.config
        if c.card is not None:
            check_image(
                c.card,
                image,
                elevation_given=dsm is not None and dtm is not None,
                extra_given=self.extra_inputs is not None,
            )
        return predict_map(
            self.model,
            image,
            out,
            patch_size=c.patch_size,
            overlap=c.overlap,
            batch_size=c.batch_size,
            mean=list(c.mean),
            std=list(c.std),
            dsm=dsm,
            dtm=dtm,
            elevation_scale=c.elevation_scale,
            device=c.device,
            probabilities=probabilities,
            extra_inputs=self.extra_inputs,
            downsample=c.downsample,
            block_size=c.block_size,
            stripe_width=c.stripe_width,
            progress=progress,
            readers=c.readers,
        )
