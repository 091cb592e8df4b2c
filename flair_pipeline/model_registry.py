"""One registry of the pipeline's models: name, folder, builder and inputs of each.

FLAIR's baselines are the U-Net ResNet34 of FLAIR #1 (``unet``; ``unet-meta`` adds the
aerial-metadata branch of FLAIR #1's baseline) and U-T&T of FLAIR #2 (``utt``: the U-Net
fused with a U-TAE on the Sentinel-2 series). Training, evaluation, the assets, dvc.yaml,
the demo and the CLI look a model up here instead of spelling its name, its folder or
what it needs; like torchgeo's FLAIR dataset keeps its modalities in one
``modality_key_map``.

This module imports neither torch nor the model classes (Dagster definitions and dvc.yaml
generation read it): :meth:`ModelSpec.model_class` imports the class when asked.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from flair_pipeline.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """One model of the pipeline.

    Attributes:
        name: Its name in ``train.model``, ``--model`` and a checkpoint's ``model_name``.
        folder: Its folder under ``paths.models`` and ``paths.eval``, and the suffix of its
            assets (``model_<folder>``, ``evaluation_<folder>``); variants of one baseline
            share the folder (``unet-meta`` trains into ``unet``).
        label: How tables and maps name it.
        builder: ``"module:Class"`` of its ``torch.nn.Module``.
        inputs: The batch keys its forward pass reads (``img`` (B×C×H×W float); ``meta``
            (B×D float); ``s2`` (B×T×10×w×w float), ``dates`` (B×T long), ``pad_mask``
            (B×T bool)).
    """

    name: str
    folder: str
    label: str
    builder: str
    inputs: tuple[str, ...]

    @property
    def needs_s2(self) -> bool:
        """Whether it reads a Sentinel-2 window (``s2``) besides the aerial image."""
        return "s2" in self.inputs

    @property
    def needs_meta(self) -> bool:
        """Whether it reads the encoded aerial metadata (``meta``)."""
        return "meta" in self.inputs

    def model_class(self) -> Any:
        """The model's class (imports torch and the model's module).

        Returns:
            The class named by :attr:`builder` (``"module:Class"``), not an instance.
        """
        module, _, cls = self.builder.partition(":")
        return getattr(importlib.import_module(module), cls)


#: Every model, by name. The first model of a folder is the one its assets train by default.
MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec("unet", "unet", "U-Net", "flair_pipeline.models.unet:UNet", ("img",)),
        ModelSpec(
            "unet-meta",
            "unet",
            "U-Net + metadata",
            "flair_pipeline.models.metadata_mlp:UNetMeta",
            ("img", "meta"),
        ),
        ModelSpec(
            "utt",
            "utt",
            "U-T&T",
            "flair_pipeline.models.utt:UTT",
            ("img", "s2", "dates", "pad_mask"),
        ),
    )
}

#: The names, in registry order (``click.Choice``, error messages).
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)

#: One model per folder: the baselines the pipeline trains and evaluates (assets, dvc.yaml).
TRAINED: tuple[ModelSpec, ...] = tuple(
    m
    for i, m in enumerate(MODELS.values())
    if m.folder not in {o.folder for o in list(MODELS.values())[:i]}
)

#: The default model of each trained folder.
MODELS_BY_FOLDER: dict[str, ModelSpec] = {m.folder: m for m in TRAINED}


def get_model(name: str) -> ModelSpec:
    """The model called `name`.

    Args:
        name: A model name (a key of :data:`MODELS`, e.g. ``"unet"``).

    Returns:
        Its :class:`ModelSpec`.

    Raises:
        ConfigError: No model has that name (the message lists the names).
    """
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}: expected one of {', '.join(MODEL_NAMES)}"
        ) from None


def architecture(
    name: str,
    *,
    in_channels: int,
    meta_dim: int | None,
    patch_m: float,
    utae_width: int,
    modality_dropout: float,
) -> dict[str, Any]:
    """Constructor arguments of model `name` (:func:`flair_pipeline.models.build_model`).

    The network's side of a model card (``ModelCard.architecture``): the U-Net's encoder
    is a ResNet34 whatever the model; U-T&T's U-TAE has `utae_width` channels and its
    cropped branch takes the Sentinel-2 pixels under the patch, `patch_m` / 10 m.

    Args:
        name: A model name.
        in_channels: Aerial channels.
        meta_dim: Width of the encoded metadata (metadata models), else None.
        patch_m: Side of a training patch on the ground, metres.
        utae_width: ``train.utae_width``.
        modality_dropout: ``train.modality_dropout``.

    Returns:
        The keyword arguments, JSON-like.

    Raises:
        ConfigError: Unknown model.
    """
    spec = get_model(name)
    kw: dict[str, Any] = {"in_channels": in_channels, "classes": 13}
    if spec.needs_meta:
        kw["meta_dim"] = meta_dim
    if spec.needs_s2:
        w = utae_width
        kw["s2_bands"] = 10
        heads = next(h for h in (16, 8, 4, 2, 1) if w % h == 0)  # FLAIR: 16 heads at 64
        kw["utae"] = {
            "encoder_widths": [w, w, w, 2 * w],
            "decoder_widths": [w // 2, w // 2, w, 2 * w],
            "n_head": heads,
            "d_model": 4 * w,
        }
        kw["fusion"] = {
            "modality_dropout": modality_dropout,
            "crop_px": max(1, round(patch_m / 10.0)),
        }
    return kw


def model_for_folder(folder: str, configured: str) -> ModelSpec:
    """The model the asset of `folder` trains.

    That is the configured one (``train.model``) when it trains into that folder, else
    the folder's default.

    Args:
        folder: A model folder (``"unet"``, ``"utt"``).
        configured: The configured model name (``train.model``).

    Returns:
        The :class:`ModelSpec` of `configured` if its folder is `folder`, else the first
        model of `folder` in :data:`MODELS`.

    Raises:
        ConfigError: `configured` or `folder` is unknown.
    """
    spec = get_model(configured)
    if spec.folder == folder:
        return spec
    if folder not in MODELS_BY_FOLDER:
        raise ConfigError(
            f"unknown model folder {folder!r}: expected one of {', '.join(MODELS_BY_FOLDER)}"
        )
    return MODELS_BY_FOLDER[folder]


@dataclass(frozen=True)
class HubFamily:
    """One of FLAIR-HUB's model families, as IGN's README ("Baseline results") lists them.

    Built by :class:`flair_pipeline.models.hub.HubModel` (``inputs`` with their channel
    counts, ``tasks`` with their class counts) and trained by
    :mod:`flair_pipeline.training.hub_data`, not by the FLAIR #1/#2 assets: the families
    are neither in :data:`MODELS` nor in :data:`TRAINED`.

    Attributes:
        name: IGN's model id (``LC-A``, ``LPIS-I``, ...).
        inputs: Input modalities (:data:`flair_pipeline.models.hub_inputs.MONO`/``SERIES``).
        tasks: Tasks (:data:`flair_pipeline.models.hub_inputs.TASKS`).
        published_miou: IGN's published test mIoU, percent.
    """

    name: str
    inputs: tuple[str, ...]
    tasks: tuple[str, ...]
    published_miou: float


def _families(task: str, prefix: str, rows: str) -> dict[str, HubFamily]:
    """Families from rows ``"<suffix> <mIoU> <input,...>"`` (IGN's README table).

    Returns:
        Name -> family.
    """
    out = {}
    for row in rows.strip().splitlines():
        suffix, miou, inputs = row.split()
        name = f"{prefix}-{suffix}"
        out[name] = HubFamily(name, tuple(inputs.split(",")), (task,), float(miou))
    return out


_A, _P, _E, _SP = "AERIAL_RGBI", "AERIAL-RLT_PAN", "DEM_ELEV", "SPOT_RGBI"
_S2, _S1 = "SENTINEL2_TS", "SENTINEL1-ASC_TS,SENTINEL1-DESC_TS"
#: FLAIR-HUB's families (IGNF/FLAIR-HUB 3d5693b README, "Baseline results"): land cover
#: (COSIA) and crop type (LPIS); "S1 t.s." is both orbits, "Historical" the RLT panchromatic.
HUB_FAMILIES: dict[str, HubFamily] = {
    **_families(
        "AERIAL_LABEL-COSIA",
        "LC",
        f"""
        A 64.1 {_A}
        B 65.1 {_A},{_E}
        C 65.2 {_A},{_E},{_SP}
        D 64.7 {_A},{_S2}
        E 64.5 {_A},{_S1}
        F 64.9 {_A},{_S2},{_S1}
        G 34.2 {_S2}
        H 28.2 {_S1}
        I 43.5 {_SP}
        J 51.2 {_E}
        K 64.3 {_A},{_P}
        L 65.8 {_A},{_E},{_SP},{_S2},{_S1}
        ALL 65.6 {_A},{_P},{_E},{_SP},{_S2},{_S1}
        """,
    ),
    **_families(
        "ALL_LABEL-LPIS",
        "LPIS",
        f"""
        A 24.4 {_A}
        B 26.1 {_A},{_SP}
        C 29.8 {_A},{_S2}
        D 36.1 {_A},{_S2},{_S1}
        E 30.3 {_A},{_SP},{_S2}
        F 23.8 {_S2}
        G 18.1 {_S1}
        H 23.8 {_S2},{_S1}
        I 39.2 {_SP},{_S2},{_S1}
        J 35.4 {_A},{_SP},{_S2},{_S1}
        K 15.1 {_SP}
        """,
    ),
}
