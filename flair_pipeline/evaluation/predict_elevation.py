"""The elevation band of prediction windows, read once per window row of a stripe.

Elevation (DSM − DTM resampled bilinearly onto the ortho's grid, as the IMG patches were
built: :class:`flair_pipeline.dataset.patch_writers.Elevation`) costs about ten times the
ortho's four bands when it is read window by window: every window re-reads and re-resamples
the DSM and DTM it shares with its neighbours, and each read pays GDAL's per-call setup.
:class:`ElevationRows` reads it once for a whole row of windows of a stripe (rows
``[r, r + patch)``, the columns of every window of the stripe) and cuts each window from
that row.

The values are those of the per-window read, bit for bit: a row is read in one piece only
when every window in it would take the direct path of the per-window read (same CRS, the
row's DSM and DTM pixels inside the rasters and free of nodata): that path is a bilinear
resampled read whose pixels do not depend on the window read
(``tests/evaluation/test_predict_elevation.py``). Any other row (a void, an edge of the
surface model, another CRS: GDAL's warper, whose result depends on the extent warped)
falls back to one read per window, as before. A row is dropped from memory once each of
its windows was cut, so memory holds the rows in flight, not the image.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from flair_pipeline.evaluation.raster_input import ElevationSource


@dataclass
class _Row:
    """One window row's elevation: computed once by the first thread that needs it."""

    left: int  # windows of the row not yet cut
    lock: threading.Lock = field(default_factory=threading.Lock)
    band: np.ndarray | None = None  # (patch, width) uint8, or None while not read
    per_window: bool = False  # the row cannot be read in one piece: windows one by one


class ElevationRows:
    """Elevation windows of one stripe, read a window row at a time (thread-safe).

    Args:
        elev: The DSM/DTM on the image grid (its reads are per thread).
        cols: Left columns of the stripe's windows, ascending: a row spans
            ``[cols[0], cols[-1] + patch)``.
        patch: The window side, image pixels.
    """

    def __init__(self, elev: ElevationSource, cols: Sequence[int], patch: int) -> None:
        if not cols:
            raise ValueError("a stripe has at least one window column")
        self.elev, self.patch = elev, patch
        self.c_lo, self.c_hi = cols[0], cols[-1] + patch
        self._n = len(cols)
        self._rows: dict[int, _Row] = {}
        self._lock = threading.Lock()
        #: rows read in one piece and rows read window by window (for the benchmark)
        self.rows_whole = 0
        self.rows_per_window = 0

    def window(self, row: int, col: int) -> np.ndarray:
        """(patch, patch) uint8 elevation of the window at (`row`, `col`).

        Args:
            row: The window's top row, image pixels (a row of the lattice).
            col: Its left column (one of the stripe's `cols`).

        Returns:
            uint8 (patch, patch), equal to ``elev.read(row, col, patch, patch)``.

        Raises:
            ValueError: `col` is outside the stripe's row.
        """
        p = self.patch
        if not self.c_lo <= col <= self.c_hi - p:
            raise ValueError(
                f"window column {col} is outside the stripe [{self.c_lo}, {self.c_hi})"
            )
        with self._lock:
            entry = self._rows.setdefault(row, _Row(left=self._n))
        with entry.lock:
            if entry.band is None and not entry.per_window:
                band = self.elev.read_direct(row, self.c_lo, p, self.c_hi - self.c_lo)
                if band is None:
                    entry.per_window = True
                    self.rows_per_window += 1
                else:
                    entry.band = band
                    self.rows_whole += 1
        if entry.band is not None:
            out = entry.band[:, col - self.c_lo : col - self.c_lo + p].copy()
        else:
            out = self.elev.read(row, col, p, p)
        with self._lock:
            entry.left -= 1
            if entry.left <= 0:
                self._rows.pop(row, None)
        return out

    def held(self) -> int:
        """Rows held in memory now (read, some window not cut yet).

        Returns:
            The number of rows held.
        """
        with self._lock:
            return len(self._rows)
