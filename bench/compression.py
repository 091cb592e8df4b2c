"""Benchmark: `dataset.compression` codecs on the same demo patches (IMG + MSK, 512 px).

Builds the first `--domains` domains of a `demo` raw world once with the pipeline's builders,
then, for each codec (none, deflate, zstd, lzw, as `compression_options` sets them: predictor
2, deflate at the IMG's zlevel 1), writes every IMG and MSK again with `write_geotiff` and reads
them back with rasterio. Figures per patch: bytes on disk, write and read CPU milliseconds of
this process (one core; CPU time, so a loaded machine does not inflate them).

    .venv/bin/python bench/compression.py --raw /tmp/demoraw
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import rasterio
from loader import demo_records  # bench/ is on sys.path when a bench script runs
from timing import timed

from flair_pipeline.dataset.patch_writers import COMPRESSIONS, IMG_ZLEVEL, compression_options
from flair_pipeline.io import write_geotiff
from flair_pipeline.synthetic.world import generate_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=None)
    ap.add_argument("--domains", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-codecs-") as tmp:
        tmp = Path(tmp)
        raw = args.raw
        if raw is None:
            generate_world(tmp / "raw", "demo", 0)
            raw = tmp / "raw"
        records = demo_records(
            raw_root=raw, out=tmp / "src", domains=args.domains, compression="none"
        )
        pairs = []
        for r in records:
            with rasterio.open(r.img) as a, rasterio.open(r.msk) as b:
                pairs.append((a.read(), a.profile, b.read(), b.profile))
        n = len(pairs)
        print(f"{n} demo patches of 512 px; per patch:")
        print(f"{'codec':<8} {'IMG KB':>8} {'MSK KB':>8} {'write ms':>9} {'read ms':>8}")
        for codec in COMPRESSIONS:
            out = tmp / codec
            out.mkdir()
            paths = []
            with timed() as w:
                for i, (img, ip, msk, mp) in enumerate(pairs):
                    a = write_geotiff(
                        out / f"IMG_{i}.tif",
                        array=img,
                        transform=ip["transform"],
                        crs=ip["crs"],
                        **compression_options(codec, zlevel=IMG_ZLEVEL),
                    )
                    b = write_geotiff(
                        out / f"MSK_{i}.tif",
                        array=msk,
                        transform=mp["transform"],
                        crs=mp["crs"],
                        **compression_options(codec),
                    )
                    paths.append((a, b))
            write_ms = 1000 * w.cpu_s / n
            with timed() as r:
                for a, b in paths:
                    with rasterio.open(a) as s, rasterio.open(b) as m:
                        s.read(), m.read(1)
            read_ms = 1000 * r.cpu_s / n
            img_kb = sum(a.stat().st_size for a, _ in paths) / n / 1024
            msk_kb = sum(b.stat().st_size for _, b in paths) / n / 1024
            print(f"{codec:<8} {img_kb:8.0f} {msk_kb:8.1f} {write_ms:9.1f} {read_ms:8.1f}")


if __name__ == "__main__":
    main()
