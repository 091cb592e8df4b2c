"""Writing artifacts safely: temp name, then rename.

A crash, a full disk or a bad input must never leave a half-written IMG, MSK or array that
a later stage would take for complete (DESIGN §6). Every writer goes through
:func:`atomic_path`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_geotiff(
    path: str | Path,
    array: np.ndarray,
    transform: Any,
    crs: Any,
    *,
    nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
    colormap: Mapping[int, tuple[int, int, int, int]] | None = None,
    **options: Any,
) -> Path:
    """Write a (bands, H, W) or (H, W) array as a compressed GeoTIFF, atomically."""
    arr = array if array.ndim == 3 else array[None]
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": arr.shape[0],
        "dtype": arr.dtype.name,
        "crs": crs,
        "transform": transform,
        "compress": "deflate",
        "nodata": nodata,
    }
    if (
        arr.shape[1] >= 256
        and arr.shape[2] >= 256
        and arr.shape[1] % 16 == 0
        and arr.shape[2] % 16 == 0
    ):
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    profile.update(options)
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(arr)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)
        if colormap is not None:
            dst.write_colormap(1, dict(colormap))
    return Path(path)
