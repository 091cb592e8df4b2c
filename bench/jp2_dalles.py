"""Benchmark: 512 px windows from BD ORTHO-size JPEG 2000 dalles (issue 27 item 3).

IGN delivers BD ORTHO as dalles of 1 km at 0.2 m (5000 x 5000 px), one JPEG 2000 file for
RVB and one for IRC (NIR, R, G), named ``…-LA93-0M20-E080.jp2`` / ``…-IRC-E080.jp2``. This
writes one such dalle pair from the synthetic aerial renderer (``synthetic/aerial.py``, the
pixels the demo worlds carry) in four JPEG 2000 codestreams:

- ``lossless`` (OpenJPEG ``REVERSIBLE=YES``, 5/3 wavelet, the ``ign`` flavour's setting);
- ``lossy``, an assumed stand-in for IGN's profile: irreversible 9/7 wavelet at
  ``QUALITY=10`` (compressed to about 10 % of the raw bytes, i.e. 1:10). IGN publishes no
  codestream parameters for ``E080`` that this project could find (no real BD ORTHO dalle
  under 20 MB is public, ``../shared/real-samples/ign/SOURCES.md``); the ratio is the
  order of what the ortho dalles of IGN's département archives weigh (about 7-9 MB for a
  75 MB RVB dalle);

each with GDAL's default internal tiling (1024 x 1024 codestream tiles) and without
(``BLOCKXSIZE=BLOCKYSIZE=5000``: one codestream tile), and, as the baseline in the same run,
the same pixels as the ``plain`` flavour writes them (one 4-band GeoTIFF, DEFLATE with
predictor 2, 256 px tiles).

Reads: the same random 512 x 512 windows (RVB + IRC, as :class:`~flair_pipeline.dataset.
mosaic.Mosaic` reads a patch) with ``GDAL_NUM_THREADS`` = ``OPJ_NUM_THREADS`` = 1, 2 and
ALL_CPUS, in three cache states: ``cold`` (the files opened for each window: GDAL's block
cache holds nothing of them), ``open`` (opened once, each window read once: neighbouring
windows share decoded codestream tiles, as a build over one dalle does), ``warm`` (the same
windows read a second time). The OS page cache is warm in all three (the files were just
written). Then the transcode of the dalle pair into one tiled GeoTIFF (what a per-domain
cache would do) is timed, and windows read from it: its break-even in windows a dalle, set
against the windows a FLAIR-density build reads from a used dalle (``bench/departement.py``'s
``dalles:`` line), decided that the build has no such cache (docs/performance.md).

Figures are wall milliseconds per window (threads count) and CPU milliseconds (this
process, all threads), with ratios against the GeoTIFF baseline of the same run.

    .venv/bin/python bench/jp2_dalles.py --windows 24
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.transform import from_origin
from rasterio.windows import Window
from timing import Timing, timed  # bench/ is on sys.path when a bench script runs

from flair_pipeline.domains import DomainId
from flair_pipeline.io import write_geotiff
from flair_pipeline.synthetic.aerial import Radiometry, object_appearance, render_ortho
from flair_pipeline.synthetic.world import RES, Scenario, domain_landcover

PATCH = 512
CHUNK = 1000  # rendering strip (px): bounds the renderer's float intermediates
CODECS = {
    "lossless": {"REVERSIBLE": "YES", "QUALITY": "100", "YCBCR420": "NO"},
    "lossy": {"QUALITY": "10", "YCBCR420": "NO"},
}
TILINGS = {"tiled1024": {}, "untiled": "whole"}


def render(size: int, seed: int) -> np.ndarray:
    """RGBN uint8 (4, size, size) of one synthetic domain at 0.2 m.

    Args:
        size: The dalle's side in pixels.
        seed: The world's seed.

    Returns:
        The pixels.
    """
    sc = Scenario(
        name="jp2",
        domains=("D033_2021",),
        size_m=size * RES,
        tile_px=CHUNK,
        s2_margin_m=350.0,
        dates=(20, 114),
        nodata_corner_p=0.0,
    )
    domain = DomainId.parse("D033_2021")
    lc, bounds, _ = domain_landcover(domain, sc, seed)
    tree = shapely.STRtree(lc.geoms)
    rng = np.random.default_rng([seed, 3])
    app = object_appearance(lc, seed, RES)
    radiometry = Radiometry.draw(rng)
    out = np.zeros((4, size, size), dtype=np.uint8)
    step = CHUNK * RES
    for r in range(0, size, CHUNK):
        for c in range(0, size, CHUNK):
            tb = (
                bounds[0] + c * RES,
                bounds[3] - r * RES - step,
                bounds[0] + c * RES + step,
                bounds[3] - r * RES,
            )
            px = render_ortho(
                lc, tree, app,
                bounds=tb, origin=(bounds[0], bounds[3]), res=RES, radiometry=radiometry,
                seed=seed, shift=(0.1, -0.2),
            )  # fmt: skip
            out[:, r : r + CHUNK, c : c + CHUNK] = px[:, : size - r, : size - c]
    return out


def write_jp2(path: Path, arr: np.ndarray, opts: dict[str, str], *, whole: bool) -> None:
    """One 3-band JPEG 2000 dalle, Lambert-93, 0.2 m.

    Args:
        path: The file written.
        arr: (3, H, W) uint8.
        opts: Creation options of the codec.
        whole: One codestream tile for the whole image (else GDAL's 1024 px tiles).
    """
    extra = {"BLOCKXSIZE": str(arr.shape[2]), "BLOCKYSIZE": str(arr.shape[1])} if whole else {}
    with rasterio.open(
        path,
        "w",
        driver="JP2OpenJPEG",
        width=arr.shape[2],
        height=arr.shape[1],
        count=3,
        dtype="uint8",
        crs="EPSG:2154",
        transform=from_origin(500000.0, 6400000.0, RES, RES),
        **opts,
        **extra,
    ) as dst:
        dst.write(arr)


def read_windows(
    paths: list[Path], windows: list[Window], *, threads: str, state: str
) -> tuple[Timing, int]:
    """Read every window from every file of `paths`; return the timing and a checksum.

    Args:
        paths: The files of one variant (RVB + IRC, or one GeoTIFF).
        windows: The windows.
        threads: ``GDAL_NUM_THREADS`` / ``OPJ_NUM_THREADS``.
        state: ``cold``, ``open`` or ``warm`` (see the module docstring).

    Returns:
        (timing of the measured pass, sum of the pixels read).
    """
    total = 0
    with rasterio.Env(GDAL_NUM_THREADS=threads, OPJ_NUM_THREADS=threads):
        if state == "cold":
            with timed() as t:
                for w in windows:
                    for p in paths:
                        with rasterio.open(p) as src:
                            total += int(src.read(window=w).sum(dtype=np.int64))
            return t, total
        srcs = [rasterio.open(p) for p in paths]
        try:
            if state == "warm":
                for w in windows:
                    for s in srcs:
                        s.read(window=w)
            with timed() as t:
                for w in windows:
                    for s in srcs:
                        total += int(s.read(window=w).sum(dtype=np.int64))
        finally:
            for s in srcs:
                s.close()
    return t, total


def transcode(rvb: Path, irc: Path, out: Path) -> None:
    """The dalle pair as one 4-band tiled GeoTIFF (R, G, B, NIR), as the plain flavour.

    Args:
        rvb: The RVB dalle.
        irc: The IRC dalle (NIR, R, G).
        out: The GeoTIFF written.
    """
    with rasterio.open(rvb) as a, rasterio.open(irc) as b:
        arr = np.concatenate([a.read(), b.read(1)[None]])
        transform = a.transform
    write_geotiff(out, arr, transform=transform, crs="EPSG:2154", tiled=True, predictor=2)


def _ms(t: Timing, n: int) -> str:
    return f"{1000 * t.wall_s / n:8.1f} ms wall {1000 * t.cpu_s / n:8.1f} ms cpu"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=5000, help="dalle side, px (IGN: 5000)")
    ap.add_argument("--windows", type=int, default=24)
    ap.add_argument("--threads", default="1,2,ALL_CPUS")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=None, help="keep the files here (reused)")
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()} (shared with other jobs: wall figures are contended)")
    with tempfile.TemporaryDirectory(prefix="bench-jp2-") as tmp:
        d = args.dir or Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        npy = d / f"pixels-{args.size}-{args.seed}.npy"
        if npy.exists():
            img = np.load(npy)
        else:
            with timed() as t:
                img = render(args.size, args.seed)
            np.save(npy, img)
            print(f"rendered {args.size} px: {t.wall_s:.1f} s")
        raw_mb = img[:3].nbytes / 1e6
        variants: dict[str, list[Path]] = {}
        gtiff = d / "plain.tif"
        with timed() as t:
            write_geotiff(
                gtiff, img, transform=from_origin(500000.0, 6400000.0, RES, RES),
                crs="EPSG:2154", tiled=True, predictor=2,
            )  # fmt: skip
        print(
            f"gtiff      write {t.cpu_s:6.1f} s cpu  {gtiff.stat().st_size / 1e6:6.1f} MB (4 bands)"
        )
        variants["gtiff"] = [gtiff]
        for codec, opts in CODECS.items():
            for tiling, how in TILINGS.items():
                name = f"{codec}-{tiling}"
                paths = [d / f"{name}-RVB.jp2", d / f"{name}-IRC.jp2"]
                with timed() as t:
                    for p, bands in zip(paths, ([0, 1, 2], [3, 0, 1]), strict=True):
                        if not p.exists():
                            write_jp2(p, img[bands], opts, whole=how == "whole")
                mb = paths[0].stat().st_size / 1e6
                print(
                    f"{name:18s} write {t.cpu_s:6.1f} s cpu (2 files)  RVB {mb:6.1f} MB "
                    f"(1:{raw_mb / mb:.1f})"
                )
                variants[name] = paths
        rng = np.random.default_rng(args.seed)
        wins = [
            Window(int(c), int(r), PATCH, PATCH)
            for c, r in rng.integers(0, args.size - PATCH, (args.windows, 2))
        ]
        n = len(wins)
        base: dict[tuple[str, str], float] = {}
        for state in ("cold", "open", "warm"):
            for threads in args.threads.split(","):
                sums = {}
                for name, paths in variants.items():
                    t, sums[name] = read_windows(paths, wins, threads=threads, state=state)
                    if name == "gtiff":
                        base[(state, threads)] = t.wall_s
                    ratio = t.wall_s / base[(state, threads)]
                    print(
                        f"{state:5s} threads={threads:8s} {name:18s} {_ms(t, n)}  "
                        f"x{ratio:6.1f} vs gtiff"
                    )
        rvb, irc = variants["lossy-tiled1024"]
        cache = d / "cache.tif"
        reads: Callable[[str], tuple[Timing, int]] = lambda s: read_windows(  # noqa: E731
            [cache], wins, threads="1", state=s
        )
        with timed() as t:
            transcode(rvb, irc, cache)
        print(f"transcode lossy-tiled1024 dalle pair -> tiled GeoTIFF: {t.wall_s:.1f} s wall "
              f"{t.cpu_s:.1f} s cpu per dalle")  # fmt: skip
        for state in ("cold", "open"):
            tc, _ = reads(state)
            tj, _ = read_windows([rvb, irc], wins, threads="1", state=state)
            print(
                f"after transcode {state:5s}: {n / tc.wall_s:7.1f} windows/s vs "
                f"{n / tj.wall_s:6.1f} from the JP2 (x{tj.wall_s / tc.wall_s:.1f}); "
                f"transcode pays off after {t.wall_s / max(tj.wall_s / n - tc.wall_s / n, 1e-9):.0f}"
                " windows"
            )


if __name__ == "__main__":
    main()
