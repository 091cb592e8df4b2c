"""`flair-pipeline`: the command-line front door.

Every command takes ``--config FILE`` (default ``./params.yaml``) and repeatable
``--set key.sub=value`` overrides, and calls the same core functions the Dagster assets
call. Errors a user can fix are printed as one clear message with exit code 1, no
traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from flair_pipeline import redaction, stage_times
from flair_pipeline.config import PipelineConfig, dump_config, load_config
from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.model_registry import MODEL_NAMES, get_model
from flair_pipeline.progress import Progress
from flair_pipeline.project import Project
from flair_pipeline.storage import is_remote


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--config`` and ``--set`` to a command and pass the loaded config as `cfg`.

    Args:
        func: The command function; it gets ``config_path`` and ``overrides``.

    Returns:
        `func` decorated with the two click options.
    """
    func = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a config value, e.g. --set synth.seed=3 (repeatable).",
    )(func)
    func = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Config file (default: ./params.yaml if present).",
    )(func)
    return func


def _project(config_path: Path | None, overrides: tuple[str, ...]) -> Project:
    """The command's one project: its config, roots resolved against the config's folder.

    Returns:
        The :class:`Project` of `config_path` (``./params.yaml`` if present, when None)
        with the ``--set`` overrides applied.
    """
    return Project.load(config_path, overrides)


def _surface_arg(value: str | None) -> Path | str | None:
    """A ``--dsm``/``--dtm`` value: a URL kept as given (read in place), else a Path.

    Args:
        value: The option's value, or None.

    Returns:
        The URL string, the local Path, or None.
    """
    if value is None:
        return None
    return value if is_remote(value) else Path(value)


def _load(config_path: Path | None, overrides: tuple[str, ...]) -> PipelineConfig:
    return _project(config_path, overrides).config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flair-pipeline")
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No progress on stderr (bar on a terminal, a line every 5 % otherwise); "
    "results, warnings and errors still print.",
)
def cli(quiet: bool) -> None:
    """Build a FLAIR-style land-cover dataset and train the FLAIR baselines."""


def _quiet() -> bool:
    """Whether the global --quiet was given.

    Returns:
        True if the root command's ``quiet`` flag is set; False outside a click context.
    """
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().params.get("quiet"))


def _progress(command: str) -> Progress:
    """The progress of a long command: a bar on a terminal, lines in a log, none if --quiet.

    Returns:
        The :class:`Progress` for `command`'s stderr reports.
    """
    return Progress.for_terminal(command, quiet=_quiet())


@cli.command("config")
@config_options
def config_cmd(config_path: Path | None, overrides: tuple[str, ...]) -> None:
    """Print the resolved configuration (params.yaml + overrides) as YAML."""
    click.echo(dump_config(_load(config_path, overrides)), nl=False)


@cli.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Raw data root to write (default: paths.raw).",
)
@click.option(
    "--scenario",
    default=None,
    help="tiny, demo, bench (default: synth.scenario), or departement: one domain the size "
    "of a département, its dalles reusing a few files through VRT indexes (docs/inputs.md).",
)
@click.option("--seed", type=int, default=None, help="Random seed (default: synth.seed).")
@click.option(
    "--scale",
    type=float,
    default=1.0,
    show_default=True,
    help="departement only: share of the full 78 km x 78 km area (0.25: a quarter).",
)
@click.option(
    "--dalle-px",
    type=int,
    default=5000,
    show_default=True,
    help="departement only: a dalle's side in pixels at 0.2 m (5000: IGN's 1 km).",
)
@click.option(
    "--archetypes",
    type=int,
    default=8,
    show_default=True,
    help="departement only: distinct dalles written (each dalle reuses one).",
)
@click.option(
    "--flavour",
    type=click.Choice(["plain", "ign"]),
    default=None,
    help="plain: the project's raw layout; ign: the same world as IGN delivers it "
    "(BD ORTHO RVB+IRC JP2, RGE ALTI .asc, LiDAR HD DSM, OCS GE-like labels, "
    "domain.yaml), see docs/inputs.md (default: synth.flavour).",
)
@config_options
def synth(
    out: Path | None,
    scenario: str | None,
    seed: int | None,
    flavour: str | None,
    scale: float,
    dalle_px: int,
    archetypes: int,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Generate the synthetic world's raw inputs (mosaics, DSM/DTM, labels, Sentinel-2)."""
    if scenario == "departement":
        from flair_pipeline.synthetic.departement import format_summary, generate_departement

        root = out or Path(_load(config_path, overrides).paths.raw)
        summary = generate_departement(
            root,
            scale,
            seed if seed is not None else 0,
            dalle_px=dalle_px,
            archetypes=archetypes,
            progress=lambda line: click.echo(f"departement: {line}"),
        )
        click.echo(format_summary(summary))
        return
    extra = list(overrides)
    if scenario is not None:
        extra.append(f"synth.scenario={scenario}")
    if seed is not None:
        extra.append(f"synth.seed={seed}")
    if flavour is not None:
        extra.append(f"synth.flavour={flavour}")
    cfg = _load(config_path, tuple(extra))
    _run_synth(cfg, out or Path(cfg.paths.raw))
    if cfg.synth.flavour == "ign":
        from flair_pipeline.synthetic.ign import convert_world

        done = convert_world(out or Path(cfg.paths.raw))
        click.echo(f"ign flavour: {len(done)} domain(s) rewritten as IGN delivers them")


def _run_synth(cfg: PipelineConfig, out: Path) -> None:
    from flair_pipeline.synthetic.world import SCENARIOS, format_summary, generate_world

    n = len(SCENARIOS[cfg.synth.scenario].domains)
    start = time.perf_counter()
    begun: list[str] = []

    with _progress("synth").task(f"{cfg.synth.scenario} domains", n, "domains") as counter:

        def progress(domain: str) -> None:  # called as each domain begins
            if begun:
                counter.advance()
            begun.append(domain)

        summary = generate_world(out, cfg.synth.scenario, cfg.synth.seed, progress=progress)
        counter.advance()  # the last domain
    click.echo(format_summary(summary))
    click.echo(f"\ndone in {time.perf_counter() - start:.1f} s")


@cli.command()
def demo() -> None:
    """Run the demo end to end through `dvc repro` and print the comparison table.

    Run everything on the embedded `demo` world through `dvc repro`: raw inputs, dataset,
    Sentinel-2, both models (params.yaml's CPU recipe), evaluation, comparison, a map.

    Every stage materializes the Dagster assets on the persistent instance (the runs show
    in the UI) and DVC records them in dvc.lock: afterwards `dvc status` is clean and a
    second `flair-pipeline demo` (or `dvc repro`) runs nothing. Change params.yaml (or
    use `dvc exp run -S key=value`) to change the recipe.
    """
    from flair_pipeline.demo import run_demo

    cfg = _load(None, ())
    click.echo(run_demo(Path.cwd(), cfg, log=lambda m: click.echo(m, err=True)))


@cli.command("demo-map")
@config_options
def demo_map_cmd(config_path: Path | None, overrides: tuple[str, ...]) -> None:
    """The `demo_map` stage: map the first test domain with each trained model.

    Map the first test domain with each trained model into <paths.eval>/maps (the
    `demo_map` stage of dvc.yaml).
    """
    from flair_pipeline.demo import write_maps

    click.echo(write_maps(_load(config_path, overrides), progress=_progress("demo-map")))


@cli.command("dvc-record")
def dvc_record_cmd() -> None:
    """Record in DVC the artifacts built outside `dvc repro`.

    Record in DVC what the Dagster UI, the sensor or `materialize` built, so that
    `dvc status` is clean and `dvc push` ships it (dvc commit of the changed stages whose
    outputs exist and are newer than their changed inputs).
    \f

    Raises:
        FlairPipelineError: Some stages were not recorded (listed above the error).
    """  # noqa: D301 (\f: click cuts --help there)
    from flair_pipeline.dvc_record import format_report, record

    report = record(Path.cwd())
    click.echo(format_report(report))
    if report.refused:
        raise FlairPipelineError(
            f"{len(report.refused)} stage(s) not recorded (listed above); `dvc status` "
            "shows them as changed until they are rebuilt"
        )


@cli.command("recipe-args")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
def recipe_args_cmd(recipe: Path) -> None:
    """Print a recipe file as `dvc exp run` arguments.

    Print a recipe file (a partial params.yaml, e.g. recipes/flair-gpu.yaml) as
    `-S key=value` arguments for `dvc exp run`; every key is validated first.
    """
    from flair_pipeline.recipes import set_args

    args = set_args(recipe)
    pairs = [a.lstrip("+") for a in args[1::2]]
    if any(p.startswith("hub.train.") for p in pairs):  # HubTrainConfig's rules too
        from flair_pipeline.training.hub_config import hub_train_config

        hub_train_config(load_config(None, pairs).hub.train, f"{recipe}: hub.train")
    click.echo(" ".join(args))


@cli.command("materialize")
@click.option(
    "--select",
    "selection",
    default="all",
    show_default=True,
    help="Dagster asset selection, e.g. 'group:dataset', 'key:patch_grid+', 'all'.",
)
@click.option(
    "--partition",
    "partitions",
    multiple=True,
    metavar="DOMAIN",
    help="Domain partition(s) to build (default: every domain under paths.raw).",
)
@click.option(
    "--verbose",
    is_flag=True,
    help="Show Dagster's log and the full trace of each failed step (default: one line each).",
)
@config_options
def materialize_cmd(
    selection: str,
    partitions: tuple[str, ...],
    verbose: bool,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Materialize assets in process on the persistent Dagster instance (shows in the UI).

    Every domain is built even if one fails; the failed steps are listed at the end, one
    line each, and the exit status is 1.
    """
    _run_materialize(selection, partitions, config_path, overrides, verbose=verbose)


def _run_materialize(
    selection: str,
    partitions: tuple[str, ...],
    config_path: Path | None,
    overrides: tuple[str, ...],
    verbose: bool = False,
) -> None:
    from flair_pipeline.defs.resources import PipelineConfigResource
    from flair_pipeline.orchestration.run import materialize

    _load(config_path, overrides)  # validate before starting any run
    flair = PipelineConfigResource(
        config_path=str(config_path or "params.yaml"), overrides=list(overrides)
    )
    start = time.perf_counter()
    summary = materialize(
        selection,
        partitions,
        flair,
        log=lambda m: click.echo(m, err=True),
        verbose=verbose,
        progress=not _quiet(),
    )
    click.echo(f"{len(summary.runs)} run(s) succeeded in {time.perf_counter() - start:.1f} s")


@cli.command("runs")
@click.option(
    "--fail-stale",
    is_flag=True,
    help="Mark FAILURE the STARTED runs whose process is gone (default: only list them).",
)
def runs_cmd(fail_stale: bool) -> None:
    """List the STARTED runs of the persistent instance and whether their process lives.

    Without a Dagster daemon (only the CLI or `dvc repro` in use) nothing fails a run whose
    process was killed: it stays STARTED and holds its domain's slot of the run queue.
    --fail-stale marks those FAILURE (run monitoring's own check, on this host), one line
    each; live runs and runs of other hosts are left alone.
    """
    from flair_pipeline.orchestration.launcher import fail_stale_runs
    from flair_pipeline.orchestration.run import dagster_instance

    instance = dagster_instance()
    try:
        checks = fail_stale_runs(instance, dry_run=not fail_stale)
    finally:
        instance.dispose()
    for c in checks:
        what = ("marked FAILURE" if fail_stale else "stale") if c.stale else "left STARTED"
        part = f" [{c.partition}]" if c.partition else ""
        click.echo(f"{what}: run {c.run_id} ({c.job}{part}): {c.reason}")
    stale = sum(c.stale for c in checks)
    hint = ": rerun with --fail-stale to mark them FAILURE" if stale and not fail_stale else ""
    click.echo(f"{len(checks)} started run(s), {stale} whose process is gone{hint}")


@cli.command("build-domain")
@click.argument("domain")
@click.option(
    "--raw",
    "raw_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Raw data root holding domains/DOMAIN (default: paths.raw).",
)
@click.option(
    "--dataset",
    "dataset_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Dataset root to write (default: paths.dataset).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Stop at the first patch that cannot be built (default: skip it and "
    "name it, as the assets do).",
)
@click.option(
    "--sentinel2",
    is_flag=True,
    help="Also fetch the domain's Sentinel-2 series (the sentinel2_series asset's "
    "function, configured provider).",
)
@config_options
def build_domain_cmd(
    domain: str,
    raw_root: Path | None,
    dataset_root: Path | None,
    strict: bool,
    sentinel2: bool,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Build one domain without Dagster: sources record, patch grid, IMG, MSK, metadata.

    Calls the functions the dataset assets call (flair_pipeline/dataset/build.py), so the
    files are byte-identical to a materialization of the domain; a failed check stops the
    build with one line. With --sentinel2, then the series of each zone
    (flair_pipeline/sentinel2/build.py). Relative roots are taken from the config file's
    folder, as the assets take them. The split and the centroid index merge every domain:
    `materialize --select 'key:split_assignment or key:sentinel2_index'` builds them.
    \f

    Raises:
        ConfigError: A root is a URL and no local ``--raw``/``--dataset`` replaces it.
        StageCheckError: A step's check failed (from the build), or with ``--sentinel2``
            the ``series_valid`` check of the series failed.
    """  # noqa: D301 (\f: click cuts --help there)
    from flair_pipeline.dataset.build import DomainContext, build_domain_patches
    from flair_pipeline.errors import StageCheckError
    from flair_pipeline.layout import DatasetLayout, RawLayout

    cfg = _load(config_path, overrides)
    raw = RawLayout(raw_root or _local_root(cfg.paths.raw, "paths.raw"))
    dataset = DatasetLayout(dataset_root or _local_root(cfg.paths.dataset, "paths.dataset"))
    start = time.perf_counter()
    ctx = DomainContext.open(domain, raw, dataset, cfg)  # once for every step of the build
    report = build_domain_patches(
        ctx, skip_bad_patches=not strict, progress=_progress("build-domain")
    )
    for line in report.warnings:
        click.echo(f"warning [{domain}]: {line}", err=True)
    g, i, m, md = report.grid, report.images, report.masks, report.metadata
    click.echo(
        f"{domain}: {g.patches} patches in {g.zones} zones; {i.written} IMG and {m.written} MSK "
        f"written ({len(i.skipped)} + {len(m.skipped)} skipped); metadata of {md.patches} "
        f"patches in {md.path} ({time.perf_counter() - start:.1f} s)"
    )
    if sentinel2:
        from flair_pipeline.sentinel2.build import build_domain_series
        from flair_pipeline.sentinel2.factory import build_provider

        provider = build_provider(cfg.sentinel2.source, raw.sentinel2_catalog())
        series = build_domain_series(
            domain, raw, dataset, cfg, provider, progress=_progress("build-domain")
        )
        for line in series.failed_zones:
            click.echo(f"error [{domain}]: {line}", err=True)
        if not series.passed:
            raise StageCheckError(
                f"{domain}: sentinel2_series check series_valid failed "
                f"({'; '.join(series.problems[:3])})"
            )
        click.echo(
            f"{domain}: Sentinel-2 series of {len(series.dates_per_zone)} zone(s) from "
            f"{series.provider}, dates per zone {series.dates_per_zone}"
        )


def _local_root(value: str, key: str) -> Path:
    """A config root (absolute: :class:`Project` resolved it) as a local path.

    Args:
        value: The root's configured value.
        key: Its config key, for the message (``paths.raw``).

    Returns:
        `value` as a path.

    Raises:
        ConfigError: `value` is a URL: build-domain writes local roots only.
    """
    from flair_pipeline.errors import ConfigError
    from flair_pipeline.storage import is_url

    if is_url(value):
        raise ConfigError(
            f"{key}={value}: build-domain writes local roots only; pass --raw/--dataset or "
            "use `flair-pipeline materialize` (it stages URL roots)"
        )
    return Path(value)


@cli.command("rasterize-labels")
@click.option(
    "--labels",
    "labels_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Vector labels (GeoPackage or any OGR format) with an integer column `code`.",
)
@click.option(
    "--like",
    "like_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Image whose grid (transform, size, CRS) the mask takes.",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Output MSK GeoTIFF (uint8 codes, FLAIR colours).",
)
@click.option(
    "--layer",
    default=None,
    help="Layer of a multi-layer label file (default: its only layer with geometries, "
    "else the one named `labels`).",
)
def rasterize_labels_cmd(
    labels_path: Path, like_path: Path, out_path: Path, layer: str | None
) -> None:
    """Rasterize a label layer onto the grid of an existing image (pixel-centre rule).

    \f

    Raises:
        FlairPipelineError: The output cannot be written; or (an InputError from the
            reader) the labels or the image are unusable, named in one line.
    """  # noqa: D301 (\f: click cuts --help there)
    from flair_pipeline.dataset.rasterize import rasterize_like

    try:
        out = rasterize_like(labels_path, like_path, out_path, layer)
    except OSError as exc:
        raise FlairPipelineError(f"{out_path}: cannot write ({exc.strerror or exc})") from None
    click.echo(f"wrote {out}")


@cli.command("import-flair-hub")
@click.argument("release_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_csv",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Manifest CSV to write (one row per patch, one column per modality).",
)
@click.option(
    "--splits",
    "split_csvs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Per-split CSV (*_TRAIN.csv, *_VALID.csv, *_TEST.csv); repeatable "
    "(default: those in RELEASE_DIR, else GLOBAL_ALL_MTD_SPLIT.gpkg).",
)
@click.option(
    "--split-gpkg",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="GLOBAL_ALL_MTD_SPLIT.gpkg outside RELEASE_DIR.",
)
@click.option(
    "--split-column",
    default="split_1",
    show_default=True,
    help="Split column of the GeoPackage: split_1..split_5 or split_flairchallenge.",
)
@click.option("--modality", "modalities", multiple=True, help="Keep only these modalities.")
@click.option("--domain", "domains", multiple=True, help="Keep only these domains (D006-2020).")
@click.option(
    "--area-disjoint",
    is_flag=True,
    help="Take areas shared between splits out of the lower split (test > validation > train).",
)
@click.option(
    "--any-size",
    is_flag=True,
    help="Accept patches of other pixel sizes than the release's (an export of another "
    "patch size); squareness and every other check still apply.",
)
def import_flair_hub_cmd(
    release_dir: Path,
    out_csv: Path,
    split_csvs: tuple[Path, ...],
    split_gpkg: Path | None,
    split_column: str,
    modalities: tuple[str, ...],
    domains: tuple[str, ...],
    area_disjoint: bool,
    any_size: bool,
) -> None:
    """Index a FLAIR-HUB release (zipped or not, any subset) into a manifest CSV.

    Every modality file is checked (bands, size, dtype, a series against its dates, 0-based
    COSIA labels); bad files and missing modalities are listed, not fatal; areas shared
    between splits are reported (docs/flair-release.md).
    """
    from flair_pipeline.sources.flair_hub import format_hub_report, index_hub, write_hub_manifest

    index = index_hub(
        release_dir,
        split_csvs=split_csvs,
        split_gpkg=split_gpkg,
        split_column=split_column,
        modalities=modalities,
        domains=domains,
        area_disjoint=area_disjoint,
        check_size=not any_size,
        progress=_progress("import-flair-hub"),
    )
    write_hub_manifest(index, out_csv)
    click.echo(format_hub_report(index))
    click.echo(f"wrote {out_csv}")


@cli.command("export-flair-hub")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Dataset root built here (default: paths.dataset).",
)
@click.option("--name", default="EXPORT", show_default=True, help="Name part of the split CSVs.")
@config_options
def export_flair_hub_cmd(
    out_dir: Path,
    data: Path | None,
    name: str,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Export the dataset in FLAIR-HUB's layout into OUT_DIR (a new folder).

    AERIAL_RGBI, AERIAL_LABEL-COSIA (0-based), SENTINEL2_TS and SENTINEL2_MSK-SC (10 px
    over each patch), the split and dates GeoPackages and one CSV per split
    (docs/flair-release.md).
    """
    from flair_pipeline.release.flair_hub_export import export_flair_hub

    root = data or Path(_load(config_path, overrides).paths.dataset)
    report = export_flair_hub(root, out_dir, name=name, progress=_progress("export-flair-hub"))
    for line in report.warnings:
        click.echo(f"warning: {line}", err=True)
    click.echo(
        f"wrote {report.patches} patches ({report.with_s2} with Sentinel-2), "
        f"{report.files} files into {report.out_dir}"
    )


def _hub_overrides(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--set key=value`` pairs of ``train-flair-hub`` as config fields (values as YAML).

    Returns:
        Field -> value.

    Raises:
        ConfigError: A pair without ``=`` or with a dotted key.
    """
    import yaml

    from flair_pipeline.errors import ConfigError

    out: dict[str, Any] = {}
    for text in pairs:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip() or "." in key:
            raise ConfigError(f"--set {text!r}: expected FIELD=VALUE, e.g. epochs=3")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return out


@cli.command("train-flair-hub")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A recipe with a hub: section (recipes/flair-hub-*.yaml) or IGN's "
    "config_modalities.yaml (default: aerial only, COSIA, the CPU recipe).",
)
@click.option(
    "--supervision",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="IGN's config_supervision.yaml (tasks and class weights), with IGN's --config.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Model folder: checkpoints/best.ckpt and last.ckpt, logs, dvclive, report.json.",
)
@click.option(
    "--set",
    "hub_fields",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Override a field of the hub config, e.g. --set epochs=3 (repeatable).",
)
def train_flair_hub_cmd(
    manifest: Path,
    config_path: Path | None,
    supervision: Path | None,
    out: Path,
    hub_fields: tuple[str, ...],
) -> None:
    """Train a FLAIR-HUB model family on an import-flair-hub manifest (docs/flair-release.md).

    \f

    Raises:
        FlairPipelineError: (ConfigError) an unknown or invalid config key; (InputError)
            no usable train or validation patch, or an unreadable file.
    """  # noqa: D301 (\f: click cuts --help there)
    from flair_pipeline.training.hub_config import hub_config_from_ign, load_hub_config
    from flair_pipeline.training.hub_train import train_hub

    extra = _hub_overrides(hub_fields)
    if supervision is not None:
        if config_path is None:
            raise FlairPipelineError(
                "--supervision goes with IGN's config_modalities.yaml --config"
            )
        config = hub_config_from_ign(config_path, supervision, **extra)
    else:
        config = load_hub_config(config_path, **extra)
    click.echo(
        f"train-flair-hub: inputs {', '.join(config.inputs)}; tasks {', '.join(config.tasks)}; "
        f"{config.epochs} epochs, downsample {config.downsample}",
        err=True,
    )
    report = train_hub(manifest, config, out, progress=not _quiet())
    for line in report.left_out:
        click.echo(f"warning: {line}", err=True)
    click.echo(
        f"flair-hub: best validation mIoU {report.best_val_miou:.4f} after {report.epochs} "
        f"epochs ({report.steps} steps, {report.wall_s:.0f} s on {report.device}; "
        f"{report.train_patches} train, {report.val_patches} validation patches); "
        f"best checkpoint {report.best_checkpoint}"
    )


@cli.command("evaluate-flair-hub")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A train-flair-hub checkpoint (its config rebuilds the data pipeline).",
)
@click.option(
    "--split",
    default="test",
    show_default=True,
    type=click.Choice(["train", "validation", "test"]),
    help="The manifest's split to score.",
)
@click.option(
    "--out",
    "out_json",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Report JSON to write (mIoU over the scored classes, per class, per domain, per task).",
)
def evaluate_flair_hub_cmd(manifest: Path, checkpoint: Path, split: str, out_json: Path) -> None:
    """Score a FLAIR-HUB checkpoint on a split of a manifest, as FLAIR-HUB reports it.

    \f

    Raises:
        FlairPipelineError: (InputError) no usable patch in the split, an unreadable file
            or checkpoint; or the report cannot be written.
    """  # noqa: D301 (\f: click cuts --help there)
    from flair_pipeline.evaluation.hub_eval import evaluate_hub, format_hub_report
    from flair_pipeline.io import atomic_path
    from flair_pipeline.training.hub_train import hub_records

    report = evaluate_hub(
        checkpoint, hub_records(manifest), split, progress=_progress("evaluate-flair-hub")
    )
    try:
        with atomic_path(out_json) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
    except OSError as exc:
        raise FlairPipelineError(f"{out_json}: cannot write ({exc.strerror or exc})") from None
    click.echo(format_hub_report(report))
    click.echo(f"wrote {out_json}")


@cli.command("import-flair")
@click.argument("release_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_csv",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Manifest CSV to write (one row per patch).",
)
@click.option(
    "--metadata",
    "metadata",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Aerial-metadata JSON outside RELEASE_DIR (found inside by name otherwise).",
)
@click.option(
    "--centroids",
    "centroids",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Centroids JSON (IMG_<id>.tif -> [row, col]) outside RELEASE_DIR.",
)
@click.option(
    "--splits",
    "splits",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Official split CSV (FLAIR #1 flair-1-paths-{train,val,test}.csv); repeatable.",
)
@click.option(
    "--sat-window",
    default=40,
    show_default=True,
    type=click.IntRange(2),
    help="Sentinel-2 window side (px) checked against each super-area.",
)
def import_flair_cmd(
    release_dir: Path,
    out_csv: Path,
    metadata: tuple[Path, ...],
    centroids: tuple[Path, ...],
    splits: tuple[Path, ...],
    sat_window: int,
) -> None:
    """Index an official FLAIR #1/#2 release folder into a training manifest."""
    from flair_pipeline.sources.flair_release import format_report, index_release, write_manifest

    index = index_release(
        release_dir,
        progress=_progress("import-flair"),
        window=sat_window,
        metadata=list(metadata),
        centroids=list(centroids),
        split_files=list(splits),
    )
    write_manifest(index, out_csv)
    click.echo(format_report(index))
    click.echo(f"wrote {out_csv} ({len(index.rows)} patches)")


@cli.command("export-flair")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Release folder to write, in the FLAIR-2 layout (docs/flair-release.md).",
)
@click.option(
    "--data",
    "data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Dataset root built here (default: paths.dataset).",
)
@click.option(
    "--stac/--no-stac",
    default=True,
    show_default=True,
    help="Also write stac/ (Collection + an Item per zone) and flair-msk.qml.",
)
@click.option(
    "--allow-missing-sentinel2",
    is_flag=True,
    default=False,
    help=(
        "Leave out the patches whose zone has no Sentinel-2 series instead of refusing the "
        "export (FLAIR-2's loader fails on a patch without a centroid entry); they are "
        "listed in flair-export.json and the STAC collection."
    ),
)
@config_options
def export_flair_cmd(
    out_dir: Path,
    data: Path | None,
    stac: bool,
    allow_missing_sentinel2: bool,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Write our dataset as a FLAIR-2 release (aerial, labels, Sentinel-2, JSONs, split lists).

    The folder is written beside OUT and swapped in whole on success (an earlier export
    is replaced, never merged); a killed export leaves a folder marked EXPORT-INCOMPLETE
    beside OUT, which the next export deletes.
    """
    from flair_pipeline.release.flair_export import LOADER_NOTE, export_release

    root = data or Path(_load(config_path, overrides).paths.dataset)
    report = export_release(
        root, out_dir, allow_missing_sentinel2, stac=stac, progress=_progress("export-flair")
    )
    click.echo(
        f"wrote {report.out}: {report.patches} patches, {report.zones_with_s2} Sentinel-2 "
        f"super-areas, {report.files} files"
    )
    if report.excluded:
        click.echo(
            f"warning: {len(report.excluded)} patches without a Sentinel-2 series left out "
            f"(--allow-missing-sentinel2; listed in {report.out / 'flair-export.json'}): "
            f"{LOADER_NOTE}",
            err=True,
        )
    if stac:
        click.echo(
            f"wrote {report.out / 'stac' / 'collection.json'} and {report.out / 'flair-msk.qml'}"
        )


@cli.command("pack")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Pack folder (default: <dataset>/packed or <manifest stem>_packed).",
)
def pack_cmd(source: Path, out: Path | None) -> None:
    """Pack a dataset root or an import-flair manifest into memory-mapped training arrays."""
    from flair_pipeline.training.packing import pack_source

    report = pack_source(source, out, progress=_progress("pack"))
    for line in report.warnings:
        click.echo(line, err=True)
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
    click.echo(f"packed {counts} patches into {report.root} ({report.bytes / 2**20:.1f} MiB)")


@cli.command("train")
@click.option(
    "--model",
    "model_name",
    type=click.Choice(MODEL_NAMES),
    default=None,
    help="Baseline to train (default: train.model).",
)
@click.option(
    "--data",
    "data",
    type=click.Path(path_type=Path),
    default=None,
    help="Dataset root or an import-flair manifest CSV (default: paths.dataset).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: <paths.models>/<model>).",
)
@click.option("--resume", is_flag=True, help="Continue from <out>/checkpoints/last.ckpt.")
@config_options
def train_cmd(
    model_name: str | None,
    data: Path | None,
    out: Path | None,
    resume: bool,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Train a baseline with Lightning (GPU when present) and save its checkpoints."""
    from flair_pipeline.training.train import train_model

    project = _project(config_path, overrides)
    cfg = project.config
    name = model_name or cfg.train.model
    folder = project.model_files(name).folder
    report = train_model(
        data or project.dataset.root,
        out or folder,
        cfg,
        name,
        resume=resume,
        progress=not _quiet(),  # Lightning's own bar
    )
    click.echo(
        f"{name}: best validation mIoU {report.best_val_miou:.4f} after {report.epochs} epochs "
        f"({report.steps} steps, {report.wall_s:.0f} s, {report.images_per_s:.1f} images/s on "
        f"{report.device}); best checkpoint {report.best_checkpoint}"
    )


@cli.command("evaluate")
@click.option(
    "--predictions",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder of PRED_<id>.tif (or MSK_<id>.tif) maps of FLAIR codes, searched recursively.",
)
@click.option(
    "--labels",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder of MSK_<id>.tif labels, searched recursively.",
)
@click.option(
    "--out",
    "out_json",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="metrics.json to write (mIoU, overall accuracy, per class, per domain).",
)
@click.option(
    "--confusion-csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the 13 x 13 confusion matrix (pixel counts) as CSV.",
)
@click.option(
    "--confusion-png",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the row-normalised confusion matrix figure.",
)
@click.option(
    "--per-domain-csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write mIoU, accuracy and per-class IoU per domain as CSV.",
)
def evaluate_cmd(
    predictions: Path,
    labels: Path,
    out_json: Path,
    confusion_csv: Path | None,
    confusion_png: Path | None,
    per_domain_csv: Path | None,
) -> None:
    """Score predicted maps against labels with FLAIR's metric (summed confusion matrix).

    \f

    Raises:
        FlairPipelineError: An output file cannot be written; or (an InputError from the
            scorer) a labelled patch has no prediction, or a file is unreadable.
    """  # noqa: D301 (\f: click cuts --help there)
    from flair_pipeline.evaluation import plots
    from flair_pipeline.evaluation import scoring as ev

    scores = ev.evaluate(predictions, labels, progress=_progress("evaluate"))
    try:
        ev.write_metrics(scores, out_json)
        if confusion_csv is not None:
            ev.write_text(confusion_csv, plots.confusion_csv(scores.matrix, scores.names))
        if confusion_png is not None:
            ev.write_bytes(confusion_png, plots.confusion_png(scores.matrix, scores.names))
        if per_domain_csv is not None:
            ev.write_text(per_domain_csv, plots.per_domain_csv(scores))
    except OSError as exc:
        raise FlairPipelineError(
            f"{exc.filename or out_json}: cannot write ({exc.strerror or exc})"
        ) from None
    click.echo(ev.format_scores(scores))
    click.echo(f"wrote {out_json}")


@cli.command("predict")
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Model checkpoint written by `flair-pipeline train`.",
)
@click.option(
    "--image",
    required=True,
    help="Ortho to map: a GeoTIFF, a .vrt or a folder of tiles (R, G, B, NIR uint8), read in "
    "place from an https:// or s3:// URL too (or a /vsicurl/, /vsis3/ path): one raster, or "
    "a folder of tiles (listed once; an https:// folder needs an index page).",
)
@click.option(
    "--dsm",
    type=str,
    default=None,
    help="Surface model (with --dtm) for the elevation channel of 5-channel models: a file, "
    "or one read in place from an https:// or s3:// URL.",
)
@click.option(
    "--dtm",
    type=str,
    default=None,
    help="Terrain model (with --dsm).",
)
@click.option(
    "--out",
    "out_map",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Map to write: COG of FLAIR codes 1..13 (13 = other), nodata 0 where the ortho has "
    "none (nodata, mask or alpha band); its QGIS style goes beside it (.qml).",
)
@click.option(
    "--probabilities",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write class probabilities (13 bands, uint8 0..255).",
)
@click.option(
    "--overlap",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=None,
    help="Overlap of neighbouring windows (fraction of a patch; default: eval.overlap).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Windows per forward pass (default: eval.batch_size).",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default=None,
    help="Where to run (default: cuda when present, else cpu).",
)
@click.option(
    "--year",
    type=int,
    default=None,
    help="U-T&T: the year of Sentinel-2 series to fetch (configured provider).",
)
@click.option(
    "--readers",
    type=click.IntRange(min=1),
    default=None,
    help="Threads reading windows ahead of the model (default: one per core, at most 8).",
)
@click.option("--camera", default=None, help="unet-meta: camera of the ortho acquisition.")
@click.option("--date", "acq_date", default=None, help="unet-meta: acquisition date YYYY-MM-DD.")
@click.option("--time", "acq_time", default=None, help="unet-meta: acquisition time HH:MM.")
@config_options
def predict_cmd(
    checkpoint: Path,
    image: str,
    dsm: str | None,
    dtm: str | None,
    out_map: Path,
    probabilities: Path | None,
    overlap: float | None,
    batch_size: int | None,
    device: str | None,
    year: int | None,
    readers: int | None,
    camera: str | None,
    acq_date: str | None,
    acq_time: str | None,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Map a large area with a trained model: blended sliding windows, streamed by rows.

    U-T&T windows get their Sentinel-2 series from the configured provider (sentinel2.* in
    params.yaml), fetched once for the whole image; unet-meta gets each window's location
    and the acquisition facts given here.
    \f

    Raises:
        FlairPipelineError: The map or probabilities cannot be written; a U-T&T checkpoint
            without ``--year``; or (from the readers) an unusable checkpoint, image or
            DSM/DTM, each named in one line.
    """  # noqa: D301 (\f: click cuts --help there)
    from flair_pipeline.evaluation import extra_inputs as ex
    from flair_pipeline.evaluation.predict_config import PredictConfig
    from flair_pipeline.training.checkpoint import load_inference

    inf = load_inference(checkpoint)
    ortho: Path | str = image if is_remote(image) else Path(image)  # a URL is read in place
    spec, extra = get_model(inf.name), None
    if spec.needs_s2:
        extra = _s2_windows(inf, ortho, year, config_path, overrides)
    elif spec.needs_meta:
        facts = {"camera": camera, "date": acq_date, "time": acq_time}
        extra = ex.MetaWindows(inf, {k: v for k, v in facts.items() if v})
    given = {"overlap": overlap, "batch_size": batch_size, "readers": readers}
    try:
        settings = PredictConfig.for_checkpoint(
            inf,
            _load(config_path, overrides).eval,  # the demo_map stage's settings too
            device=device,
            **{k: v for k, v in given.items() if v is not None},
        )
        report = settings.build(inf.model, extra).map(
            ortho,
            out_map,
            dsm=_surface_arg(dsm),
            dtm=_surface_arg(dtm),
            probabilities=probabilities,
            progress=_progress("predict"),
        )
    except OSError as exc:
        raise FlairPipelineError(
            f"{exc.filename or out_map}: cannot write ({exc.strerror or exc})"
        ) from None
    click.echo(
        f"wrote {report.out} ({report.height} x {report.width} px, {report.km2:.2f} km²): "
        f"{report.n_windows} windows in {report.seconds:.1f} s on {report.device} "
        f"({report.patches_per_s:.1f} patches/s, {report.km2_per_h:.1f} km²/h)"
    )
    for line in report.decisions:
        click.echo(f"note: {line}")
    if report.void_pixels:
        click.echo(
            f"{report.void_pixels} pixel(s) with no data in the ortho (its nodata, mask or "
            "alpha band) are nodata 0 in the map, in no class"
        )
    if report.style is not None:
        click.echo(f"wrote {report.style} (QGIS style: 13 classes, 13 = other)")


def _s2_windows(
    inf: Any,
    image: Path | str,
    year: int | None,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> Any:
    """The S2 windows source of a U-T&T prediction, from the configured provider.

    Returns:
        The Sentinel-2 windows source (:func:`s2_windows_from_config`) over `image` for
        `year`.

    Raises:
        FlairPipelineError: `year` is not given.
    """
    from flair_pipeline.evaluation import extra_inputs as ex

    if year is None:
        raise FlairPipelineError("a U-T&T checkpoint needs --year (the Sentinel-2 year to fetch)")
    provider = _project(config_path, overrides).provider()
    return ex.s2_windows_from_config(inf, image, year, provider)


@cli.command("dvc-yaml")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("dvc.yaml"),
    show_default=True,
    help="File to write or check.",
)
@click.option("--check", is_flag=True, help="Fail if the file differs from a fresh generation.")
def dvc_yaml_cmd(out_path: Path, check: bool) -> None:
    """Generate dvc.yaml from the asset graph and flair_pipeline/orchestration/artifacts.py.

    \f

    Raises:
        FlairPipelineError: With ``--check``, the file is missing or out of date.
    """  # noqa: D301 (\f: click cuts --help there)
    from flair_pipeline.io import atomic_path
    from flair_pipeline.orchestration import dvc_yaml

    if check:
        problem = dvc_yaml.check(out_path)
        if problem:
            raise FlairPipelineError(problem)
        click.echo(f"{out_path} is up to date")
        return
    text = dvc_yaml.generate()
    with atomic_path(out_path) as tmp:
        tmp.write_text(text)
    click.echo(f"wrote {out_path}")


@cli.command("ui")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; a non-loopback one needs --expose.",
)
@click.option("--port", type=int, default=3000, show_default=True, help="Web server port.")
@click.option(
    "--expose",
    is_flag=True,
    help="Allow a non-loopback --host (e.g. 0.0.0.0): the UI has no authentication; "
    "put it behind an authenticating reverse proxy.",
)
def ui_cmd(host: str, port: int, expose: bool) -> None:
    """Dagster UI: `dg dev` (web server + daemon) on DAGSTER_HOME; a busy port is an error.

    Dagster OSS has no authentication: a --host other than a loopback address is refused
    unless --expose is given, and then a warning says what it opens.
    """
    from flair_pipeline.orchestration.ui import start_ui

    start_ui(host, port, expose=expose)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning project errors into one-line messages.

    Args:
        argv: The arguments; None: ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 1 after a project error, 130 when aborted, or a
        usage error's own code.
    """
    redaction.install()  # issue 15: no credential in any log line
    try:
        cli.main(args=argv, prog_name="flair-pipeline", standalone_mode=False)
    except FlairPipelineError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    finally:
        if os.environ.get(stage_times.ENV):  # set by `flair-pipeline demo` for DVC's stages
            click.echo(stage_times.usage_line(), err=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
