"""The ``departement`` world's domain written as IGN delivers it: one file a dalle.

The ``departement`` scenario (:mod:`flair_pipeline.synthetic.departement`) keeps a few
distinct dalles on disk behind one mosaic VRT per product, so that 6,000 km² fit in a few
GB. A delivery read in place from object storage (docs/inputs.md) is a folder of dalle
files instead: here each product's VRT is cut into its dalles, one tiled GeoTIFF each
(IGN's naming: ``<dept>-<year>-<x km>-<y km>-LA93-0M20-<product>.tif``), the DSM and DTM
into one GeoTIFF each, with the labels and a ``domain.yaml`` naming them by glob. Used by
the in-place tests and ``bench/raw_in_place.py``; the pixels are the VRT's, unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import rasterio
import yaml
from rasterio.windows import Window

#: Products of the ``departement`` world: (VRT name, folder and suffix of its dalle files,
#: bands mapped as in its domain.yaml).
PRODUCTS = (
    ("49-2022-LA93-0M20-E080.vrt", "rvb", {"R": 1, "G": 2, "B": 3}),
    ("49-2022-LA93-0M20-IRC-E080.vrt", "irc", {"NIR": 1}),
)


def _cut(vrt: Path, out: Path, dalle_px: int, block: int, product: str) -> int:
    """Write each dalle of a mosaic VRT as a tiled DEFLATE GeoTIFF; the number written.

    Args:
        vrt: The product's mosaic VRT.
        out: The folder written.
        dalle_px: A dalle's side in pixels (the VRT is a whole number of dalles).
        block: The GeoTIFF's internal tile side in pixels.
        product: The product's name in the file names (``rvb``, ``irc``).

    Returns:
        The dalle files written.
    """
    out.mkdir(parents=True)
    n = 0
    with rasterio.open(vrt) as src:
        for row in range(src.height // dalle_px):
            for col in range(src.width // dalle_px):
                w = Window(col * dalle_px, row * dalle_px, dalle_px, dalle_px)
                t = src.window_transform(w)
                name = f"49-2022-{t.c / 1000:08.3f}-{t.f / 1000:08.3f}-LA93-0M20-{product}.tif"
                profile: dict[str, Any] = {
                    **src.profile,
                    "driver": "GTiff",
                    "width": dalle_px,
                    "height": dalle_px,
                    "transform": t,
                    "tiled": True,
                    "blockxsize": block,
                    "blockysize": block,
                    "compress": "deflate",
                }
                with rasterio.open(out / name, "w", **profile) as dst:
                    dst.write(src.read(window=w))
                n += 1
    return n


def _whole(vrt: Path, out: Path) -> None:
    """A DSM or DTM VRT as one tiled DEFLATE GeoTIFF.

    Args:
        vrt: The surface's VRT.
        out: The GeoTIFF written.
    """
    with rasterio.open(vrt) as src:
        profile = {**src.profile, "driver": "GTiff", "tiled": True, "compress": "deflate"}
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(src.read())


def write_dalle_delivery(src: Path, out: Path, dalle_px: int, block: int = 128) -> int:
    """Write a ``departement`` domain folder as a delivery of dalle files.

    Args:
        src: A domain folder written by
            :func:`~flair_pipeline.synthetic.departement.generate_departement`.
        out: The domain folder written (must not exist).
        dalle_px: The world's dalle side in pixels (its ``dalle_px``).
        block: The dalle files' internal tile side in pixels.

    Returns:
        The dalle files written, all products together.
    """
    spec = yaml.safe_load((src / "domain.yaml").read_text())
    out.mkdir(parents=True)
    n = 0
    ortho = []
    for vrt, product, bands in PRODUCTS:
        n += _cut(src / "ortho" / vrt, out / "ortho" / product, dalle_px, block, product)
        ortho.append({"name": product, "glob": f"ortho/{product}/*.tif", "bands": bands})
    (out / "dem").mkdir()
    _whole(src / "dem" / "dsm.vrt", out / "dem" / "dsm.tif")
    _whole(src / "dem" / "dtm.vrt", out / "dem" / "dtm.tif")
    shutil.copy(src / "labels.gpkg", out / "labels.gpkg")
    spec.update(ortho=ortho, dsm={"glob": "dem/dsm.tif"}, dtm={"glob": "dem/dtm.tif"})
    (out / "domain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return n
