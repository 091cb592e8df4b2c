"""Which files each asset owns and which params it reads: the bridge to dvc.yaml.

DESIGN §2 says "one owner per artifact": every asset writes at the paths dvc.yaml
declares. Rather than keep the two in sync by hand, dvc.yaml is generated
(:mod:`flair_pipeline.defs.dvc_yaml`) from the Dagster asset graph (who depends on whom)
plus this registry (what each asset writes, reads and is configured by), and a test
checks the committed file against a fresh generation. An asset missing here fails that
test with a message pointing at this file.

Templates use the config roots ``{raw}``, ``{dataset}``, ``{models}``, ``{eval}`` and
``{domain}`` (the partition). They become ``${paths.raw}``… and ``${item}`` in dvc.yaml.
Entries of assets that do not exist (yet) in the definitions are ignored, so a stage
appears in dvc.yaml as soon as its asset is registered in ``definitions.ALL_ASSETS``.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOTS = ("raw", "dataset", "models", "eval")


@dataclass(frozen=True)
class Artifact:
    """One asset's footprint on disk and in params.yaml.

    stage: the dvc stage that materializes it; assets sharing a stage run in one
        ``flair-pipeline materialize`` call (one process, one Dagster run), which keeps a
        per-domain build to one process start instead of five.
    outs: files or folders it writes (cached by DVC).
    metrics: JSON metrics it writes (cached, read by `dvc metrics show/diff`, `dvc exp show`).
    plots: CSV series it writes (`dvc plots`): cached stage outputs that the top-level
        ``plots`` of dvc.yaml draw (:data:`PLOTS`).
    params: params.yaml keys (sections or dotted keys) its code reads.
    reads: what it reads beyond its Dagster parents' outputs: raw data (no asset owns it)
        and files of assets it reads without declaring them as parents.
    code: source files and packages whose change must rebuild it.
    """

    stage: str
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    code: tuple[str, ...] = ()

    @property
    def owned(self) -> tuple[str, ...]:
        """Every path the asset writes."""
        return (*self.outs, *self.metrics, *self.plots)


_ASSETS = "flair_pipeline/defs/assets"
_DATASET_CODE = (f"{_ASSETS}/sources.py", f"{_ASSETS}/dataset.py", "flair_pipeline/dataset")
_S2_CODE = (
    f"{_ASSETS}/sentinel2.py",
    "flair_pipeline/sentinel2",
    "flair_pipeline/sources/domain_spec.py",
)
_TRAIN_CODE = (f"{_ASSETS}/training.py", "flair_pipeline/training", "flair_pipeline/models")
_EVAL_CODE = (f"{_ASSETS}/evaluation.py", "flair_pipeline/evaluation")
#: What training reads besides `train`: pixel geometry and FLAIR-2's S2 preprocessing.
_TRAIN_PARAMS = ("train", "sampling.resolution", "sampling.elevation_scale")
_S2_TRAIN_PARAMS = tuple(
    f"sentinel2.{k}"
    for k in ("window", "filter_clouds", "cloud_threshold", "cloud_max_fraction", "monthly_average")
)


#: Dataset files a model reads (training and evaluation).
_TRAIN_READS = (
    "{dataset}/aerial",
    "{dataset}/labels",
    "{dataset}/metadata/splits.csv",
    "{dataset}/metadata/aerial_metadata.json",
)


def _model(name: str, extra_params: tuple[str, ...] = (), reads: tuple[str, ...] = ()) -> Artifact:
    return Artifact(
        stage=f"train_{name}",
        outs=(
            f"{{models}}/{name}/checkpoints",
            f"{{models}}/{name}/logs",
            f"{{models}}/{name}/tb",
            f"{{models}}/{name}/curves.png",
            f"{{models}}/{name}/report.json",
        ),
        plots=(f"{{models}}/{name}/curves.csv",),
        params=(*_TRAIN_PARAMS, *extra_params),
        reads=reads,
        code=_TRAIN_CODE,
    )


def _evaluation(name: str) -> Artifact:
    # Reads the test split from the dataset, which its Dagster deps (the model) do not say.
    dataset = _TRAIN_READS + (("{dataset}/sentinel",) if name == "utt" else ())
    return Artifact(
        stage=f"evaluate_{name}",
        outs=(
            f"{{eval}}/{name}/predictions",
            f"{{eval}}/{name}/confusion.png",
            f"{{eval}}/{name}/patches.png",
        ),
        metrics=(f"{{eval}}/{name}/metrics.json",),
        plots=(f"{{eval}}/{name}/confusion.csv", f"{{eval}}/{name}/per_domain.csv"),
        params=("eval",),
        reads=dataset,
        code=_EVAL_CODE,
    )


#: Asset key -> its artifact. Per-domain entries use {domain}; keep in asset-graph order.
ARTIFACTS: dict[str, Artifact] = {
    "domain_sources": Artifact(
        stage="dataset",
        outs=("{dataset}/metadata/sources/{domain}.json",),
        reads=("{raw}/domains/{domain}",),
        code=(
            *_DATASET_CODE,
            "flair_pipeline/sources/domain_inputs.py",
            "flair_pipeline/sources/domain_spec.py",
        ),
    ),
    "patch_grid": Artifact(
        stage="dataset",
        outs=("{dataset}/metadata/patch_grid/{domain}.gpkg",),
        params=("sampling",),
        code=_DATASET_CODE,
    ),
    "aerial_patches": Artifact(
        stage="dataset",
        outs=("{dataset}/aerial/{domain}",),
        params=("sampling", "dataset"),
        code=_DATASET_CODE,
    ),
    "label_masks": Artifact(
        stage="dataset",
        outs=("{dataset}/labels/{domain}",),
        params=("sampling", "dataset"),
        code=_DATASET_CODE,
    ),
    "dataset_metadata": Artifact(
        stage="dataset",
        outs=("{dataset}/metadata/domains/{domain}.json",),
        params=("sampling",),
        code=_DATASET_CODE,
    ),
    "sentinel2_series": Artifact(
        stage="sentinel2",
        outs=("{dataset}/sentinel/{domain}", "{dataset}/metadata/centroids/{domain}.json"),
        params=("sentinel2",),
        # the whole folder: a domain.yaml domain has no domain.json (year from the id)
        reads=("{raw}/domains/{domain}", "{raw}/sentinel2"),
        code=_S2_CODE,
    ),
    "split_assignment": Artifact(
        stage="split",
        outs=("{dataset}/metadata/splits.csv", "{dataset}/metadata/aerial_metadata.json"),
        params=("split",),
        code=(
            f"{_ASSETS}/dataset.py",
            "flair_pipeline/dataset/splits.py",
            "flair_pipeline/dataset/assemble.py",
        ),
    ),
    "sentinel2_index": Artifact(
        stage="sentinel2_index",
        outs=("{dataset}/metadata/centroids_sp_to_patch.json",),
        code=(f"{_ASSETS}/sentinel2.py", "flair_pipeline/sentinel2/build.py"),
    ),
    "packed_training_input": Artifact(
        stage="pack",
        outs=("{dataset}/packed",),
        code=(f"{_ASSETS}/training.py", "flair_pipeline/training/packing.py"),
    ),
    "model_unet": _model("unet"),
    # the series themselves: its Dagster deps only name the centroid index
    "model_utt": _model("utt", _S2_TRAIN_PARAMS, reads=("{dataset}/sentinel",)),
    "evaluation_unet": _evaluation("unet"),
    "evaluation_utt": _evaluation("utt"),
    "model_comparison": Artifact(
        stage="compare",
        outs=("{eval}/comparison.md",),
        code=(f"{_ASSETS}/evaluation.py", "flair_pipeline/evaluation/compare.py"),
    ),
}


@dataclass(frozen=True)
class CommandStage:
    """A dvc stage that runs a CLI command rather than assets.

    reads: files and folders it reads (templates); needs: assets whose files it reads,
    so it appears only when they exist; last: placed after the asset stages in dvc.yaml.
    """

    cmd: str
    outs: tuple[str, ...]
    params: tuple[str, ...]
    code: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    last: bool = False


#: The embedded synthetic world writes the raw inputs every domain stage reads (no asset
#: owns raw data); the demo map predicts a whole test domain with each trained model.
COMMAND_STAGES: dict[str, CommandStage] = {
    "synth": CommandStage(
        cmd="flair-pipeline synth",
        outs=("{raw}",),
        params=("synth",),
        code=("flair_pipeline/sources",),
    ),
    "demo_map": CommandStage(
        cmd="flair-pipeline demo-map",
        outs=("{eval}/maps",),
        params=("eval", "sentinel2"),
        code=("flair_pipeline/demo.py", "flair_pipeline/evaluation"),
        reads=(
            "{raw}",
            "{dataset}/metadata/splits.csv",
            "{models}/unet/checkpoints",
            "{models}/utt/checkpoints",
        ),
        needs=("model_unet", "model_utt", "split_assignment"),
        last=True,
    ),
}


@dataclass(frozen=True)
class Plot:
    """A top-level dvc.yaml plot (`dvc plots show/diff`) drawn from a registered file.

    template: a DVC template name or a template file in the repo; x: the x column;
    y: the y column(s) (None: DVC's default); title: the plot's id in dvc.yaml.
    """

    title: str
    file: str
    template: str
    x: str | None = None
    y: tuple[str, ...] = ()


#: FLAIR's confusion matrix as shares of each true class, from the wide pixel-count CSV
#: (DVC's own `confusion` template counts rows of per-sample CSVs instead).
CONFUSION_TEMPLATE = "flair_pipeline/defs/plot_templates/confusion_shares.json"

PLOTS: tuple[Plot, ...] = tuple(
    p
    for name in ("unet", "utt")
    for p in (
        Plot(f"training curves {name}", f"{{models}}/{name}/curves.csv", "linear", "epoch",
             ("train_loss", "val_loss", "val_miou")),
        Plot(f"confusion {name}", f"{{eval}}/{name}/confusion.csv", CONFUSION_TEMPLATE),
        Plot(f"per-domain mIoU {name}", f"{{eval}}/{name}/per_domain.csv", "bar_horizontal",
             "miou", ("domain",)),
    )
)  # fmt: skip


def all_domains(template: str) -> str:
    """The folder holding every domain's copy of a per-domain path.

    ``{dataset}/aerial/{domain}`` -> ``{dataset}/aerial``;
    ``{dataset}/metadata/domains/{domain}.json`` -> ``{dataset}/metadata/domains``.
    An all-domain stage depends on that folder (DVC links it to every producing stage).
    """
    parts = template.split("/")
    cut = next((i for i, p in enumerate(parts) if "{domain}" in p), len(parts))
    return "/".join(parts[:cut])


def to_dvc(template: str) -> str:
    """A registry template in dvc.yaml's interpolation syntax."""
    out = template.replace("{domain}", "${item}")
    for root in ROOTS:
        out = out.replace(f"{{{root}}}", f"${{paths.{root}}}")
    return out
