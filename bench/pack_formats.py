"""Benchmark: random-access read of one 512 px patch (IMG 5×512×512 + MSK 512×512 uint8)
from the candidate packed formats, per second of this process's CPU time (one core), page
cache warm: the measurement behind issue 18's choice of format.

* npy memmap: ``numpy.load(mmap_mode="r")`` of one N×5×H×W array, a row copied out;
* zarr (if importable): one chunk per patch, uncompressed and Blosc-zstd (level 1);
* GeoTIFF: the same pixels written as ZSTD + predictor 2 files (the FLAIR release's
  format) and read with rasterio, as the loader does without a pack.

    .venv/bin/python bench/pack_formats.py                 # zarr skipped if not installed
    PYTHONPATH=/tmp/zarrsite .venv/bin/python bench/pack_formats.py   # with a zarr install
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from flair_pipeline.io import write_geotiff


def patches(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth fields plus noise: closer to imagery's compressibility than white noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.empty((n, 5, size, size), np.uint8)
    for i in range(n):
        for b in range(5):
            f = 120 + 60 * np.sin(6 * xx + i + b) * np.cos(4 * yy - b)
            img[i, b] = np.clip(f + rng.normal(0, 12, f.shape), 0, 255)
    msk = (img[:, 0] // 20).astype(np.uint8)
    return img, msk


def rate(read, n: int, reps: int) -> float:
    order = np.random.default_rng(1).permutation(np.tile(np.arange(n), reps))
    for i in range(n):  # warm-up
        read(i)
    t0 = time.process_time()  # CPU time of this process: a loaded machine does not skew it
    for i in order:
        read(int(i))
    return len(order) / (time.process_time() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patches", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    n, size = args.patches, 512
    img, msk = patches(n, size)
    with tempfile.TemporaryDirectory(prefix="bench-formats-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "img.npy", img)
        np.save(tmp / "msk.npy", msk)
        mi, mm = np.load(tmp / "img.npy", mmap_mode="r"), np.load(tmp / "msk.npy", mmap_mode="r")
        res = {"npy memmap": rate(lambda i: (np.array(mi[i]), np.array(mm[i])), n, args.reps)}
        try:
            import zarr

            for name, comp in (("zarr raw", None), ("zarr blosc-zstd", "zstd")):
                kw = (
                    {}
                    if comp is None
                    else {"compressors": zarr.codecs.BloscCodec(cname=comp, clevel=1)}
                )
                zi = zarr.create_array(
                    tmp / f"{name}.img",
                    shape=img.shape,
                    dtype="uint8",
                    chunks=(1, 5, size, size),
                    **({"compressors": None} if comp is None else kw),
                )
                zm = zarr.create_array(
                    tmp / f"{name}.msk",
                    shape=msk.shape,
                    dtype="uint8",
                    chunks=(1, size, size),
                    **({"compressors": None} if comp is None else kw),
                )
                zi[:], zm[:] = img, msk
                res[name] = rate(lambda i, zi=zi, zm=zm: (zi[i], zm[i]), n, args.reps)
        except ImportError:
            print("zarr: not installed, skipped")
        tr = Affine(0.2, 0, 800000, 0, -0.2, 6500000)
        paths = []
        for i in range(n):
            a = write_geotiff(
                tmp / f"IMG_{i}.tif",
                array=img[i],
                transform=tr,
                crs="EPSG:2154",
                compress="zstd",
                predictor=2,
            )
            b = write_geotiff(
                tmp / f"MSK_{i}.tif",
                array=msk[i],
                transform=tr,
                crs="EPSG:2154",
                compress="zstd",
                predictor=2,
            )
            paths.append((a, b))

        def tif(i: int) -> None:
            with rasterio.open(paths[i][0]) as s, rasterio.open(paths[i][1]) as m:
                s.read(), m.read(1)

        res["GeoTIFF zstd (rasterio)"] = rate(tif, n, args.reps)
    for name, r in res.items():
        print(f"{name:<26} {r:8.0f} patches/s (IMG + MSK, one core)")


if __name__ == "__main__":
    main()
