"""`flair-pipeline`: the command-line front door.

Every command takes ``--config FILE`` (default ``./params.yaml``) and repeatable
``--set key.sub=value`` overrides, and calls the same core functions the Dagster assets
call. Errors a user can fix are printed as one clear message with exit code 1, no
traceback.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from flair_pipeline.config import PipelineConfig, dump_config, load_config
from flair_pipeline.errors import FlairPipelineError


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--config`` and ``--set`` to a command and pass the loaded config as `cfg`."""
    func = click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE",
        help="Override a config value, e.g. --set synth.seed=3 (repeatable).",
    )(func)  # fmt: skip
    func = click.option(
        "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
        default=None, help="Config file (default: ./params.yaml if present).",
    )(func)  # fmt: skip
    return func


def _load(config_path: Path | None, overrides: tuple[str, ...]) -> PipelineConfig:
    return load_config(config_path, overrides)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flair-pipeline")
def cli() -> None:
    """Build a FLAIR-style land-cover dataset and train the FLAIR baselines."""


@cli.command("config")
@config_options
def config_cmd(config_path: Path | None, overrides: tuple[str, ...]) -> None:
    """Print the resolved configuration (params.yaml + overrides) as YAML."""
    click.echo(dump_config(_load(config_path, overrides)), nl=False)


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Raw data root to write (default: paths.raw).")  # fmt: skip
@click.option("--scenario", default=None, help="tiny, demo or bench (default: synth.scenario).")
@click.option("--seed", type=int, default=None, help="Random seed (default: synth.seed).")
@config_options
def synth(
    out: Path | None,
    scenario: str | None,
    seed: int | None,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Generate the synthetic world's raw inputs (mosaics, DSM/DTM, labels, Sentinel-2)."""
    extra = list(overrides)
    if scenario is not None:
        extra.append(f"synth.scenario={scenario}")
    if seed is not None:
        extra.append(f"synth.seed={seed}")
    cfg = _load(config_path, tuple(extra))
    _run_synth(cfg, out or Path(cfg.paths.raw))


def _run_synth(cfg: PipelineConfig, out: Path) -> None:
    from flair_pipeline.sources.synthetic import SCENARIOS, format_summary, generate_world

    n = len(SCENARIOS[cfg.synth.scenario].domains)
    start = time.perf_counter()
    done = [0]

    def progress(domain: str) -> None:
        done[0] += 1
        click.echo(f"[{done[0]}/{n}] generating {domain}", err=True)

    summary = generate_world(out, cfg.synth.scenario, cfg.synth.seed, progress=progress)
    click.echo(format_summary(summary))
    click.echo(f"\ndone in {time.perf_counter() - start:.1f} s")


@cli.command()
@config_options
def demo(config_path: Path | None, overrides: tuple[str, ...]) -> None:
    """Run the pipeline on the embedded default: the `demo` synthetic world, then the dataset."""
    overrides = ("synth.scenario=demo", *overrides)
    cfg = _load(config_path, overrides)
    _run_synth(cfg, Path(cfg.paths.raw))
    _run_materialize("all", (), config_path, overrides)


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
@config_options
def materialize_cmd(
    selection: str,
    partitions: tuple[str, ...],
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Materialize assets in process on the persistent Dagster instance (shows in the UI)."""
    _run_materialize(selection, partitions, config_path, overrides)


def _run_materialize(
    selection: str,
    partitions: tuple[str, ...],
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    from flair_pipeline.defs.resources import FlairConfig
    from flair_pipeline.defs.run import materialize

    _load(config_path, overrides)  # validate before starting any run
    flair = FlairConfig(config_path=str(config_path or "params.yaml"), overrides=list(overrides))
    start = time.perf_counter()
    summary = materialize(selection, partitions, flair, log=lambda m: click.echo(m, err=True))
    click.echo(f"{len(summary.runs)} run(s) succeeded in {time.perf_counter() - start:.1f} s")


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
def rasterize_labels_cmd(labels_path: Path, like_path: Path, out_path: Path) -> None:
    """Rasterize a label layer onto the grid of an existing image (pixel-centre rule)."""
    from flair_pipeline.dataset.rasterize import rasterize_like

    try:
        out = rasterize_like(labels_path, like_path, out_path)
    except OSError as exc:
        raise FlairPipelineError(f"{out_path}: cannot write ({exc.strerror or exc})") from None
    click.echo(f"wrote {out}")


@cli.command("import-flair")
@click.argument("release_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_csv",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Manifest CSV to write (one row per patch).",
)
def import_flair_cmd(release_dir: Path, out_csv: Path) -> None:
    """Index an official FLAIR #1/#2 release folder into a training manifest."""
    from flair_pipeline.sources.flair_release import format_report, index_release, write_manifest

    index = index_release(release_dir, progress=True)
    write_manifest(index, out_csv)
    click.echo(format_report(index))
    click.echo(f"wrote {out_csv} ({len(index.rows)} patches)")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning project errors into one-line messages."""
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
