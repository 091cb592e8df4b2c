"""The model card: what a checkpoint's model is and what its inputs must look like, typed.

Every checkpoint written by ``flair-pipeline train`` carries a :class:`ModelCard` (key
``model_card``, :data:`CARD_VERSION`); training, evaluation and prediction build the model
and its inputs from it, never from loose keywords. Checkpoints written before the card
existed carry only Lightning's ``hyper_parameters`` dict: :func:`upgrade_hparams` turns it
into a card, gives each missing field its documented upgrade value
(:data:`UPGRADE_VALUES`) and records each such decision in :attr:`ModelCard.upgraded`.

Patch size, precisely: :attr:`PatchGeometry.patch_px` is the side of a training patch in
aerial pixels at :attr:`PatchGeometry.resolution_m` (the IMG file's width); the model
itself sees :attr:`PatchGeometry.model_px` = ``patch_px // downsample`` pixels after area
averaging. Prediction cuts the ortho into windows of ``patch_px`` image pixels (the same
ground footprint as a training patch) and averages each down to ``model_px``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flair_pipeline.config import PipelineConfig, S2Preprocessing
from flair_pipeline.errors import ConfigError, InputError
from flair_pipeline.model_registry import get_model
from flair_pipeline.nomenclature import BY_CODE, MERGED_NAMES, UNLABELLED

#: The card version this code writes; a newer card is refused, an older one upgraded.
CARD_VERSION = 1

#: Aerial channels in the order of the IMG bands (a 4-channel model reads the first four).
AERIAL_CHANNELS: tuple[str, ...] = ("R", "G", "B", "NIR", "elevation")

#: Sentinel-2 bands in the order of the series' band axis (:mod:`flair_pipeline.sentinel2`).
S2_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")

#: FLAIR codes 13..19, merged into the 13th class "other" (``nomenclature.merge_to_13``).
MERGED_INTO_OTHER: tuple[str, ...] = tuple(BY_CODE[c].name for c in range(13, 20))

#: The value an old checkpoint gets for a hyper-parameter it lacks: the default of
#: ``FlairModule`` when that checkpoint was written (FLAIR's 512 px patches of 0.2 m,
#: no downsampling, elevation scale 5).
UPGRADE_VALUES: dict[str, Any] = {
    "patch_size": 512,
    "resolution": 0.2,
    "downsample": 1,
    "elevation_scale": 5.0,
    "s2_options": None,
    "meta_encoding": None,
}


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CardInputs(_Part):
    """What the model reads.

    Attributes:
        modalities: The batch keys its forward pass reads (``model_registry``'s inputs).
        aerial_channels: The aerial channels, in band order (see :data:`AERIAL_CHANNELS`).
        elevation_scale: uint8 elevation = clip((DSM - DTM) × scale, 0, 255) (5-channel).
        sentinel2_bands: The Sentinel-2 bands, in order (empty without Sentinel-2).
    """

    modalities: tuple[str, ...]
    aerial_channels: tuple[str, ...] = Field(min_length=1, max_length=5)
    elevation_scale: float = Field(gt=0)
    sentinel2_bands: tuple[str, ...] = ()

    @property
    def needs_elevation(self) -> bool:
        """Whether the model reads an elevation channel (a DSM/DTM or a 5th band)."""
        return "elevation" in self.aerial_channels


class Normalisation(_Part):
    """``(x - mean) / std`` per channel, in 0..255 (aerial) and reflectance × 10⁴ (S2) units.

    Attributes:
        mean: One per aerial channel.
        std: One per aerial channel.
        s2_mean: One per Sentinel-2 band, or None.
        s2_std: One per Sentinel-2 band, or None.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    s2_mean: tuple[float, ...] | None = None
    s2_std: tuple[float, ...] | None = None

    def as_stats(self) -> dict[str, Any]:
        """The statistics in the shape ``FlairModule`` and the loaders take (lists).

        Returns:
            ``mean``, ``std``, ``s2_mean``, ``s2_std``: plain lists of floats in the card's
            channel order (the Sentinel-2 ones None for a model without Sentinel-2).
        """
        return {
            "mean": list(self.mean),
            "std": list(self.std),
            "s2_mean": None if self.s2_mean is None else list(self.s2_mean),
            "s2_std": None if self.s2_std is None else list(self.s2_std),
        }


class PatchGeometry(_Part):
    """Ground sampling of the training patches and of the prediction windows.

    Attributes:
        resolution_m: Aerial pixel size of the training patches, metres.
        patch_px: Side of a training patch in aerial pixels (the IMG width), which is also
            the side in image pixels of a prediction window.
        downsample: Area-averaging factor: the model sees ``patch_px // downsample`` px.
    """

    resolution_m: float = Field(gt=0)
    patch_px: int = Field(gt=0)
    downsample: int = Field(1, gt=0)

    @property
    def model_px(self) -> int:
        """Side in pixels of the model's input (after downsampling)."""
        return self.patch_px // self.downsample


class ModelCard(_Part):
    """Everything needed to rebuild a trained model and to feed it, versioned.

    Attributes:
        card_version: :data:`CARD_VERSION` when written.
        model: Its name in ``model_registry``.
        architecture: The network's constructor arguments
            (:func:`flair_pipeline.model_registry.architecture`; the encoder is ResNet34).
        inputs: What it reads and in which order.
        normalisation: The training statistics.
        classes: The output classes, by logit index (FLAIR merged codes 1..13).
        merged_into_other: FLAIR classes trained as "other" (codes 13..19).
        unlabelled_code: Mask value excluded from loss and metrics.
        patch: Resolution and patch size.
        sentinel2: Sentinel-2 preprocessing of the training windows, or None.
        meta_encoding: The metadata vocabulary of a metadata model, or None.
        upgraded: Decisions the upgrader took for an older checkpoint (empty when written
            by this version).
    """

    card_version: Literal[1] = 1  # CARD_VERSION
    model: str
    architecture: dict[str, Any]
    inputs: CardInputs
    normalisation: Normalisation
    classes: tuple[str, ...] = MERGED_NAMES
    merged_into_other: tuple[str, ...] = MERGED_INTO_OTHER
    unlabelled_code: int = UNLABELLED
    patch: PatchGeometry
    sentinel2: S2Preprocessing | None = None
    meta_encoding: dict[str, Any] | None = None
    upgraded: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        n = len(self.inputs.aerial_channels)
        norm = self.normalisation
        if len(norm.mean) != n or len(norm.std) != n:
            raise ValueError(
                f"{n} aerial channels but {len(norm.mean)} means and {len(norm.std)} stds"
            )
        if ("s2" in self.inputs.modalities) != (self.sentinel2 is not None):
            raise ValueError("Sentinel-2 preprocessing must be given exactly for an s2 model")
        return self

    @property
    def needs_s2(self) -> bool:
        """Whether the model reads Sentinel-2 windows."""
        return "s2" in self.inputs.modalities

    @property
    def needs_meta(self) -> bool:
        """Whether the model reads the encoded aerial metadata."""
        return "meta" in self.inputs.modalities


def card_for_training(
    cfg: PipelineConfig,
    model: str,
    stats: dict[str, Any],
    *,
    patch_px: int,
    meta_encoding: dict[str, Any] | None = None,
) -> ModelCard:
    """The card of a new training run of `model` configured by `cfg`.

    Args:
        cfg: The pipeline configuration (``train``, ``sampling``, ``sentinel2``).
        model: A name of :mod:`flair_pipeline.model_registry`.
        stats: The train split's statistics (``mean``, ``std``, maybe ``s2_mean``, ``s2_std``).
        patch_px: Side of the training patches in aerial pixels (the IMG width).
        meta_encoding: The metadata vocabulary of a metadata model.

    Returns:
        The card.

    Raises:
        ConfigError: Unknown model.
    """
    from flair_pipeline.model_registry import architecture

    spec = get_model(model)
    patch = PatchGeometry(
        resolution_m=cfg.sampling.resolution, patch_px=patch_px, downsample=cfg.train.downsample
    )
    n = len(stats["mean"])
    arch = architecture(
        model,
        in_channels=n,
        meta_dim=meta_encoding["dim"] if spec.needs_meta and meta_encoding else None,
        patch_m=patch_px * patch.resolution_m,
        utae_width=cfg.train.utae_width,
        modality_dropout=cfg.train.modality_dropout,
    )
    return ModelCard(
        model=model,
        architecture=arch,
        inputs=_inputs(spec.inputs, n, cfg.sampling.elevation_scale),
        normalisation=_normalisation(stats),
        patch=patch,
        sentinel2=cfg.sentinel2.preprocessing if spec.needs_s2 else None,
        meta_encoding=meta_encoding,
    )


def _inputs(modalities: tuple[str, ...], channels: int, elevation_scale: float) -> CardInputs:
    return CardInputs(
        modalities=modalities,
        aerial_channels=AERIAL_CHANNELS[:channels],
        elevation_scale=elevation_scale,
        sentinel2_bands=S2_BANDS if "s2" in modalities else (),
    )


def _normalisation(stats: dict[str, Any]) -> Normalisation:
    def opt(key: str) -> tuple[float, ...] | None:
        v = stats.get(key)  # absent for a model without Sentinel-2: no default involved
        return None if v is None else tuple(float(x) for x in v)

    return Normalisation(
        mean=tuple(float(x) for x in stats["mean"]),
        std=tuple(float(x) for x in stats["std"]),
        s2_mean=opt("s2_mean"),
        s2_std=opt("s2_std"),
    )


def card_from_checkpoint(ckpt: dict[str, Any], source: str) -> ModelCard:
    """The card of a loaded checkpoint: its ``model_card``, or one upgraded from its hparams.

    Args:
        ckpt: The checkpoint's dictionary (:func:`~flair_pipeline.training.checkpoint.load_checkpoint`).
        source: The checkpoint's path, for messages.

    Returns:
        The card (:attr:`ModelCard.upgraded` lists what an upgrade filled in).

    Raises:
        InputError: One line naming `source`: a card of a newer version, an invalid card,
            or no flair_pipeline model in the checkpoint.
    """
    raw = ckpt.get("model_card")
    if raw is None:
        hp = ckpt.get("hyper_parameters")
        if not isinstance(hp, dict) or "model_name" not in hp:
            raise InputError(f"checkpoint {source}: not a flair_pipeline model checkpoint")
        return upgrade_hparams(hp, source)
    version = raw.get("card_version") if isinstance(raw, dict) else None
    if isinstance(version, int) and version > CARD_VERSION:
        raise InputError(
            f"checkpoint {source}: model card version {version}, this flair_pipeline reads up "
            f"to {CARD_VERSION}; upgrade flair_pipeline"
        )
    try:
        return ModelCard.model_validate(raw)
    except ValueError as exc:
        first = " ".join(str(exc).split())[:300]
        raise InputError(f"checkpoint {source}: invalid model card ({first})") from None


def card_from_hparams(hp: dict[str, Any], source: str) -> ModelCard:
    """The card of a module's complete hyper-parameters (no field missing, nothing upgraded).

    Args:
        hp: ``FlairModule``'s hyper-parameters.
        source: What they come from, for messages.

    Returns:
        The card.

    Raises:
        InputError: One line naming `source` when a field is missing or invalid.
    """
    absent = [k for k in UPGRADE_VALUES if k not in hp]
    if absent:
        raise InputError(f"{source}: hyper-parameters lack {', '.join(absent)}")
    return upgrade_hparams(hp, source).model_copy(update={"upgraded": ()})


def upgrade_hparams(hp: dict[str, Any], source: str) -> ModelCard:
    """The card of a checkpoint written before cards existed (``hyper_parameters`` only).

    A missing ``patch_size``, ``resolution``, ``downsample``, ``elevation_scale``,
    ``s2_options`` or ``meta_encoding`` gets its :data:`UPGRADE_VALUES` value, recorded in
    :attr:`ModelCard.upgraded`; the model name, its arguments and the statistics are required.

    Args:
        hp: The checkpoint's ``hyper_parameters``.
        source: The checkpoint's path, for messages.

    Returns:
        The card.

    Raises:
        InputError: One line naming `source` when a required field is missing or invalid.
    """
    missing = [k for k in ("model_name", "model_kwargs", "stats") if k not in hp]
    if missing:
        raise InputError(
            f"checkpoint {source}: hyper-parameters lack {', '.join(missing)}; "
            "not a flair_pipeline model checkpoint"
        )
    notes: list[str] = []

    def value(key: str) -> Any:
        if key in hp:
            return hp[key]
        notes.append(f"{key} absent from the checkpoint: {UPGRADE_VALUES[key]!r} assumed")
        return UPGRADE_VALUES[key]

    try:
        spec = get_model(str(hp["model_name"]))
        stats = dict(hp["stats"])
        s2 = value("s2_options")
        return ModelCard(
            model=spec.name,
            architecture=dict(hp["model_kwargs"]),
            inputs=_inputs(spec.inputs, len(stats["mean"]), float(value("elevation_scale"))),
            normalisation=_normalisation(stats),
            patch=PatchGeometry(
                resolution_m=float(value("resolution")),
                patch_px=int(value("patch_size")),
                downsample=int(value("downsample")),
            ),
            sentinel2=S2Preprocessing.model_validate(s2) if s2 else None,
            meta_encoding=value("meta_encoding"),
            upgraded=(f"upgraded from hyper-parameters to card version {CARD_VERSION}", *notes),
        )
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise InputError(
            f"checkpoint {source}: cannot upgrade its hyper-parameters ({first})"
        ) from None
