"""The configuration tree: one pydantic model, loaded from ``params.yaml``.

``params.yaml`` at the repo root is the single source of parameters, so DVC tracks exactly
what the code uses (docs/architecture.md). Every front door loads it with :func:`load_config`, applies
``--set key.sub=value`` overrides and gets a validated, frozen :class:`PipelineConfig`.
Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flair_pipeline.errors import ConfigError
from flair_pipeline.storage import is_url

DEFAULT_PARAMS = Path("params.yaml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class S2Preprocessing(BaseModel):
    """How a patch's Sentinel-2 window is cut and cleaned (FLAIR-2's options).

    One model for three uses: the ``sentinel2`` section of params.yaml inherits these
    fields (:class:`flair_pipeline.config.Sentinel2Config`), a U-T&T checkpoint stores
    :meth:`model_dump` as its ``s2_options`` hyper-parameter, and training, evaluation and
    prediction read them back with :meth:`model_validate`, so no field is copied by hand.
    The field order is the checkpoint's key order and dvc.yaml's params order: keep it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(40, gt=0, description="px (10 m) around each patch centroid")
    filter_clouds: bool = False
    cloud_threshold: int = Field(60, ge=0, le=100, description="SNW/CLD probability cut-off")
    cloud_max_fraction: float = Field(0.5, ge=0, le=1)
    monthly_average: bool = False

    @classmethod
    def of(cls, section: BaseModel) -> S2Preprocessing:
        """The preprocessing options of `section`, and only them.

        `section` is a model that has these fields among others (the ``sentinel2`` config
        section).

        Args:
            section: The config section to take the preprocessing fields from.

        Returns:
            A new :class:`S2Preprocessing` holding `section`'s values of its own fields.

        Raises:
            pydantic.ValidationError: `section` lacks a field or holds an invalid value.
        """
        return cls.model_validate(section.model_dump(include=set(cls.model_fields)))


class PathsConfig(_Section):
    """Roots of the data layout (docs/data-format.md); each may be a local path or an fsspec URL."""

    raw: str = "data/raw"
    dataset: str = "data/dataset"
    models: str = "data/models"
    eval: str = "data/eval"


class SynthConfig(_Section):
    """The embedded synthetic world (`flair-pipeline synth`)."""

    scenario: Literal["tiny", "demo", "bench"] = "demo"
    seed: int = Field(0, ge=0)
    #: plain: the project's raw layout; ign: the same world as IGN delivers it (BD ORTHO
    #: RVB + IRC JPEG 2000, RGE ALTI .asc, LiDAR HD DSM, OCS GE-like labels, domain.yaml;
    #: docs/inputs.md). A param, so that `dvc exp run -S synth.flavour=ign` builds from it.
    flavour: Literal["plain", "ign"] = "plain"


#: The `demo` world's domains (two per official split): what `dvc repro` builds by default.
DEFAULT_BUILD_DOMAINS = (
    "D033_2021",
    "D013_2020",
    "D014_2020",
    "D067_2021",
    "D036_2020",
    "D069_2020",
)


class BuildConfig(_Section):
    """Which domains `dvc repro` builds: dvc.yaml runs one per-domain stage per entry.

    An explicit list rather than "whatever is on disk" because DVC needs its stage list
    before anything runs, and because the list is then versioned with the params: the
    same commit always means the same dataset. The Dagster front door (CLI, sensor) still
    builds every domain folder it finds.
    """

    domains: list[str] = Field(default_factory=lambda: list(DEFAULT_BUILD_DOMAINS), min_length=1)

    @model_validator(mode="after")
    def _valid_ids(self) -> BuildConfig:
        from flair_pipeline.domains import is_domain_id

        bad = [d for d in self.domains if not is_domain_id(d)]
        if bad:
            raise ValueError(f"not domain ids (expected D0<dd>_<yyyy>, e.g. D006_2020): {bad}")
        dupes = sorted({d for d in self.domains if self.domains.count(d) > 1})
        if dupes:
            raise ValueError(f"listed twice: {dupes}")
        return self


class DatasetConfig(_Section):
    """How IMG and MSK GeoTIFFs are written.

    `compression` is GDAL's COMPRESS; the default is the FLAIR release's own (its IMG and MSK
    files are ZSTD with horizontal predictor 2, checked on the real samples). Every codec but
    `none` uses PREDICTOR=2. Figures per codec: docs/performance.md.
    """

    compression: Literal["none", "deflate", "zstd", "lzw"] = "zstd"
    #: a domain's IMG and MSK written by this many groups of areas in parallel
    #: (dataset/area_groups.py): Dask tasks when the step runs on a Dask worker or a Dask
    #: client is open, else local processes; 1 (default): one after another, here
    area_workers: int = Field(1, ge=1, description="groups of areas written in parallel")


class SamplingConfig(_Section):
    """How patches are cut from each domain's mosaic."""

    patch_size: int = Field(512, gt=0, description="patch side in pixels")
    resolution: float = Field(0.2, gt=0, description="aerial pixel size in metres")
    #: an ortho tile at another pixel size than `resolution` (BD ORTHO 50 cm next to 20 cm
    #: dalles): refused in one line naming it (default), or resampled onto the
    #: `resolution` grid with this GDAL warper method (recorded in the domain's decisions)
    ortho_resampling: Literal[
        "refuse", "nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average"
    ] = "refuse"
    #: threads GDAL's OpenJPEG driver decodes JPEG 2000 ortho dalles with, per process
    #: (``GDAL_NUM_THREADS`` and ``OPJ_NUM_THREADS`` around the mosaic's reads; None: the
    #: CPUs this process may run on); recorded in the domain's decisions when a tile is
    #: JPEG 2000. Set 1 when several build processes share the cores
    jp2_decode_threads: int | None = Field(None, gt=0)
    strategy: Literal["grid", "random", "balanced"] = "grid"
    max_patches_per_domain: int | None = Field(None, gt=0)
    #: areas first (dataset/areas.py): how the areas (squares of `zone_size_m`) that get
    #: patches are chosen before any pixel is read, and how many per domain (None: all);
    #: with no more valid areas than the budget, the whole mosaic is sampled
    area_strategy: Literal["grid", "random", "balanced"] = "balanced"
    areas_per_domain: int | None = Field(
        18, gt=0, description="areas kept per domain (FLAIR-2: 916 areas / 50 domains)"
    )
    areas_layer: str | None = Field(
        None,
        description="an OGR vector of areas (EPSG:2154) replacing area_strategy; {domain} "
        "is replaced by the domain id",
    )
    max_nodata_fraction: float = Field(0.05, ge=0, le=1)
    #: how the pixel coverage of a candidate patch is read (docs/inputs.md, "Coverage
    #: read"): ``full`` reads every candidate at full resolution; ``overview`` reads it at
    #: 1/`coverage_decimation` and reads at full resolution only the cells a nodata edge
    #: crosses, the exact check moving to the IMG step (a kept patch over the tolerance is
    #: skipped and named there); ``auto``: overview when a product has more than
    #: :data:`~flair_pipeline.dataset.coverage.AUTO_OVERVIEW_TILES` tiles (a département's
    #: dalles), else full (the demo and the tests keep their bytes)
    coverage_read: Literal["auto", "full", "overview"] = "auto"
    coverage_decimation: int = Field(
        16, ge=2, description="overview coverage: one coarse pixel per N×N pixels"
    )
    zone_size_m: float = Field(700.0, gt=0, description="side of a zone, in metres")
    elevation_scale: float = Field(
        5.0, gt=0, description="uint8 elevation = clip((DSM - DTM) * scale, 0, 255)"
    )
    seed: int = Field(0, ge=0)


#: FLAIR-like shares of domains per split when `split.mapping` does not name a domain.
_DEFAULT_SPLIT_RATIOS: dict[Literal["train", "validation", "test"], float] = {
    "train": 0.7,
    "validation": 0.15,
    "test": 0.15,
}


class SplitConfig(_Section):
    """Train / validation / test assignment of domains.

    Official FLAIR domains keep the official split. Others take `mapping` if they are in it,
    else a deterministic hash of (salt, domain id) drawn against `ratios`, so a domain's
    split never depends on which other domains exist.
    """

    mapping: dict[str, Literal["train", "validation", "test"]] = Field(default_factory=dict)
    ratios: dict[Literal["train", "validation", "test"], float] = Field(
        default_factory=lambda: dict(_DEFAULT_SPLIT_RATIOS)
    )
    salt: str = "flair"

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> SplitConfig:
        total = sum(self.ratios.values())
        if abs(total - 1.0) > 1e-6 or any(v < 0 for v in self.ratios.values()):
            raise ValueError(f"ratios must be >= 0 and sum to 1, got {dict(self.ratios)}")
        return self


class StacSource(_Section):
    """A STAC catalogue: a static catalog (local or URL) or a STAC API (``provider: stac``)."""

    provider: Literal["stac"] = "stac"
    catalog: str | None = Field(
        None, description="static STAC catalog; default <paths.raw>/sentinel2/catalog.json"
    )
    api_url: str | None = Field(None, description="STAC API (e.g. Earth Search); overrides catalog")
    collection: str = Field(
        "sentinel-2-c1-l2a", description="STAC collection id(s), comma-separated, preferred first"
    )
    max_retries: int = Field(3, ge=0)
    max_cloud_cover: float | None = Field(
        None, ge=0, le=100, description="drop STAC items above this eo:cloud_cover, %"
    )
    connect_timeout_s: float = Field(10.0, gt=0, description="STAC API and COG connect timeout")
    read_timeout_s: float = Field(60.0, gt=0, description="STAC API and COG read timeout")
    retry_backoff_s: float = Field(1.0, ge=0, description="first back-off of STAC/COG retries")
    scl_masks: bool = Field(
        False, description="derive SNW/CLD from SCL where a collection has no cloud/snow assets"
    )
    # -- STAC catalogues whose assets need signing or credentials (issue 14) --
    href_signing: Literal["none", "planetary-computer"] = Field(
        "none", description="planetary-computer: append a Planetary Computer SAS token to hrefs"
    )
    pc_sas_url: str = Field(
        "https://planetarycomputer.microsoft.com/api/sas/v1/token",
        description="Planetary Computer SAS token endpoint (GET <url>/<collection>)",
    )
    s3_endpoint: str | None = Field(
        None,
        description="read s3:// hrefs with GDAL /vsis3/ at this endpoint (CDSE: "
        "https://eodata.dataspace.copernicus.eu); keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
    )

    @property
    def collections(self) -> list[str]:
        """The collection ids of :attr:`collection`, in order of preference."""
        return [c.strip() for c in self.collection.split(",") if c.strip()]


class SentinelHubSource(_Section):
    """The Sentinel Hub Process API (``provider: sentinelhub``); credentials from the environment."""

    provider: Literal["sentinelhub"] = "sentinelhub"
    base_url: str = "https://sh.dataspace.copernicus.eu"
    token_url: str = (
        "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
    )
    cache: str | None = "data/cache/sentinelhub"
    max_retries: int = Field(3, ge=0)


#: Where Sentinel-2 series come from: one model per provider, chosen by ``provider``.
#: Adding a provider: a model here with its own ``provider`` literal, and its builder in
#: ``flair_pipeline/sentinel2/factory.py`` (docs/architecture.md).
Sentinel2Source = Annotated[StacSource | SentinelHubSource, Field(discriminator="provider")]


class Sentinel2Config(_Section, S2Preprocessing):
    """Where Sentinel-2 series come from (``source``), and FLAIR-2's preprocessing.

    ``source`` is the provider and its catalogue settings, one model per provider
    (:data:`Sentinel2Source`, chosen by ``source.provider``). The preprocessing fields
    (``window``, ``filter_clouds``, ``cloud_threshold``, ``cloud_max_fraction``,
    ``monthly_average``) are those of :class:`S2Preprocessing`, inherited, so the config
    and a checkpoint's ``s2_options`` are one model; :attr:`preprocessing` gives them alone.
    ``max_size`` bounds the super-areas cut for any provider.
    """

    source: Sentinel2Source = StacSource()
    max_size: int = Field(110, gt=0, description="max super-area side in px")

    @property
    def preprocessing(self) -> S2Preprocessing:
        """FLAIR-2's preprocessing options of this section, as a checkpoint stores them."""
        return S2Preprocessing.of(self)

    @model_validator(mode="before")
    @classmethod
    def _stac_by_default(cls, data: Any) -> Any:
        """A ``source`` that names no provider is STAC's (the default provider).

        Returns:
            `data` with ``source.provider`` set to ``"stac"`` when ``source`` is a mapping
            without ``provider``; otherwise `data` unchanged.
        """
        src = data.get("source") if isinstance(data, Mapping) else None
        if isinstance(src, Mapping) and "provider" not in src:
            return {**data, "source": {"provider": "stac", **src}}
        return data

    @model_validator(mode="after")
    def _window_fits(self) -> Sentinel2Config:
        if self.window > self.max_size:
            raise ValueError(f"window ({self.window}) must not exceed max_size ({self.max_size})")
        return self


class S1StacSource(_Section):
    """Sentinel-1 from a STAC catalogue of calibrated COGs (``sentinel1.source.provider: stac``).

    Planetary Computer's ``sentinel-1-rtc`` (γ0, linear power, assets ``vv``/``vh``, SAS-signed
    hrefs) with ``api_url: https://planetarycomputer.microsoft.com/api/stac/v1`` and
    ``href_signing: planetary-computer``; any other catalogue with its asset keys and the
    coefficient and units it serves.
    """

    provider: Literal["stac"] = "stac"
    catalog: str | None = Field(
        None, description="static STAC catalog; default <paths.raw>/sentinel1/catalog.json"
    )
    api_url: str | None = Field(None, description="STAC API; overrides catalog")
    collection: str = "sentinel-1-rtc"
    assets: tuple[str, str] = Field(("vv", "vh"), description="asset keys of VV and VH")
    coefficient: Literal["sigma0", "gamma0"] = Field(
        "gamma0", description="the backscatter coefficient the catalogue serves (kept per series)"
    )
    coefficient_property: str | None = Field(
        None, description="item property declaring the coefficient per item (others skipped)"
    )
    source_units: Literal["linear", "dB"] = Field(
        "linear", description="units of the catalogue's pixels"
    )
    border_noise_masked: bool | None = Field(
        True, description="whether the catalogue's GRD border noise is removed (recorded)"
    )
    max_retries: int = Field(3, ge=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    retry_backoff_s: float = Field(1.0, ge=0)
    href_signing: Literal["none", "planetary-computer"] = "none"
    pc_sas_url: str = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
    s3_endpoint: str | None = None


class S1SentinelHubSource(_Section):
    """Sentinel-1 GRD IW from the Sentinel Hub Process API (``provider: sentinelhub``).

    Backscatter coefficient ``sigma0`` (SIGMA0_ELLIPSOID, as FLAIR-HUB ships it) or ``gamma0``
    (GAMMA0_TERRAIN, terrain-flattened), orthorectified on ``dem_instance``.
    """

    provider: Literal["sentinelhub"] = "sentinelhub"
    base_url: str = "https://sh.dataspace.copernicus.eu"
    token_url: str = (
        "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
    )
    cache: str | None = "data/cache/sentinelhub"
    max_retries: int = Field(3, ge=0)
    coefficient: Literal["sigma0", "gamma0"] = "sigma0"
    dem_instance: Literal["COPERNICUS", "COPERNICUS_30", "COPERNICUS_90", "MAPZEN"] = "COPERNICUS"


#: Where Sentinel-1 series come from: one model per provider, chosen by ``provider``.
Sentinel1Source = Annotated[S1StacSource | S1SentinelHubSource, Field(discriminator="provider")]


class Sentinel1Config(_Section):
    """Sentinel-1 VV/VH series per zone and orbit direction (docs/inputs.md, "Sentinel-1").

    The zones' grids are the Sentinel-2 super-areas (``sentinel2.window``, ``max_size``);
    ``start``/``end`` default to the domain's year, as for Sentinel-2.
    """

    source: Sentinel1Source = S1StacSource()
    orbits: tuple[Literal["ascending", "descending"], ...] = Field(
        ("ascending", "descending"), min_length=1, description="orbit directions, one series each"
    )
    units: Literal["linear", "dB"] = Field(
        "dB", description="units written: dB = 10*log10 of linear power, computed by the pipeline"
    )
    start: dt.date | None = Field(None, description="first date; default 1 January of the year")
    end: dt.date | None = Field(None, description="last date; default 31 December of the year")

    @model_validator(mode="before")
    @classmethod
    def _stac_by_default(cls, data: Any) -> Any:
        """A ``source`` that names no provider is STAC's.

        Returns:
            `data` with ``source.provider`` set to ``"stac"`` when it names none.
        """
        src = data.get("source") if isinstance(data, Mapping) else None
        if isinstance(src, Mapping) and "provider" not in src:
            return {**data, "source": {"provider": "stac", **src}}
        return data

    @model_validator(mode="after")
    def _range(self) -> Sentinel1Config:
        if len(set(self.orbits)) != len(self.orbits):
            raise ValueError(f"sentinel1.orbits {list(self.orbits)}: each direction once")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"sentinel1.end {self.end} is before sentinel1.start {self.start}")
        return self


class MlflowConfig(_Section):
    """Where the optional MLflow logger writes (``train.loggers`` holding ``mlflow``)."""

    tracking_uri: str | None = Field(
        None,
        description="any MLflow tracking URI (http://host:5000, sqlite:///…); "
        "None: sqlite:///<paths.models>/mlflow.db",
    )
    experiment: str = Field("flair_pipeline", min_length=1)
    run_name: str | None = Field(None, description="None: the model folder (unet, utt)")


class TrainConfig(_Section):
    """Training of the baselines (U-Net ResNet34, U-T&T).

    The defaults are FLAIR's GPU recipe; `flair-pipeline demo` lowers epochs, resolution
    and batch size so that CPU training takes minutes.
    """

    model: Literal["unet", "unet-meta", "utt"] = "unet"
    epochs: int = Field(200, gt=0)
    max_steps: int | None = Field(None, gt=0, description="stop after this many steps")
    batch_size: int = Field(10, gt=0)
    lr: float = Field(0.02, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    scheduler: Literal["none", "plateau", "cosine"] = "plateau"
    patience: int = Field(30, gt=0, description="early stopping on validation mIoU, epochs")
    augment: bool = True
    downsample: int = Field(
        1, gt=0, description="train and predict at 1/downsample of the aerial resolution"
    )
    encoder_weights: str | None = Field(
        None, description="None, 'imagenet' (downloaded) or a local weights file"
    )
    aux_weight: float = Field(0.5, ge=0, description="U-T&T: weight of the U-TAE aux loss")
    modality_dropout: float = Field(0.0, ge=0, le=1, description="U-T&T: drop the S2 input")
    utae_width: int = Field(64, gt=0, description="U-T&T: U-TAE encoder width (FLAIR: 64)")
    norm_samples: int = Field(200, gt=0, description="train patches read for normalisation")
    num_workers: int = Field(4, ge=0)
    devices: int = Field(1, gt=0)
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "bf16-mixed"
    compile: bool = False
    seed: int = Field(0, ge=0)
    packed: bool = Field(
        True, description="read <dataset>/packed (packed_training_input) when present and current"
    )
    loggers: tuple[Literal["dvclive", "mlflow"], ...] = Field(
        ("dvclive",),
        description="experiment trackers beside the CSV/TensorBoard logs; the dvc.yaml "
        "train stages need dvclive (their outputs, metrics and plots)",
    )
    mlflow: MlflowConfig = MlflowConfig()


class EvalConfig(_Section):
    """Evaluation and large-area prediction."""

    batch_size: int = Field(16, gt=0)
    overlap: float = Field(0.25, ge=0, lt=1, description="fraction of a window overlapped")


#: The CPU recipe of the FLAIR-HUB model of the pipeline (``hub.train``): LC-A (aerial
#: only, COSIA) on a ResNet18 U-Net at 1/8 resolution, 3 epochs (seconds on 2 cores).
HUB_CPU_RECIPE: dict[str, Any] = {
    "inputs": ["AERIAL_RGBI"],
    "tasks": {"AERIAL_LABEL-COSIA": {"task_weight": 1}},
    "aux_loss": [],
    "encoder": "resnet18",
    "encoder_weights": None,
    "epochs": 3,
    "batch_size": 4,
    "lr": 0.001,
    "weight_decay": 0.01,
    "optimizer": "adamw",
    "scheduler": "cosine",
    "patience": 20,
    "downsample": 8,
    "num_workers": 0,
    "seed": 2025,
    "precision": "32",
}


class HubConfig(_Section):
    """The FLAIR-HUB model of the pipeline (stages hub_release, model_hub, evaluation_hub).

    ``train`` holds the fields of ``flair_pipeline.training.hub_config.HubTrainConfig``
    (validated there, at the stage and by ``recipe-args``: this bottom layer does not
    import training); ``recipes/flair-hub-*.yaml`` override its keys as DVC experiments.
    """

    release: str | None = Field(
        None,
        description="a FLAIR-HUB release folder to index (import-flair-hub); None: the "
        "pipeline's own dataset exported in FLAIR-HUB's layout",
    )
    manifest: str | None = Field(
        None, description="an import-flair-hub manifest CSV to train on (wins over release)"
    )
    train: dict[str, Any] = Field(
        default_factory=lambda: copy.deepcopy(HUB_CPU_RECIPE),
        description="HubTrainConfig's fields (recipe, inputs, tasks)",
    )


class PipelineConfig(_Section):
    """The whole configuration tree."""

    paths: PathsConfig = PathsConfig()
    synth: SynthConfig = SynthConfig()
    build: BuildConfig = BuildConfig()
    dataset: DatasetConfig = DatasetConfig()
    sampling: SamplingConfig = SamplingConfig()
    split: SplitConfig = SplitConfig()
    sentinel2: Sentinel2Config = Sentinel2Config()
    sentinel1: Sentinel1Config = Sentinel1Config()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    hub: HubConfig = HubConfig()


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``key.sub=value`` into a key path and a YAML-parsed value.

    Args:
        text: One ``--set`` override.

    Returns:
        The key split on dots (e.g. ``["synth", "seed"]``) and the value parsed as YAML
        (None for an empty value).

    Raises:
        ConfigError: `text` has no ``=`` or no key, or its value is not valid YAML.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected KEY.SUB=VALUE, e.g. synth.seed=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of `data` with each ``key.sub=value`` override set.

    Args:
        data: The raw config mapping (as read from params YAML); not changed.
        overrides: ``key.sub=value`` strings, applied in order.

    Returns:
        A deep copy of `data` with each override's value set, missing sections created.

    Raises:
        ConfigError: An override is malformed (see :func:`parse_override`) or sets a key
            below a plain value (e.g. ``a.b=1`` when ``a`` is 3).
    """
    out: dict[str, Any] = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"override {text!r}: {'.'.join(path[: i + 1])} is a value, not a section"
                )
            node = child
        node[path[-1]] = value
    return out


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _format_validation(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        got = err.get("input")
        shown = (
            "" if err["type"] == "extra_forbidden" or isinstance(got, dict) else f" (got {got!r})"
        )
        lines.append(f"  {key}: {msg}{shown}")
    return "\n".join(lines)


#: The Sentinel Hub settings of the flat ``sentinel2`` section of before, and their new names.
_SH_RENAMED = {"sh_base_url": "base_url", "sh_token_url": "token_url", "sh_cache": "cache"}
_STAC_KEYS = tuple(k for k in StacSource.model_fields if k != "provider")
_FLAT_S2_KEYS = frozenset({"provider", *_STAC_KEYS, *_SH_RENAMED})


def upgrade_params(data: Mapping[str, Any], *, source: str = "config") -> dict[str, Any]:
    """`data` with the flat Sentinel-2 provider keys of before moved under ``sentinel2.source``.

    Until session 8 the ``sentinel2`` section mixed the provider's settings (``provider``,
    ``catalog``, ``api_url``, ``sh_base_url``…) with the preprocessing; they now live in
    ``sentinel2.source``, one model per provider. A params file (or a ``--set``) that still
    uses the flat keys keeps working: its keys move under ``source`` (``sh_base_url``,
    ``sh_token_url``, ``sh_cache`` become ``base_url``, ``token_url``, ``cache``), those
    of the provider not selected are dropped, and ONE :class:`FutureWarning` line names
    the file, the keys moved, those dropped and what to write instead.

    Args:
        data: the params as read (not changed).
        source: what `data` came from, named in the warning.

    Returns:
        A new dict; `data` itself when it has no flat key.
    """
    s2 = data.get("sentinel2")
    if not isinstance(s2, Mapping):
        return dict(data)
    flat = [k for k in s2 if k in _FLAT_S2_KEYS]
    if not flat:
        return dict(data)
    section = {k: v for k, v in s2.items() if k not in _FLAT_S2_KEYS}
    given = section.get("source")
    src: dict[str, Any] = dict(given) if isinstance(given, Mapping) else {}
    moved = {k: s2[k] for k in flat}
    provider = moved.pop("provider", None) or src.get("provider") or "stac"
    src["provider"] = provider
    dropped: list[str] = []
    for key, value in moved.items():
        if provider == "stac" and key in _STAC_KEYS:
            src[key] = value
        elif provider == "sentinelhub" and (key in _SH_RENAMED or key == "max_retries"):
            src[_SH_RENAMED.get(key, key)] = value
        elif provider in ("stac", "sentinelhub"):
            dropped.append(key)
        else:  # an unknown provider: let validation name it
            src[key] = value
    section["source"] = src
    note = f"; dropped (not used by {provider}): {', '.join(dropped)}" if dropped else ""
    warnings.warn(
        f"{source}: sentinel2.{{{', '.join(flat)}}} are the flat keys of before, read as "
        f"sentinel2.source (provider: {provider}){note}; write them under sentinel2.source "
        "(docs/sentinel2.md)",
        FutureWarning,
        stacklevel=2,
    )
    return {**data, "sentinel2": section}


def config_from_dict(data: Mapping[str, Any], *, source: str = "config") -> PipelineConfig:
    """Validate a plain dict; errors name every offending key.

    Flat Sentinel-2 provider keys of before are upgraded first (:func:`upgrade_params`).

    Args:
        data: the params, as read from YAML (overrides applied).
        source: what `data` came from, named in errors and in the upgrade warning.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: a key is unknown or a value invalid (every one named).
    """
    data = upgrade_params(data, source=source)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(source, exc)) from None


def read_params(path: str | Path) -> dict[str, Any]:
    """Read a params YAML file into a dict (an empty file is an empty config).

    Args:
        path: The params YAML file.

    Returns:
        The file's top-level mapping, not validated; ``{}`` for an empty file.

    Raises:
        ConfigError: The file is missing or unreadable, is not valid YAML, or its top level
            is not a mapping.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of sections, found {type(data).__name__}")
    return data


def resolve_roots(cfg: PipelineConfig, base: str | Path) -> PipelineConfig:
    """The config with every relative local path made absolute against `base`.

    The one rule for relative paths, whatever the front door (CLI, Dagster resource, DVC
    stage, benchmark) and whatever the working folder: a relative ``paths.*`` value (and
    the file settings ``sentinel2.source.catalog``, ``sentinel2.source.cache``, their
    ``sentinel1.source`` twins, ``sampling.areas_layer``) is relative to the
    folder of the config file that holds it (``--set`` values included); without a config
    file, to the working folder. URLs (``s3://…``, ``https://…``) and absolute paths are
    kept as given.

    Args:
        cfg: a validated configuration.
        base: the folder relative roots are resolved against.

    Returns:
        A new configuration; `cfg` is not changed.
    """
    root = Path(base).resolve()

    def absolute(value: str | None) -> str | None:
        if not value or is_url(value) or Path(value).is_absolute():
            return value
        return os.path.normpath(root / value)  # lexical: ../x is one spelling of the folder

    paths = PathsConfig(**{k: absolute(v) for k, v in cfg.paths.model_dump().items()})
    src = cfg.sentinel2.source
    if isinstance(src, StacSource):
        src = src.model_copy(update={"catalog": absolute(src.catalog)})
    else:
        src = src.model_copy(update={"cache": absolute(src.cache)})
    s2 = cfg.sentinel2.model_copy(update={"source": src})
    src1 = cfg.sentinel1.source
    if isinstance(src1, S1StacSource):
        src1 = src1.model_copy(update={"catalog": absolute(src1.catalog)})
    else:
        src1 = src1.model_copy(update={"cache": absolute(src1.cache)})
    s1 = cfg.sentinel1.model_copy(update={"source": src1})
    sampling = cfg.sampling.model_copy(update={"areas_layer": absolute(cfg.sampling.areas_layer)})
    update = {"paths": paths, "sentinel2": s2, "sentinel1": s1, "sampling": sampling}
    return cfg.model_copy(update=update)


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> PipelineConfig:
    """Load the config from `path` (default ``./params.yaml`` if present) plus overrides.

    Without a file, the built-in defaults apply, so the CLI works outside the repo too.
    Relative roots (``paths.*``) come back absolute, resolved by :func:`resolve_roots`
    against the config file's folder (the working folder without a file).

    Args:
        path: the params YAML file; None: ``./params.yaml`` if present, else the defaults.
        overrides: ``key.sub=value`` strings, applied in order (``--set``).

    Returns:
        The validated configuration, roots absolute (URLs as given).

    Raises:
        ConfigError: the file is missing, unreadable or invalid, or an override is.
    """
    if path is None:
        path = DEFAULT_PARAMS if DEFAULT_PARAMS.exists() else None
    data = read_params(path) if path is not None else {}
    source = str(path) if path is not None else "defaults"
    overrides = list(overrides)
    if overrides:
        data = apply_overrides(data, overrides)
        source += " + --set " + " ".join(overrides)
    cfg = config_from_dict(data, source=source)
    return resolve_roots(cfg, Path(path).resolve().parent if path is not None else Path.cwd())


def dump_config(cfg: PipelineConfig) -> str:
    """The config as YAML, in the shape params.yaml has.

    Args:
        cfg: The configuration to write.

    Returns:
        The YAML text of every section, in declaration order (values as JSON-mode dumps).
    """
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
