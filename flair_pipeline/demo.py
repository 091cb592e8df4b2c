"""`flair-pipeline demo`: the pipeline through `dvc repro`, then the comparison table.

The demo's recipe is params.yaml itself (the CPU recipe, minutes on 2 cores); nothing
here detects hardware or overrides a value, so the results are those of the recipe in
force, on any machine. `dvc repro` runs every stage of dvc.yaml (each a
``flair-pipeline materialize`` of the same Dagster assets, on the persistent instance,
so the runs show in the UI) and leaves dvc.lock; a second demo is a no-op.
The last stage, ``demo_map`` (:func:`write_maps`), maps the first test domain.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from flair_pipeline import layout, stage_times
from flair_pipeline.config import PipelineConfig
from flair_pipeline.dvc_tool import DvcError, dvc_env, dvc_executable
from flair_pipeline.io import atomic_path
from flair_pipeline.progress import Progress


def run_demo(repo: Path, cfg: PipelineConfig, log: Callable[[str], None] = print) -> str:
    """Run ``dvc repro`` in `repo`, then return the text to print.

    ``dvc repro`` in `repo` (DVC's output streams to the terminal), then the text to
    print: the comparison table and the demo maps. `log` also gets the time of each stage
    that ran (:func:`repro_timed`).

    Args:
        repo: The DVC repository (dvc.yaml, params.yaml).
        cfg: Its configuration (``paths.eval`` locates the comparison and maps summary).
        log: Where the repro time and the per-stage time table go.

    Returns:
        A blank line, the comparison table (``comparison.md``) and, when written, the maps
        summary (``maps/maps.md``) and the FLAIR-HUB model's test mIoU, joined by newlines.

    Raises:
        DvcError: DVC is missing or ``dvc repro`` failed (from :func:`repro_timed`).
    """
    start = time.perf_counter()
    stages = repro_timed(repo)
    log(f"dvc repro done in {time.perf_counter() - start:.1f} s")
    if stages:
        log("time per stage (issue 17):\n" + stage_times.format_table(stages))
    ev = repo / cfg.paths.eval
    parts = ["", layout.comparison(ev).read_text()]
    summary = layout.MAPS_SUMMARY.under(ev)
    if summary.is_file():
        parts.append(summary.read_text())
    hub = layout.METRICS.under(ev, model=layout.HUB_MODEL)  # stage evaluation_hub (issue 24)
    if hub.is_file():
        m = json.loads(hub.read_text())
        parts.append(
            f"FLAIR-HUB model (params.yaml hub.train; {', '.join(m['tasks'])}): test mIoU "
            f"{100 * m['miou']:.1f} on {m['patches']} patches ({hub})"
        )
    return "\n".join(parts)


def _to_terminal(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


def repro_timed(
    repo: Path, echo: Callable[[str], None] = _to_terminal
) -> list[stage_times.StageTime]:
    """``dvc repro`` in `repo`, timing each stage that runs.

    DVC's stdout and stderr (its stages' output included) are read as one stream and
    passed to `echo` line by line as they come. The stages run with
    ``FLAIR_STAGE_TIMES=1``, so each ``flair-pipeline`` process reports its own wall and
    CPU seconds (see :mod:`flair_pipeline.stage_times`).

    Args:
        repo: the DVC repository (dvc.yaml, params.yaml).
        echo: where each output line goes (the terminal by default).

    Returns:
        One :class:`~flair_pipeline.stage_times.StageTime` per stage run, in run order
        (empty when everything was up to date).

    Raises:
        DvcError: DVC is missing or ``dvc repro`` failed (its last ERROR line quoted).
    """
    clock = stage_times.StageClock()
    tail: list[str] = []
    env = {**dvc_env(), stage_times.ENV: "1"}
    with subprocess.Popen(
        [dvc_executable(), "repro"],
        cwd=repo,
        env=env,
        text=True,
        bufsize=1,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            echo(line)
            clock.feed(line)
            tail = [*tail[-49:], line]
    if proc.returncode != 0:
        last = next((ln for ln in reversed(tail) if "ERROR" in ln), tail[-1] if tail else "")
        raise DvcError(
            f"`dvc repro` in {repo} failed (exit {proc.returncode})"
            + (f": {last.strip()}" if last.strip() else "; see DVC's output above")
        )
    return clock.finish()


def write_maps(cfg: PipelineConfig, progress: Progress | None = None) -> str:
    """The ``demo_map`` stage: map the first test domain with each trained model.

    The ``demo_map`` stage: map the first test domain with each trained model into
    ``<paths.eval>/maps`` (GeoTIFFs of merged codes 1..13, nodata 0 where the ortho holds
    no data, the ortho's grid and CRS, each with its 13-class ``.qml`` style) and write
    ``maps.md`` listing them with their count of void pixels (no timings, so reruns write
    identical files); return the lines with timings for the terminal.

    Args:
        cfg: The pipeline's configuration (paths, eval settings).
        progress: Where to show the count of windows predicted for each map, or None.

    Returns:
        One line a map: where it went, its area, its void pixels and the time it took.
    """
    out_dir = layout.maps_dir(Path(cfg.paths.eval))
    lines, timed = [], []
    for domain, label, out, km2, void, seconds in _map_first_test_domain(cfg, out_dir, progress):
        lines.append(f"map of {domain} ({label}): {out} ({km2:.2f} km², {_void(void)})")
        timed.append(
            f"map of {domain} ({label}): {out} ({km2:.2f} km², {_void(void)}, {seconds:.1f} s)"
        )
    with atomic_path(layout.MAPS_SUMMARY.under(Path(cfg.paths.eval))) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return "\n".join(timed)


def map_first_test_domain(cfg: PipelineConfig) -> str:
    """Map the first test domain with each trained model; return the text to print.

    The maps go into ``<paths.eval>/maps``; the text is the comparison table and where the
    maps went (with timings).

    Args:
        cfg: The pipeline's configuration, its roots absolute.

    Returns:
        A blank line, the comparison table, then one line a map: its path, area (km²), void
        pixels and seconds taken. No map line for a model without a ``best`` checkpoint.
    """
    lines = ["", layout.comparison(Path(cfg.paths.eval)).read_text()]
    maps = layout.maps_dir(Path(cfg.paths.eval))
    for domain, label, out, km2, void, seconds in _map_first_test_domain(cfg, maps):
        lines.append(
            f"map of {domain} ({label}): {out} ({km2:.2f} km², {_void(void)}, {seconds:.1f} s)"
        )
    return "\n".join(lines)


def _void(pixels: int) -> str:
    """How much of a map is nodata because the ortho holds no data there (issue 29).

    Returns:
        "<pixels> px of no ortho data: nodata 0".
    """
    return f"{pixels} px of no ortho data: nodata 0"


def _map_first_test_domain(
    cfg: PipelineConfig, out_dir: Path, progress: Progress | None = None
) -> list[tuple[str, str, Path, float, int, float]]:
    """(domain, model label, map path, km², void pixels, seconds) for each trained model.

    U-T&T maps too (its Sentinel-2 windows come from the configured provider for the
    domain's year), because its map is the one that tells crops from grassland. `cfg`
    comes from the CLI's :class:`~flair_pipeline.project.Project`: its roots are absolute.
    A raw or dataset root that is a URL (``s3://``, ``https://``, ``/vsis3/``,
    ``/vsicurl/``) is read by fetching the test domain's ortho tiles, DSM and DTM (and
    ``splits.csv``) only (:mod:`flair_pipeline.evaluation.predict_inputs`).

    Returns:
        One tuple per trained model whose ``best`` checkpoint exists, in :data:`TRAINED`
        order: the first test domain (sorted by name), the model's label, the GeoTIFF
        written under `out_dir`, the mapped area in km², the count of void (nodata 0)
        pixels and the wall seconds of the prediction.
    """
    from flair_pipeline.dataset.splits import read_splits
    from flair_pipeline.domains import DomainId
    from flair_pipeline.evaluation.extra_inputs import s2_windows_from_config
    from flair_pipeline.evaluation.predict_config import PredictConfig
    from flair_pipeline.evaluation.predict_inputs import domain_map_inputs, splits_file
    from flair_pipeline.model_registry import TRAINED, get_model
    from flair_pipeline.project import Project
    from flair_pipeline.training.checkpoint import load_inference

    with splits_file(cfg.paths.dataset) as splits_csv:
        splits = read_splits(splits_csv)
    domain = next(d for d, s in sorted(splits.items()) if s == "test")
    done = []
    models = []
    for spec in TRAINED:
        ckpt = layout.ModelFiles.of(Path(cfg.paths.models), spec.folder).best
        if ckpt.is_file():
            inf = load_inference(ckpt)
            models.append((spec, inf, get_model(inf.name).needs_s2))
    s2 = any(needs for *_, needs in models) and _reads_raw_archive(cfg)
    # a URL root: the domain's ortho, DSM, DTM (and the raw Sentinel-2 archive) fetched
    with domain_map_inputs(cfg.paths.raw, domain, sentinel2=s2) as inputs:
        paths = cfg.paths.model_copy(update={"raw": str(inputs.raw)})
        local = cfg.model_copy(update={"paths": paths})
        for spec, inf, needs_s2 in models:
            extra = None
            if needs_s2:
                year = DomainId.parse(domain).year
                provider = Project.of(local, Path.cwd()).provider()  # roots already absolute
                extra = s2_windows_from_config(inf, inputs.ortho, year, provider)
            out = layout.map_path(out_dir, domain, spec.folder)
            predictor = PredictConfig.for_checkpoint(inf, cfg.eval).build(inf.model, extra)
            report = predictor.map(
                inputs.ortho,
                out,
                dsm=inputs.dsm,
                dtm=inputs.dtm,
                progress=progress.within(spec.label) if progress else None,
            )
            done.append((domain, spec.label, out, report.km2, report.void_pixels, report.seconds))
    return done


def _reads_raw_archive(cfg: PipelineConfig) -> bool:
    """Whether Sentinel-2 comes from the raw root's own archive (a STAC source naming none).

    Returns:
        True for a STAC source with neither a catalog nor an API URL.
    """
    from flair_pipeline.config import StacSource

    src = cfg.sentinel2.source
    return isinstance(src, StacSource) and not src.catalog and not src.api_url
