"""A surface model input (DSM or DTM) as delivered: one file or tiles, maybe without a CRS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SurfaceInput:
    """A DSM or DTM delivered as one file or tiles, maybe with no CRS inside (ESRI .asc).

    `crs` stands in for files that carry none (RGE ALTI .asc tiles); tiles must share one
    pixel grid (any resolution, any CRS, any half-pixel offset).
    """

    files: tuple[Path, ...]
    crs: str | None = None

    @property
    def name(self) -> str:
        """The file, or ``<folder>/*`` for tiles: how messages name this input."""
        return str(self.files[0]) if len(self.files) == 1 else f"{self.files[0].parent}/*"
