"""A transcode cache of the JPEG 2000 dalles a build uses, as tiled GeoTIFFs.

A 512 px window of a 5000 px BD ORTHO dalle costs 30-120x the CPU of the same window from a
tiled GeoTIFF (docs/performance.md, "JPEG 2000 dalles"); decoding each used dalle once into a
tiled GeoTIFF pays off after about 60 windows of it. :func:`cached_products` swaps, in a
build's ortho products, every JPEG 2000 dalle whose footprint (from its header, no pixel read)
touches one of the given areas for a GeoTIFF copy under a cache folder: written atomically
(:func:`flair_pipeline.io.atomic_path`), reused while the dalle's size and modification time
are the ones its name records, replaced when they change. The copy is GDAL's CreateCopy
(same bands, georeferencing, nodata and mask), DEFLATE with predictor 2, 256 px tiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import rasterio
import rasterio.shutil

from flair_pipeline.geo.raster_vrt import Product, inspect
from flair_pipeline.io import atomic_path

Bounds = tuple[float, float, float, float]

#: JPEG 2000 file suffixes (lower case).
JP2_SUFFIXES = frozenset({".jp2", ".j2k", ".jpx"})
_GTIFF = {
    "driver": "GTiff",
    "TILED": "YES",
    "BLOCKXSIZE": "256",
    "BLOCKYSIZE": "256",
    "COMPRESS": "DEFLATE",
    "PREDICTOR": "2",
}


@dataclass
class CacheReport:
    """What :func:`cached_products` did: dalles transcoded now, and copies reused."""

    transcoded: list[Path] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)


def cache_name(dalle: Path) -> str:
    """The cache file name of `dalle`: its stem, size and modification time (ns).

    Args:
        dalle: A JPEG 2000 file.

    Returns:
        ``<stem>.<bytes>-<mtime_ns>.tif``.
    """
    st = dalle.stat()
    return f"{dalle.stem}.{st.st_size}-{st.st_mtime_ns}.tif"


def cached_products(
    products: Sequence[Product], areas: Sequence[Bounds] | None, cache_dir: Path
) -> tuple[list[Product], CacheReport]:
    """`products` with the JPEG 2000 dalles touching `areas` replaced by cached GeoTIFFs.

    Args:
        products: The ortho products of a domain.
        areas: (left, bottom, right, top) rectangles in the dalles' CRS; None: every dalle.
        cache_dir: The cache folder (created when needed).

    Returns:
        (the products, same order and bands, with those dalles swapped; the report).
    """
    report = CacheReport()
    out = []
    for prod in products:
        files = []
        for f in map(Path, prod.files):
            use = f.suffix.lower() in JP2_SUFFIXES and (
                areas is None or any(_overlaps(inspect(f, prod.crs).bounds, a) for a in areas)
            )
            files.append(_cached(f, cache_dir, report) if use else f)
        out.append(replace(prod, files=files))
    return out, report


def _cached(dalle: Path, cache_dir: Path, report: CacheReport) -> Path:
    """The GeoTIFF copy of `dalle`, transcoded unless a current one is there.

    Args:
        dalle: A JPEG 2000 file.
        cache_dir: The cache folder.
        report: Where the transcode or the reuse is counted.

    Returns:
        The copy's path.
    """
    target = cache_dir / cache_name(dalle)
    if target.exists():
        report.reused.append(target)
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    for stale in cache_dir.glob(f"{dalle.stem}.*-*.tif"):  # older copies of the same dalle
        stale.unlink(missing_ok=True)
    with atomic_path(target) as tmp, rasterio.open(dalle) as src:
        rasterio.shutil.copy(src, tmp, **_GTIFF)
    report.transcoded.append(target)
    return target


def _overlaps(a: Bounds, b: Bounds) -> bool:
    return a[0] < b[2] and a[2] > b[0] and a[1] < b[3] and a[3] > b[1]
