"""A surface model input (DSM or DTM) as delivered: one file or tiles, maybe without a CRS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SurfaceInput:
    """A DSM or DTM delivered as one file or tiles, maybe with no CRS inside (ESRI .asc).

    `crs` stands in for files that carry none (RGE ALTI .asc tiles); tiles must share one
    pixel grid (any resolution, any CRS, any half-pixel offset). A file may be a location
    GDAL reads in place (a ``/vsis3/…`` or ``/vsicurl/…`` string, see
    :func:`flair_pipeline.storage.gdal_path`).
    """

    files: tuple[Path | str, ...]
    crs: str | None = None

    @property
    def name(self) -> str:
        """The file, or ``<folder>/*`` for tiles: how messages name this input."""
        if len(self.files) == 1:
            return str(self.files[0])
        return f"{str(self.files[0]).rsplit('/', 1)[0]}/*"
