"""What a FLAIR-HUB batch holds: the contract between the loader and the multimodal model.

FLAIR-HUB (IGNF/FLAIR-HUB ``src/flair_hub/models/flair_model.py``) splits its inputs into
*mono-temporal* modalities (one image per patch, each with its own encoder) and
*multi-temporal* ones (a time series per patch, each with its own U-TAE), and trains one
head per label set (*task*). A batch from :mod:`flair_pipeline.training.hub_data` holds,
for B patches:

- ``batch[m]`` for a mono-temporal modality ``m``: float32 B×C×H×W, normalised, C the
  selected channels (``AERIAL_RGBI``, ``DEM_ELEV`` at the aerial image's size;
  ``SPOT_RGBI`` at its own 64 px / downsample, resized by the model);
- ``batch[s]`` for a series ``s``: float32 B×T×C×h×w (h = w = 10 px at 10.24 m), padded
  to the batch's longest series; ``batch[dates_key(s)]``: int64 B×T, days from the
  reference date (FLAIR-HUB's ``ref_date``, ``05-15`` of the series' year);
  ``batch[pad_key(s)]``: bool B×T, True on padding;
- ``batch[t]`` for a task ``t``: int64 B×H×W class indices (0-based), :data:`IGNORE`
  where the label is not scored;
- ``batch["patch_id"]`` and ``batch["domain"]``: lists of B strings.

The model returns ``{t: logits B×K_t×H×W}`` per task, and ``{aux_key(s, t): logits}`` for
the series given an auxiliary loss.
"""

from __future__ import annotations

#: Mono-temporal input modalities, in FLAIR-HUB's order (``mono_keys``).
MONO: tuple[str, ...] = ("AERIAL_RGBI", "AERIAL-RLT_PAN", "DEM_ELEV", "SPOT_RGBI")
#: Multi-temporal input modalities (``multi_keys``).
SERIES: tuple[str, ...] = ("SENTINEL2_TS", "SENTINEL1-ASC_TS", "SENTINEL1-DESC_TS")
#: The label sets (tasks), in FLAIR-HUB's order.
TASKS: tuple[str, ...] = ("AERIAL_LABEL-COSIA", "ALL_LABEL-LPIS")
#: A label value that is not scored (nodata of a label file, padding of a downsampled mask).
IGNORE = 255

#: Level-1 classes of FLAIR-HUB's crop-type labels, 0-based (IGNF/FLAIR-HUB 3d5693b,
#: ``configs/train/config_supervision.yaml``, ``ALL_LABEL-LPIS.value_name``, read from
#: band ``label_channel_nomenclature: 1``); 22 is the background.
LPIS_L1_NAMES: tuple[str, ...] = (
    "grasses",
    "wheat",
    "barley",
    "maize",
    "other cereals",
    "rice",
    "flax/hemp/tobacco",
    "sunflower",
    "rapeseed",
    "other oilseed crops",
    "soy",
    "other protein crops",
    "fodder legumes",
    "beetroots",
    "potatoes",
    "other arable crops",
    "vineyard",
    "olive groves",
    "fruits orchards",
    "nut orchards",
    "other permanent crops",
    "mixed crops",
    "background",
)


def dates_key(series: str) -> str:
    """The batch key of a series' acquisition days (``"SENTINEL2_TS__dates"``).

    Args:
        series: A name of :data:`SERIES`.

    Returns:
        The key.
    """
    return f"{series}__dates"


def pad_key(series: str) -> str:
    """The batch key of a series' padding mask (``"SENTINEL2_TS__pad"``).

    Args:
        series: A name of :data:`SERIES`.

    Returns:
        The key.
    """
    return f"{series}__pad"


def aux_key(series: str, task: str) -> str:
    """The output key of a series' auxiliary logits for a task.

    Args:
        series: A name of :data:`SERIES`.
        task: A name of :data:`TASKS`.

    Returns:
        ``"<series>__<task>"``, FLAIR-HUB's naming of its auxiliary decoders.
    """
    return f"{series}__{task}"
