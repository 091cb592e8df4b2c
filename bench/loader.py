"""Benchmark: training loader images/s per core at 512 px, GeoTIFF path vs packed input.

On the same patches, in one run and one process (one core: loader in the main process,
torch and GDAL on one thread), it times what a training step's input costs on the CPU:
the dataset sample (IMG + MSK decoded from GeoTIFF with rasterio, or sliced from the
packed memory-mapped arrays), collation of a batch of `--batch-size` and FLAIR's
augmentation (flips, quarter turns) of the batch. Two sets of patches:

* demo: the `demo` synthetic world's first `--domains` domains built with the pipeline's
  own builders (`build_aerial_patches`, `build_label_masks`, `dataset.compression` as
  `--compression`), 25 patches of 512 px a domain;
* real: the five real FLAIR patches of ../shared/real-samples/flair (ZSTD, as released),
  skipped with a message when that folder is absent.

Each path makes one warm-up pass (page cache, first map), then `--epochs` timed passes in
shuffled order; img/s/core is images per second of this process's CPU time (the wall-clock
rate is printed beside it: on a shared machine it also counts other jobs' turns). The packed
path yields uint8 IMG and MSK (training casts on the device), the GeoTIFF path float32 IMG
and int64 MSK, each as training reads it. The last line is the figure of issue 18 (targets: ratio >= 5x and packed
>= 400 img/s/core), over all patches of both sets:

    .venv/bin/python bench/loader.py                    # generates the demo world (~1 min)
    .venv/bin/python bench/loader.py --raw /tmp/demoraw # an existing `demo` raw world
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
from timing import timed  # bench/ is on sys.path when a bench script runs
from torch.utils.data import DataLoader

from flair_pipeline.config import PipelineConfig
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.patch_writers import (
    DEFAULT_COMPRESSION,
    build_aerial_patches,
    build_label_masks,
)
from flair_pipeline.dataset.rasterize import read_labels
from flair_pipeline.dataset.sampling import sample_patches
from flair_pipeline.project import Project
from flair_pipeline.synthetic.world import generate_world
from flair_pipeline.training.augment import augment_batch
from flair_pipeline.training.packing import pack_records
from flair_pipeline.training.records import PatchRecord
from flair_pipeline.training.samples import PackedDataset, PatchDataset, collate

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "flair"


def demo_records(*, raw_root: Path, out: Path, domains: int, compression: str) -> list[PatchRecord]:
    """Build the first `domains` demo domains' IMG and MSK; their records (split train)."""
    settings = {
        "paths": {"raw": str(raw_root), "dataset": str(out)},
        "sampling": {"patch_size": 512, "strategy": "grid"},
    }
    project = Project.of(PipelineConfig.model_validate(settings), Path.cwd())
    raw, layout, cfg = project.raw, project.dataset, project.config.sampling
    records = []
    for domain in sorted(p.name for p in (raw_root / "domains").iterdir())[:domains]:
        labels = read_labels(raw.labels(domain))
        with Mosaic(raw.ortho_dir(domain)) as mosaic:
            grid, _ = sample_patches(domain=domain, mosaic=mosaic, labels=labels, cfg=cfg)
        img = build_aerial_patches(
            grid,
            ortho_dir=raw.ortho_dir(domain),
            dsm=raw.dsm(domain),
            dtm=raw.dtm(domain),
            layout=layout,
            patch_size=512,
            elevation_scale=cfg.elevation_scale,
            compression=compression,
        )
        msk = build_label_masks(
            grid,
            labels_path=raw.labels(domain),
            layout=layout,
            patch_size=512,
            res=cfg.resolution,
            compression=compression,
        )
        skipped = {p for p, _ in img.skipped} | {p for p, _ in msk.skipped}
        for row in grid.itertuples():
            if row.patch_id not in skipped:
                records.append(
                    PatchRecord(
                        patch_id=row.patch_id,
                        domain=domain,
                        zone=row.zone,
                        split="train",
                        img=layout.img(domain, row.zone, row.patch_id),
                        msk=layout.msk(domain, row.zone, row.patch_id),
                    )
                )
    return records


def real_records() -> list[PatchRecord]:
    """The real FLAIR patches in the release layout (IMG under *aerial*, MSK under *labels*)."""
    records = []
    for img in sorted(REAL.glob("flair*_aerial*/*/*/img/IMG_*.tif")):
        rel = img.relative_to(REAL)
        msk_dir = REAL / rel.parts[0].replace("aerial", "labels") / Path(*rel.parts[1:-2]) / "msk"
        msk = msk_dir / img.name.replace("IMG_", "MSK_")
        domain, zone = rel.parts[1], rel.parts[2]
        records.append(
            PatchRecord(
                patch_id=img.stem[4:], domain=domain, zone=zone, split="train", img=img, msk=msk
            )
        )
    return records


def images_per_s(ds, batch: int, epochs: int) -> tuple[float, float]:
    """(images per CPU-second, images per wall-second) through DataLoader (main process),
    collate and augmentation. Per core = per second of this process's CPU time, which a
    loaded machine does not distort (wall time then counts other jobs' turns)."""
    dl = DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        num_workers=0,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(0),
    )
    gen = torch.Generator().manual_seed(0)
    for b in dl:  # warm-up: page cache, memory maps
        augment_batch(b, gen)
    seen = 0
    with timed() as t:
        for _ in range(epochs):
            for b in dl:
                augment_batch(b, gen)
                seen += b["img"].shape[0]
    return seen / t.cpu_s, seen / t.wall_s


def measure(*, name: str, records: list[PatchRecord], pack_dir: Path, args) -> tuple[float, float]:
    """(packed, geotiff) images/s of one set, printed."""
    pack = pack_records(records, pack_dir, pack_dir.parent)
    folder = pack.root / "train"
    tiff, tiff_wall = images_per_s(PatchDataset(records), args.batch_size, args.epochs)
    packed, packed_wall = images_per_s(PackedDataset(folder, records), args.batch_size, args.epochs)
    codec = _codec(records[0].img)
    print(
        f"{name}: {len(records)} patches of 512 px ({codec} GeoTIFF), batch "
        f"{args.batch_size}, {args.epochs} epochs: packed {packed:.0f} img/s/core "
        f"({packed_wall:.0f} wall), geotiff {tiff:.0f} img/s/core ({tiff_wall:.0f} wall), "
        f"ratio {packed / tiff:.1f}x"
    )
    return packed, tiff


def _codec(path: Path) -> str:
    import rasterio

    with rasterio.open(path) as src:
        return str(src.profile.get("compress", "none")).upper()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--raw", type=Path, default=None, help="existing demo raw world")
    ap.add_argument(
        "--domains", type=int, default=2, help="demo domains to build (25 patches each)"
    )
    ap.add_argument(
        "--compression", default=DEFAULT_COMPRESSION, choices=("none", "deflate", "zstd", "lzw")
    )
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("GDAL_NUM_THREADS", "1")
    load = os.getloadavg()[0]
    print(f"one process, torch threads 1, load average {load:.1f} on {os.cpu_count()} CPUs")
    totals = {"packed": 0.0, "geotiff": 0.0}  # seconds per image, summed over images
    n_all = 0
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        tmp = Path(tmp)
        raw = args.raw
        if raw is None:
            generate_world(tmp / "raw", "demo", 0)
            raw = tmp / "raw"
        sets = [
            (
                "demo",
                demo_records(
                    raw_root=raw,
                    out=tmp / "demo",
                    domains=args.domains,
                    compression=args.compression,
                ),
            )
        ]
        real = real_records() if REAL.is_dir() else []
        if real:
            sets.append(("real FLAIR", real))
        else:
            print(f"real FLAIR: skipped ({REAL} absent)")
        for name, recs in sets:
            packed, tiff = measure(
                name=name,
                records=recs,
                pack_dir=tmp / f"pack-{name.split()[0]}" / "packed",
                args=args,
            )
            totals["packed"] += len(recs) / packed
            totals["geotiff"] += len(recs) / tiff
            n_all += len(recs)
    p, g = n_all / totals["packed"], n_all / totals["geotiff"]
    print(f"loader: packed {p:.0f} img/s/core, geotiff {g:.0f} img/s/core, ratio {p / g:.1f}x")


if __name__ == "__main__":
    main()
