"""Which files each asset owns and which params it reads: the bridge to dvc.yaml.

docs/architecture.md says "one owner per artifact": every asset writes at the paths dvc.yaml
declares. Rather than keep the two in sync by hand, dvc.yaml is generated
(:mod:`flair_pipeline.orchestration.dvc_yaml`) from the stage declarations of
:mod:`flair_pipeline.stages` (who reads whom, what each stage writes, reads and is configured
by; the code it runs is computed from its asset module's imports by
:mod:`flair_pipeline.orchestration.code_deps`), and a test checks the committed file against
a fresh generation. :data:`ARTIFACTS` is each declaration's footprint as templates; the
dvc stages that run a CLI command rather than assets (:data:`COMMAND_STAGES`) and the
top-level plots (:data:`PLOTS`) are declared here.

Templates use the config roots ``{raw}``, ``{dataset}``, ``{models}``, ``{eval}`` and
``{domain}`` (the partition); each is a :mod:`flair_pipeline.layout` entry (the only place
a path is spelled), one model per trained folder of :mod:`flair_pipeline.model_registry`.
They become ``${paths.raw}``… and ``${item}`` in dvc.yaml. A stage appears in dvc.yaml as
soon as its asset is in the definitions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flair_pipeline import layout as L
from flair_pipeline.layout import ROOTS
from flair_pipeline.model_registry import TRAINED
from flair_pipeline.stages import STAGES, Stage


@dataclass(frozen=True)
class Artifact:
    """One asset's footprint on disk and in params.yaml (from its :class:`Stage`).

    stage: the dvc stage that materializes it; assets sharing a stage run in one
        ``flair-pipeline materialize`` call (one process, one Dagster run), which keeps a
        per-domain build to one process start instead of five.
    outs: files or folders it writes (cached by DVC).
    metrics: JSON metrics it writes (cached, read by `dvc metrics show/diff`, `dvc exp show`).
    plots: CSV series it writes (`dvc plots`): cached stage outputs that the top-level
        ``plots`` of dvc.yaml draw (:data:`PLOTS`).
    params: params.yaml keys (sections or dotted keys) its code reads.
    reads: what it reads beyond its inputs' outputs: raw data (no asset owns it)
        and files of assets it reads without declaring them as inputs.
    """

    stage: str
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()

    @property
    def owned(self) -> tuple[str, ...]:
        """Every path the asset writes."""
        return (*self.outs, *self.metrics, *self.plots)

    @classmethod
    def of(cls, stage: Stage) -> Artifact:
        """The footprint of a stage declaration, as templates.

        Args:
            stage: A declaration of :mod:`flair_pipeline.stages`.

        Returns:
            Its dvc stage, files, params and extra reads.
        """
        return cls(
            stage=stage.dvc_stage,
            outs=_of(*stage.outputs),
            metrics=_of(*stage.metrics),
            plots=_of(*stage.plots),
            params=stage.params,
            reads=_of(*stage.reads),
        )


def _of(*templates: L.PathTemplate, model: str | None = None) -> tuple[str, ...]:
    """Artifact templates of layout entries, the model folder filled in when given.

    Returns:
        The templates' strings (e.g. ``"{models}/unet/checkpoints"``), in the order given.
    """
    return tuple((t.fill(model=model) if model else t).template for t in templates)


def artifacts(stages: Iterable[Stage]) -> dict[str, Artifact]:
    """Asset key -> its artifact, for the given declarations.

    Args:
        stages: Stage declarations.

    Returns:
        ``{name: Artifact.of(stage)}`` in the order given.
    """
    return {s.name: Artifact.of(s) for s in stages}


#: Asset key -> its artifact, for every declared stage (asset-graph order).
ARTIFACTS: dict[str, Artifact] = artifacts(STAGES)


@dataclass(frozen=True)
class CommandStage:
    """A dvc stage that runs a CLI command rather than assets.

    roots: the modules holding the work the command runs; the stage's code dependencies
    are their import closure (:mod:`flair_pipeline.orchestration.code_deps`);
    reads: files and folders it reads (templates); needs: assets whose files it reads,
    so it appears only when they exist; last: placed after the asset stages in dvc.yaml.
    """

    cmd: str
    outs: tuple[str, ...]
    params: tuple[str, ...]
    roots: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    last: bool = False


#: The embedded synthetic world writes the raw inputs every domain stage reads (no asset
#: owns raw data); the demo map predicts a whole test domain with each trained model.
COMMAND_STAGES: dict[str, CommandStage] = {
    "synth": CommandStage(
        cmd="flair-pipeline synth",
        outs=("{raw}",),  # the whole raw root: every domain and the Sentinel-2 archive
        params=("synth",),
        # `flair-pipeline synth`: the world, then its IGN rewriting for the `ign` flavour
        roots=("flair_pipeline.synthetic.world", "flair_pipeline.synthetic.ign"),
    ),
    "demo_map": CommandStage(
        cmd="flair-pipeline demo-map",
        outs=_of(L.MAPS),
        params=("eval", "sentinel2"),
        roots=("flair_pipeline.demo",),
        reads=(
            "{raw}",
            L.SPLITS.template,
            *(_of(L.CHECKPOINTS, model=m.folder)[0] for m in TRAINED),
        ),
        needs=(*(f"model_{m.folder}" for m in TRAINED), "split_assignment"),
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
    #: (file, column) pairs drawn together (DVCLive: one TSV per metric); `file` is then
    #: the folder holding them (a stage output)
    series: tuple[tuple[str, str], ...] = ()
    x_label: str | None = None


#: FLAIR's confusion matrix as shares of each true class, from the wide pixel-count CSV
#: (DVC's own `confusion` template counts rows of per-sample CSVs instead).
CONFUSION_TEMPLATE = "flair_pipeline/orchestration/plot_templates/confusion_shares.json"

PLOTS: tuple[Plot, ...] = tuple(
    p
    for name in (m.folder for m in TRAINED)
    for p in (
        Plot(
            f"training curves {name}",
            _of(L.DVCLIVE, model=name)[0],
            "linear",
            "step",  # DVCLive's step column: the epoch (training/tracking.py)
            series=tuple(
                (L.DVCLIVE_PLOT.fill(model=name, metric=m).template, m)
                for m in ("train_loss", "val_loss", "val_miou")
            ),
            x_label="epoch",
        ),
        Plot(f"confusion {name}", _of(L.CONFUSION_CSV, model=name)[0], CONFUSION_TEMPLATE),
        Plot(
            f"per-domain mIoU {name}",
            _of(L.PER_DOMAIN_CSV, model=name)[0],
            "bar_horizontal",
            "miou",
            ("domain",),
        ),
    )
)
#: The FLAIR-HUB model's training curves (stage model_hub, DVCLive as the baselines').
PLOTS += (
    Plot(
        f"training curves {L.HUB_MODEL}",
        _of(L.DVCLIVE, model=L.HUB_MODEL)[0],
        "linear",
        "step",
        series=tuple(
            (L.DVCLIVE_PLOT.fill(model=L.HUB_MODEL, metric=m).template, m)
            for m in ("train_loss", "val_loss", "val_miou")
        ),
        x_label="epoch",
    ),
)


def all_domains(template: str) -> str:
    """The folder holding every domain's copy of a per-domain path.

    ``{dataset}/aerial/{domain}`` -> ``{dataset}/aerial``;
    ``{dataset}/metadata/domains/{domain}.json`` -> ``{dataset}/metadata/domains``.
    An all-domain stage depends on that folder (DVC links it to every producing stage).

    Args:
        template: A layout template, ``{<root>}/...``.

    Returns:
        The template of the folder above the per-domain part; `template` itself when it
        has no path below its root.
    """
    root, _, rel = template.partition("/")
    if not rel:
        return template
    return L.PathTemplate(root.strip("{}"), rel).all_domains().template  # type: ignore[arg-type]


def to_dvc(template: str) -> str:
    """A registry template in dvc.yaml's interpolation syntax.

    Args:
        template: A layout template such as ``{dataset}/aerial/{domain}``.

    Returns:
        The same path with ``{domain}`` as ``${item}`` and each ``{<root>}`` as
        ``${paths.<root>}``, e.g. ``${paths.dataset}/aerial/${item}``.
    """
    out = template.replace("{domain}", "${item}")
    for root in ROOTS:
        out = out.replace(f"{{{root}}}", f"${{paths.{root}}}")
    return out


#: Top-level dvc.yaml ``metrics``: files inside stage outputs (`dvc exp show`, `dvc metrics`):
#: DVCLive's last-epoch values of each model.
TRACKED_METRICS: tuple[str, ...] = tuple(
    _of(L.DVCLIVE_METRICS, model=folder)[0]
    for folder in (*(m.folder for m in TRAINED), L.HUB_MODEL)
)

#: Top-level dvc.yaml ``artifacts``: each model's best checkpoint as a DVC model artifact
#: (`dvc artifacts get`, DVC Studio's model registry), declared here rather than copied by
#: DVCLive's ``log_model``.
MODEL_ARTIFACTS: dict[str, str] = {m.folder: _of(L.BEST_CKPT, model=m.folder)[0] for m in TRAINED}
