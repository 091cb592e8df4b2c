"""Study (issue 25 item 4): does Sentinel-1 help, on the synthetic world, over a few seeds?

Builds a small synthetic world (``generate_world``, scenario ``tiny``: 3 domains; 128 px
patches at 0.2 m in 120 m zones, 32 a domain at most, by default) with the project's own
functions, as the assets do: patches and labels, Sentinel-2 series, Sentinel-1 series
(ascending and descending, from the synthetic RTC archive), crop labels from the
synthetic RPG; splits; then the FLAIR-HUB export (``export_flair_hub``) indexed as
``import-flair-hub`` does. On that release it trains and scores (``train_hub`` /
``evaluate_hub``, test split) the FLAIR-HUB model, small (resnet18, small U-TAEs,
aerial-size inputs downsampled 4x), for each seed:

(a) land cover (``AERIAL_LABEL-COSIA``): ``SENTINEL2_TS`` only vs ``SENTINEL2_TS`` +
    ``SENTINEL1-ASC_TS`` + ``SENTINEL1-DESC_TS``; per-class IoU, with, per class, the share
    of its test pixels' Sentinel-2 dates that IGN's cloud/snow filter (the training
    default: cloud or snow > 1 on > 5 % of the patch) drops. The synthetic world draws
    clouds per domain and date, not per class (``synthetic/sentinel2.py`` ``render_scene``:
    45 % of dates clear, 30 % 5-60 % cover, 25 % 60-100 %): a class is "cloudy" here when its
    pixels lose more of their dates than the test split's average pixel;
(b) crop type (``ALL_LABEL-LPIS`` level 1): ``AERIAL_RGBI`` only vs ``SENTINEL2_TS`` +
    both Sentinel-1 series; the LPIS background class weighted 0.2 in the loss.

Each zone's patches are split in row-major order (half train, a quarter validation, a
quarter test, :func:`row_split`), not by the world's one-domain-per-split split. The world
is fixed (seed 0); the seeds are the training seeds. Prints one table (mean ± sd
over seeds) in Markdown, the lines ``docs/results.md`` holds. On CPU, a few minutes a seed:

    PYTHONPATH=$PWD .venv/bin/python bench/s1_study.py --seeds 3 --epochs 25
    PYTHONPATH=$PWD .venv/bin/python bench/s1_study.py --seeds 1 --epochs 1 \
        --patch-size 64 --zone 60 --patches 12                            # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import yaml

from flair_pipeline.config import load_config
from flair_pipeline.dataset.assemble import assemble_splits
from flair_pipeline.dataset.build import build_domain_patches
from flair_pipeline.dataset.crop_step import build_domain_crop_labels
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.evaluation.hub_eval import evaluate_hub
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.release.flair_hub_export import export_flair_hub
from flair_pipeline.sentinel1.build import build_domain_s1_series
from flair_pipeline.sentinel1.factory import build_s1_provider
from flair_pipeline.sentinel2.build import build_domain_series, merge_centroids
from flair_pipeline.sentinel2.factory import build_provider
from flair_pipeline.sources.flair_hub import (
    HubRecord,
    index_hub,
    read_hub_manifest,
    write_hub_manifest,
)
from flair_pipeline.synthetic.world import generate_world
from flair_pipeline.training.hub_config import HubTrainConfig
from flair_pipeline.training.hub_train import train_hub

S2, S1 = "SENTINEL2_TS", ("SENTINEL1-ASC_TS", "SENTINEL1-DESC_TS")
COSIA, LPIS = "AERIAL_LABEL-COSIA", "ALL_LABEL-LPIS"
#: The runs: name -> (task, inputs).
RUNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "lc S2": (COSIA, (S2,)),
    "lc S2+S1": (COSIA, (S2, *S1)),
    "crop aerial": (LPIS, ("AERIAL_RGBI",)),
    "crop S2+S1": (LPIS, (S2, *S1)),
}
#: The tasks' settings: LPIS background (class 22, most pixels) weighted 0.2 in the loss, so
#: that a few epochs on a few patches do not settle on "background everywhere".
TASKS: dict[str, dict[str, Any]] = {COSIA: {}, LPIS: {"class_weights": [1.0] * 22 + [0.2]}}
SMALL: dict[str, Any] = {
    "encoder": "resnet18",
    "utae": {
        "encoder_widths": [16, 16],
        "decoder_widths": [16, 16],
        "out_conv": [16, 19],
        "d_model": 32,
        "n_head": 4,
    },
    "batch_size": 4,
    "lr": 0.003,
    "scheduler": "none",
    "downsample": 4,
    "num_workers": 0,
}


def build_release(work: Path, sampling: dict[str, int], raw_root: Path | None = None) -> Path:
    """Generate the world, build every domain as the assets do, and export it.

    Args:
        work: The study's folder (``raw``, ``dataset``, ``FLAIR-HUB``, ``hub.csv``).
        sampling: params.yaml's ``sampling`` (patch size, zone size, patches per domain).
        raw_root: A world generated already (read only), or None to generate ``tiny``.

    Returns:
        The FLAIR-HUB release folder.
    """
    if raw_root is None:
        raw_root = work / "raw"
        generate_world(raw_root, "tiny", 0)
    params = work / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "paths": {k: str(work / k) for k in ("dataset", "models", "eval")}
                | {"raw": str(raw_root)},
                "sampling": sampling,
            }
        )
    )
    cfg = load_config(params)
    raw, dataset = RawLayout(raw_root), DatasetLayout(work / "dataset")
    s2 = build_provider(cfg.sentinel2.source, raw.sentinel2_catalog())
    s1 = build_s1_provider(cfg.sentinel1, raw.sentinel1_catalog())
    for domain in sorted(p.name for p in (raw_root / "domains").iterdir()):
        ctx = DomainContext.open(domain, raw=raw, dataset=dataset, cfg=cfg)
        build_domain_patches(ctx)
        build_domain_series(domain, raw=raw, dataset=dataset, cfg=cfg, provider=s2)
        build_domain_s1_series(domain, raw=raw, dataset=dataset, cfg=cfg, provider=s1)
        build_domain_crop_labels(ctx)
    assert assemble_splits(dataset, cfg.split, raw).passed
    merge_centroids(dataset)
    export_flair_hub(dataset.root, work / "FLAIR-HUB", name="S1STUDY")
    return work / "FLAIR-HUB"


def row_split(records: list[HubRecord]) -> list[HubRecord]:
    """Split each zone's patches in row-major order: first half train, a quarter validation,
    the last quarter test (on a 4 × 4 zone: rows 0-1, row 2, row 3).

    The tiny world's own split puts one domain in each split, and its test domain's sampled
    patches hold two land-cover classes and no crop. A split within zones puts every
    domain's classes on every side (neighbouring rows share the Sentinel pixels on their
    border: a mild leak, the same for every run compared).

    Args:
        records: The manifest's records.

    Returns:
        The same records, ``split`` and ``split_source`` replaced.
    """
    roles = ("train", "train", "validation", "test")
    out = []
    for area in sorted({r.area for r in records}):
        zone = sorted((r for r in records if r.area == area), key=lambda r: (r.row, r.col))
        out += [
            dataclasses.replace(
                r, split=roles[min(3, 4 * i // len(zone))], split_source="s1_study row split"
            )
            for i, r in enumerate(zone)
        ]
    return out


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def cloud_share(records: list[HubRecord], config: HubTrainConfig) -> dict[int, float]:
    """Per COSIA class: the share of its test pixels' S2 dates IGN's filter drops.

    A date is dropped when more than ``filter_sentinel2_max_frac_cover`` of the patch has
    cloud (or snow) probability above the maximum, as the training filter does.

    Args:
        records: The manifest's records.
        config: The filter's settings.

    Returns:
        Class -> dropped dates / dates, weighted by the class's pixels.
    """
    lost: dict[int, float] = {}
    total: dict[int, float] = {}
    for r in records:
        if r.split != "test" or S2 not in r.paths or COSIA not in r.paths:
            continue
        sc = _read(Path(r.paths["SENTINEL2_MSK-SC"]))
        sc = sc.reshape(sc.shape[0] // 2, 2, *sc.shape[1:])
        snow = (sc[:, 0] > config.filter_sentinel2_max_snow).mean(axis=(1, 2))
        cloud = (sc[:, 1] > config.filter_sentinel2_max_cloud).mean(axis=(1, 2))
        frac = config.filter_sentinel2_max_frac_cover
        dropped = float(((cloud > frac) | (snow > frac)).mean())
        label = _read(Path(r.paths[COSIA]))[0]
        for c, n in zip(*np.unique(label, return_counts=True), strict=True):
            if c == 255:
                continue
            lost[int(c)] = lost.get(int(c), 0.0) + dropped * int(n)
            total[int(c)] = total.get(int(c), 0.0) + int(n)
    return {c: lost[c] / total[c] for c in sorted(total)}


def run_seed(manifest: Path, out: Path, *, seed: int, epochs: int) -> dict[str, dict[str, Any]]:
    """Train and score every run of :data:`RUNS` with one seed.

    Args:
        manifest: The manifest CSV.
        out: Where the models go.
        seed: The training seed.
        epochs: Epochs per run.

    Returns:
        Run name -> its task's scores on the test split (``evaluate_hub``).
    """
    records = read_hub_manifest(manifest)
    scores = {}
    for name, (task, inputs) in RUNS.items():
        cfg = HubTrainConfig.model_validate(
            SMALL
            | {"inputs": list(inputs), "tasks": {task: TASKS[task]}, "epochs": epochs, "seed": seed}
        )
        report = train_hub(manifest, cfg, out / f"{name.replace(' ', '_')}_{seed}", progress=False)
        scores[name] = evaluate_hub(report.best_checkpoint, records, "test")["tasks"][task]
    return scores


def _ms(values: list[float]) -> str:
    pct = [100 * v for v in values]
    sd = statistics.stdev(pct) if len(pct) > 1 else 0.0
    return f"{statistics.mean(pct):.1f} ± {sd:.1f}"


def _miou(
    results: list[dict[str, dict[str, Any]]], run: str, names: list[str] | None = None
) -> list[float]:
    """Per seed, the mean IoU of `run` over `names` (default: the classes in the test split)."""
    out = []
    for r in results:
        per = r[run]["per_class"]
        keep = names if names is not None else [n for n, s in per.items() if s["support"] > 0]
        out.append(statistics.mean(per[n]["iou"] for n in keep))
    return out


def table(results: list[dict[str, dict[str, Any]]], clouds: dict[str, float]) -> list[str]:
    """The Markdown table: mean ± sd over seeds of each comparison's figures.

    Args:
        results: Per seed, :func:`run_seed`'s scores.
        clouds: COSIA class name -> share of its test S2 dates dropped.

    Returns:
        The table's lines: header, one ``lc`` row per scored class with its cloud share
        (``cloudy`` marked), ``lc mIoU``, ``lc mIoU cloudy classes``, ``crop mIoU``,
        ``crop OA``.
    """
    mean_cloud = statistics.mean(clouds.values()) if clouds else 0.0
    rows = [
        "| figure (test split) | dates dropped | without S1 | with S1 |",
        "|---|---|---|---|",
    ]

    def row(label: str, share: str = "", *, a: list[float], b: list[float]) -> None:
        rows.append(f"| {label} | {share} | {_ms(a)} | {_ms(b)} |")

    lc_classes = sorted(  # the classes present in the test split (support > 0)
        (
            n
            for n, s in results[0]["lc S2"]["per_class"].items()
            if s["support"] > 0 and n in clouds
        ),
        key=lambda n: -clouds.get(n, 0.0),
    )
    cloudy = [n for n in lc_classes if clouds.get(n, 0.0) > mean_cloud]
    for n in lc_classes:
        mark = " (cloudy)" if n in cloudy else ""
        row(
            f"lc IoU {n}{mark}",
            f"{100 * clouds[n]:.0f} %",
            a=[r["lc S2"]["per_class"][n]["iou"] for r in results],
            b=[r["lc S2+S1"]["per_class"][n]["iou"] for r in results],
        )
    lc = ("lc S2", "lc S2+S1")
    row("lc mIoU (classes in test)", a=_miou(results, lc[0]), b=_miou(results, lc[1]))
    if cloudy:
        row(
            "lc mIoU cloudy classes",
            a=_miou(results, lc[0], cloudy),
            b=_miou(results, lc[1], cloudy),
        )
    rows.append("| crop (LPIS L1): aerial only vs S2 + S1 | | aerial | S2+S1 |")
    crop = ("crop aerial", "crop S2+S1")
    row("crop mIoU (classes in test)", a=_miou(results, crop[0]), b=_miou(results, crop[1]))
    row(
        "crop OA",
        a=[r[crop[0]]["overall_accuracy"] for r in results],
        b=[r[crop[1]]["overall_accuracy"] for r in results],
    )
    return rows


def main() -> None:
    """Parse the arguments, build, train and score, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--patch-size", type=int, default=128, help="px at 0.2 m")
    ap.add_argument("--zone", type=int, default=120, help="zone side, m")
    ap.add_argument("--patches", type=int, default=32, help="patches per domain at most")
    ap.add_argument("--raw", type=Path, default=None, help="a generated world to use")
    ap.add_argument(
        "--work", type=Path, default=None, help="keep the files here (a release there is reused)"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        manifest = work / "hub.csv"
        if not (work / "FLAIR-HUB").is_dir():  # --work of an earlier run: its release reused
            sampling = {
                "patch_size": args.patch_size,
                "zone_size_m": args.zone,
                "max_patches_per_domain": args.patches,
            }
            build_release(work, sampling, args.raw)
        index = index_hub(work / "FLAIR-HUB", check_size=False)  # not 512 px: as hub_manifest
        index.records = row_split(index.records)
        write_hub_manifest(index, manifest)
        t_build = time.perf_counter() - t0
        records = read_hub_manifest(manifest)
        splits = {k: sum(r.split == k for r in records) for k in ("train", "validation", "test")}
        names = HubTrainConfig().class_names(COSIA)
        shares = cloud_share(records, HubTrainConfig())
        clouds = {names[c]: s for c, s in shares.items() if c < len(names)}
        results = [
            run_seed(manifest, work / "models", seed=seed, epochs=args.epochs)
            for seed in range(args.seeds)
        ]
    lines = table(results, clouds)
    print("\n".join(lines))
    print("patches: " + ", ".join(f"{k} {v}" for k, v in splits.items()))
    print(
        f"seeds {args.seeds}, epochs {args.epochs}, {args.patch_size} px patches: build "
        f"{t_build:.0f} s, total {time.perf_counter() - t0:.0f} s"
    )
    if args.work:
        (args.work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
