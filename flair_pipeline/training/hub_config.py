"""The FLAIR-HUB training configuration: inputs, preprocessing, tasks, model and recipe.

One pydantic model, :class:`HubTrainConfig`, read from the ``hub:`` section of a YAML file
(``recipes/flair-hub-*.yaml``) or from IGN's own configuration files
(``config_modalities.yaml`` plus, optionally, ``config_supervision.yaml`` and
``config_models.yaml``), so a run can start from FLAIR-HUB's published configs as they are.
Names are the project's where it has one (``epochs``, ``batch_size``, ``lr``, ``optimizer``,
``scheduler``, ``downsample``, ``num_workers``, ``seed``, ``precision``; see
:class:`flair_pipeline.config.TrainConfig`) and IGN's otherwise (``inputs_channels`` →
``channels``, ``filter_sentinel2_*``, ``calc_elevation*``, ``aux_loss_weight``,
``ref_date``). Unknown keys are errors naming the key.

Defaults are IGN's (IGNF/FLAIR-HUB 3d5693b): ``configs/train/config_modalities.yaml``
(channels AERIAL [4, 1, 2], S2 filter with max cloud 1, max snow 1, max fraction covered
0.05, elevation stacked on the DSM, the custom means/stds), ``config_supervision.yaml``
(COSIA classes 15–18 weighted 0; LPIS band 1, 23 classes), ``config_models.yaml``
(``ref_date`` 05-15, U-TAE widths). The recipe's defaults are the project's CPU recipe
(resnet34 U-Net encoder, downsample 4, a few epochs); ``recipes/flair-hub-*.yaml`` hold the
GPU recipes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flair_pipeline.errors import ConfigError
from flair_pipeline.models.hub_inputs import LPIS_L1_NAMES, MONO, SERIES, TASKS
from flair_pipeline.sources.flair_hub_layout import COSIA_NAMES, MODALITIES

#: IGN's channel selection, 1-based (``config_modalities.yaml`` ``inputs_channels``).
IGN_CHANNELS: dict[str, tuple[int, ...]] = {
    "AERIAL_RGBI": (4, 1, 2),
    "SPOT_RGBI": (4, 1, 2),
    "SENTINEL2_TS": tuple(range(1, 11)),
    "SENTINEL1-ASC_TS": (1, 2),
    "SENTINEL1-DESC_TS": (1, 2),
}
#: IGN's custom normalisation (``config_modalities.yaml`` ``normalization``), per channel
#: after selection (AERIAL's three values are for [4, 1, 2]); the series are not normalised
#: by IGN's loader (``data/dataloader.py``), so they have none here either.
IGN_MEANS: dict[str, tuple[float, ...]] = {
    "AERIAL_RGBI": (106.59, 105.66, 111.35),
    "AERIAL-RLT_PAN": (125.92,),
    "SPOT_RGBI": (433.26, 508.75, 467.77, 1137.03),
    "DEM_ELEV": (311.06, 311.06),
}
IGN_STDS: dict[str, tuple[float, ...]] = {
    "AERIAL_RGBI": (39.78, 52.23, 45.62),
    "AERIAL-RLT_PAN": (38.45,),
    "SPOT_RGBI": (312.76, 284.61, 226.02, 543.11),
    "DEM_ELEV": (537.55, 537.55),
}
#: IGN's U-TAE (``config_models.yaml`` ``multitemp_model``), the keys our U-TAE takes.
IGN_UTAE: dict[str, Any] = {
    "encoder_widths": [64, 64, 64, 128],
    "decoder_widths": [32, 32, 64, 128],
    "str_conv_k": 3,
    "str_conv_s": 1,
    "str_conv_p": 1,
    "n_head": 16,
    "d_model": 256,
    "d_k": 4,
    "encoder_norm": "group",
}
#: COSIA classes not scored by IGN's config (``value_weights.default_exceptions``).
COSIA_ZERO = (15, 16, 17, 18)
#: Names of the classes of each task (LPIS: at level 1).
TASK_NAMES: dict[str, tuple[str, ...]] = {
    "AERIAL_LABEL-COSIA": COSIA_NAMES,
    "ALL_LABEL-LPIS": LPIS_L1_NAMES,
}


def _bands(modality: str) -> int:
    spec = MODALITIES[modality]
    return int(spec.per_date or spec.bands or 1)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubTask(_Strict):
    """One head: its weight in the total loss and its per-class loss weights.

    ``class_weights`` None: IGN's defaults (1 for every class, COSIA 15–18 at 0). A class
    with weight 0 is neither trained on nor scored (FLAIR-HUB's mIoU is over the others).
    """

    task_weight: float = Field(1.0, ge=0)
    class_weights: tuple[float, ...] | None = None


def _default_tasks() -> dict[str, HubTask]:
    return {"AERIAL_LABEL-COSIA": HubTask()}


class HubTrainConfig(_Strict):
    """A FLAIR-HUB training run: what goes in, how it is prepared, what is learnt, and how."""

    # inputs (config_modalities.yaml)
    inputs: tuple[str, ...] = ("AERIAL_RGBI",)
    channels: dict[str, tuple[int, ...]] = Field(default_factory=lambda: dict(IGN_CHANNELS))
    modality_dropout: dict[str, float] = Field(default_factory=dict)
    aux_loss: tuple[str, ...] = ()
    aux_loss_weight: float = Field(1.5, ge=0)
    filter_sentinel2: bool = True
    filter_sentinel2_max_cloud: int = Field(1, ge=0, le=100)
    filter_sentinel2_max_snow: int = Field(1, ge=0, le=100)
    filter_sentinel2_max_frac_cover: float = Field(0.05, ge=0, le=1)
    calc_elevation: bool = True
    calc_elevation_stack_dsm: bool = True
    norm_type: Literal["custom", "without"] = "custom"
    means: dict[str, tuple[float, ...]] = Field(default_factory=lambda: dict(IGN_MEANS))
    stds: dict[str, tuple[float, ...]] = Field(default_factory=lambda: dict(IGN_STDS))
    # supervision (config_supervision.yaml)
    tasks: dict[str, HubTask] = Field(default_factory=_default_tasks)
    lpis_level: int = Field(1, ge=1, le=3, description="band of ALL_LABEL-LPIS (1 = level 1)")
    # model (config_models.yaml)
    ref_date: str = "05-15"
    encoder: str = "resnet34"
    encoder_weights: str | None = None
    utae: dict[str, Any] = Field(default_factory=lambda: dict(IGN_UTAE))
    # recipe (config_task.yaml hyperparams; the project's names)
    epochs: int = Field(2, gt=0)
    batch_size: int = Field(4, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    scheduler: Literal["none", "cosine", "plateau"] = "cosine"
    patience: int = Field(20, gt=0, description="early stopping on val_miou, epochs")
    downsample: int = Field(4, ge=1, description="divide aerial-size inputs/labels by this")
    num_workers: int = Field(0, ge=0)
    seed: int = Field(2025, ge=0)
    precision: Literal["32", "32-true", "bf16-mixed", "16-mixed"] = "32"

    @field_validator("tasks", mode="before")
    @classmethod
    def _drop_null_tasks(cls, value: Any) -> Any:
        # `tasks.<task>: null` removes a task (a recipe over params.yaml's hub.train, whose
        # COSIA task a DVC -S override cannot delete)
        if isinstance(value, Mapping):
            return {k: v for k, v in value.items() if v is not None}
        return value

    @model_validator(mode="after")
    def _check(self) -> HubTrainConfig:
        known = (*MONO, *SERIES)
        for where, names in (
            ("inputs", self.inputs),
            ("channels", tuple(self.channels)),
            ("modality_dropout", tuple(self.modality_dropout)),
            ("aux_loss", self.aux_loss),
            ("means", tuple(self.means)),
            ("stds", tuple(self.stds)),
        ):
            bad = [n for n in names if n not in known]
            if bad:
                raise ValueError(f"{where}: unknown modality {bad[0]!r}; one of {known}")
        if not self.inputs:
            raise ValueError("inputs: at least one input modality")
        mono_aux = [m for m in self.aux_loss if m not in SERIES or m not in self.inputs]
        if mono_aux:
            raise ValueError(
                f"aux_loss: {mono_aux[0]!r}: auxiliary heads are for the series among the "
                f"inputs here ({', '.join(s for s in SERIES if s in self.inputs) or 'none'})"
            )
        for mod, chans in self.channels.items():
            top = _bands(mod)
            if not chans or any(c < 1 or c > top for c in chans):
                raise ValueError(f"channels.{mod}: {list(chans)}, 1-based in 1..{top}")
        for mod, p in self.modality_dropout.items():
            if not 0 <= p <= 1:
                raise ValueError(f"modality_dropout.{mod}: {p} is not a probability")
        bad = [t for t in self.tasks if t not in TASKS]
        if bad:
            raise ValueError(f"tasks: unknown task {bad[0]!r}; one of {TASKS}")
        if not self.tasks:
            raise ValueError("tasks: at least one task")
        if not re.fullmatch(r"(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", self.ref_date):
            raise ValueError(f"ref_date {self.ref_date!r}: MM-DD, e.g. 05-15")
        for task, conf in self.tasks.items():
            if conf.class_weights is None and task == "ALL_LABEL-LPIS" and self.lpis_level != 1:
                raise ValueError(
                    f"tasks.{task}.class_weights: give one weight per class for LPIS level "
                    f"{self.lpis_level} (only level 1's 23 classes are known here)"
                )
        if self.norm_type == "custom":
            for mod in self.inputs:
                if mod in MONO and (mod not in self.means or mod not in self.stds):
                    raise ValueError(f"means/stds: none for {mod} (norm_type custom)")
            for mod in set(self.means) | set(self.stds):
                if mod in self.inputs:
                    want = self.in_channels(mod)
                    full = want if mod == "DEM_ELEV" else _bands(mod)
                    for name, table in (("means", self.means), ("stds", self.stds)):
                        if mod in table and len(table[mod]) not in (want, full):
                            raise ValueError(
                                f"{name}.{mod}: {len(table[mod])} values for {want} channels"
                                f" (or the file's {full} bands)"
                            )
        return self

    def in_channels(self, modality: str) -> int:
        """Channels a modality feeds the model (a series: per date).

        Args:
            modality: An input modality.

        Returns:
            The selected channels' count; ``DEM_ELEV``: 2 (DSM, elevation) with
            ``calc_elevation_stack_dsm``, 1 (elevation) with ``calc_elevation`` alone, else
            2 (DSM, DTM).
        """
        if modality == "DEM_ELEV":
            return 1 if self.calc_elevation and not self.calc_elevation_stack_dsm else 2
        return len(self.channels.get(modality, ())) or _bands(modality)

    def band_list(self, modality: str) -> list[int]:
        """The 1-based bands (per date for a series) read from a modality's file.

        Args:
            modality: An input modality.

        Returns:
            ``channels[modality]``, or every band when the config selects none.
        """
        return list(self.channels.get(modality) or range(1, _bands(modality) + 1))

    def norm_stats(self, modality: str) -> tuple[list[float], list[float]] | None:
        """The means and stds of a modality's selected channels, None when not normalised.

        Values given for every band of the file (IGN's SPOT: 4 means for channels
        [4, 1, 2]) are picked by channel; IGN's ``norm`` takes the first values instead
        (R's mean for NIR), a difference kept on purpose.

        Args:
            modality: An input modality.

        Returns:
            (means, stds), one per channel fed to the model, or None.
        """
        if self.norm_type != "custom" or modality not in self.means:
            return None
        means, stds = list(self.means[modality]), list(self.stds[modality])
        n = self.in_channels(modality)
        if len(means) != n and modality != "DEM_ELEV":
            bands = self.band_list(modality)
            means, stds = [means[b - 1] for b in bands], [stds[b - 1] for b in bands]
        return means, stds

    def class_count(self, task: str) -> int:
        """Classes of a task's head.

        Args:
            task: A configured task.

        Returns:
            COSIA 19; LPIS 23 at level 1, else the length of its class weights.
        """
        given = self.tasks[task].class_weights
        return len(given) if given is not None else len(TASK_NAMES[task])

    def class_weights(self, task: str) -> list[float]:
        """A task's per-class loss weights (0 = neither trained on nor scored).

        Args:
            task: A configured task.

        Returns:
            The configured weights, or IGN's defaults (1, COSIA 15–18 at 0).
        """
        given = self.tasks[task].class_weights
        if given is not None:
            return list(given)
        zero = COSIA_ZERO if task == "AERIAL_LABEL-COSIA" else ()
        return [0.0 if k in zero else 1.0 for k in range(len(TASK_NAMES[task]))]

    def class_names(self, task: str) -> list[str]:
        """A task's class names (``class_<k>`` where none are known).

        Args:
            task: A configured task.

        Returns:
            One name per class.
        """
        lpis_other = task == "ALL_LABEL-LPIS" and self.lpis_level != 1
        names = () if lpis_other else TASK_NAMES[task]
        n = self.class_count(task)
        return [names[k] if k < len(names) else f"class_{k}" for k in range(n)]

    def model_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``HubModel`` (``flair_pipeline.models.hub``).

        Returns:
            inputs (channels each), tasks (classes each), encoder, weights, U-TAE,
            modality dropout and the series with an auxiliary loss.
        """
        return {
            "inputs": {m: self.in_channels(m) for m in self.inputs},
            "tasks": {t: self.class_count(t) for t in self.tasks},
            "encoder": self.encoder,
            "encoder_weights": self.encoder_weights,
            "utae": dict(self.utae),
            "modality_dropout": {m: p for m, p in self.modality_dropout.items() if p > 0} or None,
            "aux_series": tuple(self.aux_loss),
        }


def _validated(data: Mapping[str, Any], source: str) -> HubTrainConfig:
    try:
        return HubTrainConfig.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        if err["type"] == "extra_forbidden":
            raise ConfigError(
                f"{source}: unknown key {where!r} (keys: {', '.join(HubTrainConfig.model_fields)})"
            ) from None
        raise ConfigError(f"{source}: {where}: {err['msg']}") from None


def _yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: unreadable YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a YAML mapping expected")
    return data


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(allowed))})")


_IGN_PRE = {
    "filter_sentinel2",
    "filter_sentinel2_max_cloud",
    "filter_sentinel2_max_snow",
    "filter_sentinel2_max_frac_cover",
    "temporal_average_sentinel2",
    "temporal_average_sentinel1",
    "calc_elevation",
    "calc_elevation_stack_dsm",
    "use_augmentation",
}


def _from_ign_modalities(path: Path) -> dict[str, Any]:
    doc = _yaml(path)
    _only(doc, {"modalities"}, str(path))
    m = doc["modalities"] or {}
    _only(
        m,
        {
            "inputs",
            "inputs_channels",
            "aux_loss",
            "aux_loss_weight",
            "modality_dropout",
            "pre_processings",
            "normalization",
        },
        f"{path}: modalities",
    )
    out: dict[str, Any] = {"inputs": tuple(k for k, v in (m.get("inputs") or {}).items() if v)}
    if m.get("inputs_channels"):
        out["channels"] = {k: tuple(v) for k, v in m["inputs_channels"].items() if v}
    out["aux_loss"] = tuple(k for k, v in (m.get("aux_loss") or {}).items() if v)
    if "aux_loss_weight" in m:
        out["aux_loss_weight"] = m["aux_loss_weight"]
    out["modality_dropout"] = {
        k: float(v or 0) for k, v in (m.get("modality_dropout") or {}).items()
    }
    pre = m.get("pre_processings") or {}
    _only(pre, _IGN_PRE, f"{path}: modalities.pre_processings")
    for key in ("temporal_average_sentinel2", "temporal_average_sentinel1", "use_augmentation"):
        if pre.get(key):
            raise ConfigError(
                f"{path}: modalities.pre_processings.{key}: {pre[key]!r} is not supported here "
                "(set it to False)"
            )
    out |= {k: v for k, v in pre.items() if k in HubTrainConfig.model_fields}
    norm = dict(m.get("normalization") or {})
    if "norm_type" in norm:
        if norm["norm_type"] == "scaling":
            raise ConfigError(
                f"{path}: modalities.normalization.norm_type 'scaling' is not supported here "
                "(custom or without)"
            )
        out["norm_type"] = norm.pop("norm_type")
    means, stds = {}, {}
    for key, values in norm.items():
        if key.endswith("_means"):
            means[key[: -len("_means")]] = tuple(values)
        elif key.endswith("_stds"):
            stds[key[: -len("_stds")]] = tuple(values)
        else:
            raise ConfigError(f"{path}: modalities.normalization: unknown key {key!r}")
    if means or stds:
        out["means"], out["stds"] = means, stds
    return out


def _from_ign_supervision(path: Path) -> dict[str, Any]:
    doc = _yaml(path)
    _only(doc, {"labels", "labels_configs"}, str(path))
    confs = doc.get("labels_configs") or {}
    tasks: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for task in doc.get("labels") or []:
        if task not in confs:
            raise ConfigError(f"{path}: labels_configs has no entry for label {task!r}")
        c = confs[task]
        where = f"{path}: labels_configs.{task}"
        _only(
            c, {"task_weight", "value_name", "value_weights", "label_channel_nomenclature"}, where
        )
        n = len(c.get("value_name") or TASK_NAMES.get(task, ()))
        vw = c.get("value_weights") or {}
        _only(vw, {"default", "default_exceptions", "per_modality_exceptions"}, where)
        if any(v for v in (vw.get("per_modality_exceptions") or {}).values()):
            raise ConfigError(
                f"{where}.value_weights.per_modality_exceptions: per-modality class weights are "
                "not supported here (leave them empty)"
            )
        weights = [float(vw.get("default", 1))] * n
        for k, w in (vw.get("default_exceptions") or {}).items():
            weights[int(k)] = float(w)
        tasks[task] = {"task_weight": float(c.get("task_weight", 1)), "class_weights": weights}
        if task == "ALL_LABEL-LPIS":
            out["lpis_level"] = int(c.get("label_channel_nomenclature", 1))
    out["tasks"] = tasks
    return out


def _from_ign_models(path: Path) -> dict[str, Any]:
    doc = _yaml(path)
    _only(doc, {"models"}, str(path))
    multi = (doc["models"] or {}).get("multitemp_model") or {}
    out: dict[str, Any] = {}
    if "ref_date" in multi:
        out["ref_date"] = str(multi["ref_date"])
    utae = {k: multi[k] for k in IGN_UTAE if k in multi}
    if utae:
        out["utae"] = dict(IGN_UTAE) | utae
    return out


def hub_config_from_ign(
    modalities: str | Path,
    supervision: str | Path | None = None,
    models: str | Path | None = None,
    **recipe: Any,
) -> HubTrainConfig:
    """A config from IGN's own files (``configs/train/config_*.yaml``), as published.

    Args:
        modalities: ``config_modalities.yaml`` (inputs, channels, aux loss, dropout,
            preprocessing, normalisation).
        supervision: ``config_supervision.yaml`` (tasks, weights, LPIS band); default: COSIA.
        models: ``config_models.yaml`` (``ref_date``, U-TAE widths); its mono-temporal
            ``arch`` (IGN's Swin/UPerNet) is not read: the encoder is ours (``encoder``).
        **recipe: Any other field of :class:`HubTrainConfig` (``epochs=``, ``encoder=``…).

    Returns:
        The validated config.

    Raises:
        ConfigError: An unknown key (named), an unsupported option (temporal averaging,
            augmentation, ``scaling`` normalisation, per-modality class weights), or an
            invalid value.
    """
    data = _from_ign_modalities(Path(modalities))
    if supervision is not None:
        data |= _from_ign_supervision(Path(supervision))
    if models is not None:
        data |= _from_ign_models(Path(models))
    return _validated(data | recipe, str(modalities))


def hub_train_config(
    fields: Mapping[str, Any], source: str = "params.yaml hub.train"
) -> HubTrainConfig:
    """Validate the ``hub.train`` section of params.yaml (or a recipe's) as a config.

    Args:
        fields: HubTrainConfig's fields (``PipelineConfig.hub.train``).
        source: Named in the error (the file and section).

    Returns:
        The validated config.

    Raises:
        ConfigError: An unknown key (named) or an invalid value.
    """
    return _validated(fields, source)


def load_hub_config(path: str | Path | None = None, **overrides: Any) -> HubTrainConfig:
    """The ``hub:`` section of a YAML file (a recipe), or the defaults.

    A file whose top level is IGN's (``modalities:``) is read as IGN's
    ``config_modalities.yaml`` (:func:`hub_config_from_ign`).

    A ``hub:`` section laid out as params.yaml's (``release``, ``manifest``, ``train``) is
    read from its ``train`` mapping (``recipes/flair-hub-*.yaml``: over the defaults here,
    not over params.yaml's CPU recipe).

    Args:
        path: The YAML file, or None for the defaults.
        **overrides: Fields set over the file's.

    Returns:
        The validated config.

    Raises:
        ConfigError: No ``hub:`` section, an unknown key (named), or an invalid value.
    """
    if path is None:
        return _validated(overrides, "hub config")
    p = Path(path)
    doc = _yaml(p)
    if "modalities" in doc:
        return hub_config_from_ign(p, **overrides)
    if "hub" not in doc:
        raise ConfigError(f"{p}: no 'hub:' section (nor IGN's 'modalities:')")
    hub = dict(doc["hub"] or {})
    if isinstance(hub.get("train"), dict):  # params.yaml's layout: release, manifest, train
        return _validated(dict(hub["train"]) | overrides, f"{p}: hub.train")
    return _validated(hub | overrides, f"{p}: hub")
