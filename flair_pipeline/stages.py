"""One declaration per pipeline stage: the single place a stage's facts are written.

A :class:`Stage` says what a stage is (its name, whether it runs once per domain, the
stages it reads, the files it writes as :mod:`flair_pipeline.layout` entries, the
params.yaml keys it reads, the core function it runs, its check) and how it is run (its
group, the dvc stage and jobs it belongs to, the dataset files it stages from URL roots).
Everything else is generated from :data:`STAGES`:

- the Dagster assets and their checks (:func:`flair_pipeline.defs.declared.stage_asset`
  decorates each asset body of ``defs/assets/``),
- the staging of URL roots (``defs/staging.py``, from :attr:`Stage.staged`),
- the jobs (``defs/jobs.py``, from :attr:`Stage.jobs`),
- dvc.yaml (:mod:`flair_pipeline.orchestration.artifacts` and ``dvc_yaml``).

This module imports no Dagster and no stage package: the core function is named by its
dotted path (:attr:`Stage.function`), resolved only when asked (:meth:`Stage.resolve`),
so reading the declarations never imports torch. Adding a stage is one entry here plus
its code (docs/architecture.md, "Adding a stage").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flair_pipeline import layout as L
from flair_pipeline.config import S2Preprocessing
from flair_pipeline.layout import PathTemplate
from flair_pipeline.model_registry import MODELS_BY_FOLDER, TRAINED

#: The job of one domain's dataset files, run by the new-domains sensor per partition.
BUILD_DOMAIN = "build_domain"
#: Each job a stage can belong to, with its description.
JOBS: dict[str, str] = {
    BUILD_DOMAIN: "Build one domain's dataset files (run per domain partition).",
}


@dataclass(frozen=True)
class Retry:
    """How often a failed step is retried (transient failures only).

    Attributes:
        max_retries: Retries after the first attempt.
        delay: Seconds before the first retry.
        exponential: Whether the delay doubles at each retry.
    """

    max_retries: int
    delay: float
    exponential: bool = False


@dataclass(frozen=True)
class Stage:
    """Everything the front doors need to know about one stage (one asset).

    Attributes:
        name: The asset key, the name of its asset body in ``defs/assets/``.
        group: Its asset group (``sources``, ``dataset``, ``sentinel2``…).
        description: What it writes (the asset's description in the UI).
        function: The core function it runs, ``"module:function"``.
        dvc_stage: The dvc stage materializing it; stages sharing a dvc stage run in one
            ``flair-pipeline materialize`` call.
        per_domain: Partitioned by domain (one run per domain) or over all domains.
        inputs: The stages it reads (asset keys); a per-domain input of an all-domain
            stage is read for every domain.
        outputs: Files or folders it writes (cached by DVC).
        metrics: JSON metrics it writes (``dvc metrics``).
        plots: CSV series it writes (``dvc plots``).
        params: params.yaml keys (sections or dotted keys) its code reads.
        reads: Templates it reads beyond its inputs' outputs (raw data, files of stages it
            does not declare as inputs).
        check: Its blocking asset check, passed iff the stage report passed; None: none.
        kinds: The asset's kinds (icons in the UI).
        staged: The dataset files it reads, staged locally when a data root is a URL
            (the domain's raw folder is for a per-domain stage, but see `raw_in_place`
            and `raw_domain`; raw-root entries beside it, such as ``RAW_RPG``, are staged
            when present); None: the stage runs on local roots only.
        raw_folders: With ``staged``, for an all-domain stage: stage the raw root's domain
            folders as empty folders (names only).
        raw_in_place: With ``staged``, for a per-domain stage: a URL raw root is read where
            it lives (ortho tiles, DSM/DTM and labels through GDAL's ``/vsis3/`` and
            ``/vsicurl/``, fetching only the bytes read) instead of pulling the domain's raw
            folder; the dataset files named in ``staged`` are still staged.
        raw_domain: With ``staged``, for a per-domain stage: pull the domain's raw folder
            from a URL raw root (unless read in place); False for a stage that reads none of
            its files (``crop_labels`` reads ``<raw>/rpg/`` only).
        jobs: The jobs of :data:`JOBS` it belongs to.
        pool: The Dagster concurrency pool of its steps (``gpu``), None: none.
        retry: Its retry policy for transient failures; None: not retried.
    """

    name: str
    group: str
    description: str
    function: str
    dvc_stage: str
    per_domain: bool = False
    inputs: tuple[str, ...] = ()
    outputs: tuple[PathTemplate, ...] = ()
    metrics: tuple[PathTemplate, ...] = ()
    plots: tuple[PathTemplate, ...] = ()
    params: tuple[str, ...] = ()
    reads: tuple[PathTemplate, ...] = ()
    check: str | None = None
    kinds: frozenset[str] = frozenset()
    staged: tuple[PathTemplate, ...] | None = None
    raw_folders: bool = False
    raw_in_place: bool = False
    raw_domain: bool = True
    jobs: tuple[str, ...] = ()
    pool: str | None = None
    retry: Retry | None = None

    @property
    def owned(self) -> tuple[PathTemplate, ...]:
        """Every path the stage writes (outputs, metrics, plots)."""
        return (*self.outputs, *self.metrics, *self.plots)

    @property
    def function_module(self) -> str:
        """The dotted module of :attr:`function`."""
        return self.function.partition(":")[0]

    def resolve(self) -> Callable[..., Any]:
        """Import the core function this stage runs.

        Returns:
            The function named by :attr:`function`.

        Raises:
            ImportError: Its module cannot be imported.
            AttributeError: The module has no such function.
        """
        module, _, name = self.function.partition(":")
        fn: Callable[..., Any] = getattr(importlib.import_module(module), name)
        return fn


def by_name(stages: Iterable[Stage]) -> dict[str, Stage]:
    """Declarations by stage name.

    Args:
        stages: Stage declarations.

    Returns:
        ``{name: stage}``, in the order given.

    Raises:
        ValueError: Two declarations share a name, or one names an unknown input or job.
    """
    out: dict[str, Stage] = {}
    for s in stages:
        if s.name in out:
            raise ValueError(f"stages: {s.name} is declared twice")
        out[s.name] = s
    for s in out.values():
        unknown = [i for i in s.inputs if i not in out] + [j for j in s.jobs if j not in JOBS]
        if unknown:
            raise ValueError(f"stages: {s.name} names unknown input(s) or job(s) {unknown}")
    return out


def input_is_all_domains(stage: Stage, upstream: str, stages: Mapping[str, Stage]) -> bool:
    """Whether `stage` reads every domain's partition of its input `upstream`.

    Args:
        stage: A declaration.
        upstream: One of its inputs.
        stages: Declarations by name (:func:`by_name`).

    Returns:
        True when the input is per domain and `stage` is not.
    """
    return stages[upstream].per_domain and not stage.per_domain


# ---------------------------------------------------------------------------------------
# The declarations. Keep them in asset-graph order.

_DATASET_KINDS = {"python"}
#: What training reads besides `train`: pixel geometry and FLAIR-2's S2 preprocessing.
_TRAIN_PARAMS = ("train", "sampling.resolution", "sampling.elevation_scale")
_S2_TRAIN_PARAMS = tuple(f"sentinel2.{k}" for k in S2Preprocessing.model_fields)
#: Dataset files a model reads (training and evaluation), beyond its inputs.
_MODEL_READS = (L.AERIAL.all_domains(), L.LABELS.all_domains(), L.SPLITS, L.AERIAL_METADATA)
_TRAINING_RETRY = Retry(max_retries=1, delay=30)


def _model(folder: str) -> Stage:
    spec = MODELS_BY_FOLDER[folder]
    s2 = spec.needs_s2
    description = (
        "U-Net ResNet34 (smp, 5 channels, 13 classes; with the metadata branch when "
        "train.model is unet-meta) trained with Lightning: checkpoints (best validation mIoU, "
        "last), CSV/TensorBoard logs, training curves, report.json in `<paths.models>/unet/`."
        if folder == "unet"
        else "U-T&T: the U-Net fused with a U-TAE encoding of the 40×40 px Sentinel-2 "
        "window around each patch (FLAIR-2), trained with Lightning; outputs in "
        f"`<paths.models>/{folder}/`."
    )
    return Stage(
        name=f"model_{folder}",
        group="training",
        description=description,
        function="flair_pipeline.training.train:train_model",
        dvc_stage=f"train_{folder}",
        inputs=(
            "split_assignment",
            "aerial_patches",
            "label_masks",
            *(("sentinel2_index",) if s2 else ()),
            "packed_training_input",
        ),
        outputs=tuple(
            t.fill(model=folder)
            for t in (
                L.CHECKPOINTS,
                L.TRAIN_LOGS,
                L.TENSORBOARD,
                L.CURVES_PNG,
                L.TRAIN_REPORT,
                # DVCLive's folder whole (training/tracking.py); its metrics.json and TSVs
                # are read by dvc.yaml's top-level `metrics` and `plots` (DVC refuses an
                # output inside another, so they are not stage metrics or plots)
                L.DVCLIVE,
            )
        ),
        params=(*_TRAIN_PARAMS, *(_S2_TRAIN_PARAMS if s2 else ())),
        # the series themselves: its inputs only name the centroid index
        reads=(L.SENTINEL.all_domains(),) if s2 else (),
        kinds=frozenset({"pytorch", "lightning"}),
        pool="gpu",
        retry=_TRAINING_RETRY,
    )


def _evaluation(folder: str) -> Stage:
    s2 = MODELS_BY_FOLDER[folder].needs_s2
    description = (
        "U-Net on the test split: `PRED_<id>.tif` maps, metrics.json (FLAIR mIoU over "
        "classes 1-12, per-class IoU/F1, per domain), confusion.csv/png, per_domain.csv, a "
        "figure of test patches; in `<paths.eval>/unet/`."
        if folder == "unet"
        else f"U-T&T on the test split; same artifacts as evaluation_unet in `<paths.eval>/{folder}/`."
    )
    return Stage(
        name=f"evaluation_{folder}",
        group="evaluation",
        description=description,
        function="flair_pipeline.evaluation.checkpoint_eval:evaluate_checkpoint",
        dvc_stage=f"evaluate_{folder}",
        inputs=(
            f"model_{folder}",
            "split_assignment",
            "aerial_patches",
            "label_masks",
            *(("sentinel2_index",) if s2 else ()),
        ),
        outputs=tuple(
            t.fill(model=folder) for t in (L.PREDICTIONS, L.CONFUSION_PNG, L.PATCHES_PNG)
        ),
        metrics=(L.METRICS.fill(model=folder),),
        plots=(L.CONFUSION_CSV.fill(model=folder), L.PER_DOMAIN_CSV.fill(model=folder)),
        params=("eval",),
        # the test split, which its model input does not say
        reads=_MODEL_READS + ((L.SENTINEL.all_domains(),) if s2 else ()),
        kinds=frozenset({"pytorch", "json"}),
    )


STAGES: tuple[Stage, ...] = (
    Stage(
        name="domain_sources",
        group="sources",
        description="A domain's raw inputs (orthophoto tiles, DSM/DTM, labels.gpkg, "
        "domain.json), checked for presence and fingerprinted so downstream assets rebuild "
        "only when they change.",
        function="flair_pipeline.dataset.sources_record:record_domain_sources",
        dvc_stage="dataset",
        per_domain=True,
        outputs=(L.SOURCES_RECORD,),
        reads=(L.RAW_DOMAIN,),
        kinds=frozenset({"python", "geotiff", "geopackage"}),
        staged=(),
        raw_in_place=True,
        jobs=(BUILD_DOMAIN,),
    ),
    Stage(
        name="patch_grid",
        group="dataset",
        description="Patch footprints (patch_size × resolution) on a lattice inside the "
        "mosaic, non-overlapping, grouped into zones; strategy grid, random or "
        "class-balanced. Candidates with too much nodata or unlabelled area are rejected.",
        function="flair_pipeline.dataset.build:sample_domain_grid",
        dvc_stage="dataset",
        per_domain=True,
        inputs=("domain_sources",),
        outputs=(L.PATCH_GRID,),
        params=("sampling",),
        check="has_patches",
        kinds=frozenset({"python", "geopackage"}),
        staged=(L.SOURCES_RECORD,),  # the tiles' headers (dataset/tile_record.py)
        raw_in_place=True,
        jobs=(BUILD_DOMAIN,),
    ),
    Stage(
        name="aerial_patches",
        group="dataset",
        description="`IMG_<id>.tif`: 5 bands uint8 (R, G, B, NIR, elevation = DSM − DTM "
        "scaled), exact 0.2 m grid, EPSG:2154; windows straddling tiles are read seamlessly.",
        function="flair_pipeline.dataset.build:build_domain_images",
        dvc_stage="dataset",
        per_domain=True,
        inputs=("patch_grid",),
        outputs=(L.AERIAL,),
        params=("sampling", "dataset"),
        check="img_format",
        kinds=frozenset({"python", "geotiff"}),
        staged=(L.PATCH_GRID, L.SOURCES_RECORD),
        raw_in_place=True,
        jobs=(BUILD_DOMAIN,),
    ),
    Stage(
        name="label_masks",
        group="dataset",
        description="`MSK_<id>.tif`: labels rasterized from the polygons intersecting each "
        "patch (spatial index, pixel-centre rule), uint8 codes 1..19, same grid as the IMG.",
        function="flair_pipeline.dataset.build:build_domain_masks",
        dvc_stage="dataset",
        per_domain=True,
        inputs=("patch_grid",),
        outputs=(L.LABELS,),
        params=("sampling", "dataset"),
        check="msk_codes",
        kinds=frozenset({"python", "geotiff"}),
        staged=(L.PATCH_GRID,),
        raw_in_place=True,
        jobs=(BUILD_DOMAIN,),
    ),
    Stage(
        name="crop_labels",
        group="dataset",
        description="`CROP_<id>.tif`: crop-type labels from the domain's RPG parcels "
        "(`<raw>/rpg/<domain>.gpkg`) through the LPIS tables, 3 bands uint8 (FLAIR-HUB's "
        "LPIS levels 1-3, level-1 background 22, 255 = not labelled), pixel-centre rule, "
        "same grid as the MSK; none for a domain without an RPG file.",
        function="flair_pipeline.dataset.crop_step:build_domain_crop_labels",
        dvc_stage="crop_labels",
        per_domain=True,
        inputs=("patch_grid",),
        outputs=(L.CROP_LABELS,),
        params=("sampling",),
        reads=(L.RAW_RPG,),
        check="crop_codes",
        kinds=frozenset({"python", "geotiff"}),
        staged=(L.PATCH_GRID, L.RAW_RPG),
        raw_domain=False,
        jobs=(BUILD_DOMAIN,),
    ),
    Stage(
        name="dataset_metadata",
        group="dataset",
        description="FLAIR's aerial metadata per patch (centroid x/y/z, camera, date, time, "
        "domain, zone) and the domain's class distribution; checks that every IMG has a MSK "
        "on its grid.",
        function="flair_pipeline.dataset.build:write_domain_metadata",
        dvc_stage="dataset",
        per_domain=True,
        inputs=("aerial_patches", "label_masks", "domain_sources"),
        outputs=(L.DOMAIN_METADATA,),
        params=("sampling",),
        check="img_msk_pairs",
        kinds=frozenset({"python", "json"}),
        staged=(L.PATCH_GRID, L.AERIAL, L.LABELS, L.SOURCES_RECORD),
        raw_in_place=True,
        jobs=(BUILD_DOMAIN,),
    ),
    Stage(
        name="sentinel2_series",
        group="sentinel2",
        description="Per zone, a one-year Sentinel-2 L2A series over a super-area covering a "
        "window of sentinel2.window px around every patch centroid: FLAIR's "
        "`SEN2_sp_<domain>-<zone>_{data,masks}.npy` and `_products.txt`. Provider from config "
        "(stac on the local archive by default, or sentinelhub).",
        function="flair_pipeline.sentinel2.build:build_domain_series",
        dvc_stage="sentinel2",
        per_domain=True,
        inputs=("patch_grid",),
        outputs=(L.SENTINEL, L.DOMAIN_CENTROIDS),
        params=("sentinel2",),
        # the whole folder: a domain.yaml domain has no domain.json (year from the id)
        reads=(L.RAW_DOMAIN, L.RAW_SENTINEL2),
        check="series_valid",
        kinds=frozenset({"python", "numpy", "stac"}),
        retry=Retry(max_retries=2, delay=10, exponential=True),
    ),
    Stage(
        name="sentinel1_series",
        group="sentinel1",
        description="Per zone, one year of Sentinel-1 VV/VH backscatter in each orbit "
        "direction, kept apart, on the zone's Sentinel-2 super-area grid (10 m EPSG:2154): "
        "`SEN1-{ASC,DESC}_sp_<domain>-<zone>_{data.npy,dates.txt,products.json}` "
        "(T×2×H×W float32, NaN = no measurement; coefficient, units, orbits recorded per "
        "date). Provider from config (stac on the local archive by default, or sentinelhub).",
        function="flair_pipeline.sentinel1.build:build_domain_s1_series",
        dvc_stage="sentinel1",
        per_domain=True,
        inputs=("patch_grid",),
        outputs=(L.SENTINEL1,),
        params=("sentinel1",),
        reads=(L.RAW_DOMAIN, L.RAW_SENTINEL1),
        check="s1_series_valid",
        kinds=frozenset({"python", "numpy", "stac"}),
        retry=Retry(max_retries=2, delay=10, exponential=True),
    ),
    Stage(
        name="split_assignment",
        group="dataset",
        description="Train / validation / test per domain: the official FLAIR split, other "
        "domains by explicit mapping or a deterministic hash. Writes metadata/splits.csv and "
        "the merged aerial_metadata.json of every built domain; a built domain whose raw "
        "folder is gone is stale: left out, and named in a warning.",
        function="flair_pipeline.dataset.assemble:assemble_splits",
        dvc_stage="split",
        inputs=("dataset_metadata",),
        outputs=(L.SPLITS, L.AERIAL_METADATA),
        params=("split",),
        check="no_split_leakage",
        kinds=frozenset({"python", "csv"}),
        staged=(L.DOMAIN_METADATA.all_domains(),),
        raw_folders=True,
    ),
    Stage(
        name="sentinel2_index",
        group="sentinel2",
        description="centroids_sp_to_patch.json: for every patch, the row and column of its "
        "centroid in its zone's super-area (merged over all built domains).",
        function="flair_pipeline.sentinel2.build:merge_centroids",
        dvc_stage="sentinel2_index",
        inputs=("sentinel2_series",),
        outputs=(L.CENTROIDS,),
        kinds=frozenset({"python", "json"}),
    ),
    Stage(
        name="packed_training_input",
        group="training",
        description="The packed training input (`<paths.dataset>/packed/`): each split's IMG "
        "(N×5×H×W uint8) and merged MSK (N×H×W uint8, classes 0..12) as uncompressed "
        "memory-mapped .npy arrays, the encoded metadata, an index of patches with their "
        "Sentinel-2 super-area and centroid. Deterministic; training reads it instead of the "
        "GeoTIFFs when current.",
        function="flair_pipeline.training.packing:pack_source",
        dvc_stage="pack",
        inputs=("split_assignment", "aerial_patches", "label_masks"),
        outputs=(L.PACKED,),
        kinds=frozenset({"numpy"}),
    ),
    *(_model(m.folder) for m in TRAINED),
    *(_evaluation(m.folder) for m in TRAINED),
    Stage(
        name="model_comparison",
        group="evaluation",
        description="One table of every evaluated model: per-class IoU, mIoU, overall "
        "accuracy (`<paths.eval>/comparison.md`).",
        function="flair_pipeline.evaluation.compare:compare_models",
        dvc_stage="compare",
        inputs=tuple(f"evaluation_{m.folder}" for m in TRAINED),
        outputs=(L.COMPARISON,),
        kinds=frozenset({"markdown"}),
    ),
)

#: The FLAIR-HUB model (issue 24): the dataset as FLAIR-HUB's release, a model of
#: params.yaml's ``hub.train`` on it, scored with FLAIR-HUB's metrics. Not in the
#: comparison table (other classes: COSIA's 19, LPIS…); recipes/flair-hub-*.yaml are its
#: GPU recipes as DVC experiments.
HUB_STAGES: tuple[Stage, ...] = (
    Stage(
        name="hub_release",
        group="training",
        description="The FLAIR-HUB data of the hub model: the built dataset exported in "
        "FLAIR-HUB's layout into `<paths.dataset>/hub/release/` (or hub.release indexed, or "
        "hub.manifest copied) and its import-flair-hub manifest "
        "`<paths.dataset>/hub/manifest.csv`.",
        function="flair_pipeline.release.flair_hub_export:hub_manifest",
        dvc_stage="hub_release",
        inputs=("split_assignment", "aerial_patches", "label_masks", "sentinel2_index"),
        outputs=(L.HUB_RELEASE, L.HUB_MANIFEST),
        params=("hub.release", "hub.manifest"),
        reads=(*_MODEL_READS, L.SENTINEL.all_domains()),
        kinds=frozenset({"python", "geotiff", "csv"}),
    ),
    Stage(
        name="model_hub",
        group="training",
        description="A FLAIR-HUB model family (params.yaml hub.train: inputs, tasks, "
        "encoder, recipe) trained with Lightning on the hub manifest: checkpoints, CSV logs, "
        "DVCLive, report.json in `<paths.models>/hub/`.",
        function="flair_pipeline.training.hub_train:train_hub",
        dvc_stage="train_hub",
        inputs=("hub_release",),
        outputs=tuple(
            t.fill(model=L.HUB_MODEL)
            for t in (L.CHECKPOINTS, L.TRAIN_LOGS, L.TRAIN_REPORT, L.DVCLIVE)
        ),
        params=("hub.train",),
        kinds=frozenset({"pytorch", "lightning"}),
        pool="gpu",
        retry=_TRAINING_RETRY,
    ),
    Stage(
        name="evaluation_hub",
        group="evaluation",
        description="The hub model on the manifest's test split with FLAIR-HUB's scores "
        "(mIoU per task over its scored classes, overall accuracy, per class, per domain): "
        "`<paths.eval>/hub/metrics.json`.",
        function="flair_pipeline.evaluation.hub_eval:evaluate_hub_metrics",
        dvc_stage="evaluate_hub",
        inputs=("model_hub", "hub_release"),
        metrics=(L.METRICS.fill(model=L.HUB_MODEL),),
        kinds=frozenset({"pytorch", "json"}),
    ),
)

STAGES = (*STAGES, *HUB_STAGES)

#: The declarations by name (validated: unique names, known inputs and jobs).
STAGES_BY_NAME: dict[str, Stage] = by_name(STAGES)
