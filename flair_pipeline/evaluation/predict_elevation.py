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
(``tests/evaluation/test_predict_elevation.py``). When the whole row cannot, its span
between the first and the last window is tried (a DSM/DTM covering the image exactly
has no margin at the image's left and right edges), the edge windows read on their own.
Any other row (a void, the top or bottom edge of the surface model, another CRS: GDAL's
warper, whose result depends on the extent warped) falls back to one read per window,
as before. A row is dropped from memory once each of
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
    band: np.ndarray | None = None  # (patch, hi - lo) uint8, or None while not read
    lo: int = 0  # image columns [lo, hi) of `band`
    hi: int = 0
    read: bool = False  # tried: `band` is what could be read in one piece (or None)


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
        # the interior span starts at the second window and ends with the last but one
        self._first_step = cols[1] - cols[0] if len(cols) > 1 else 0
        self._last_step = cols[-1] - cols[-2] if len(cols) > 1 else 0
        self._rows: dict[int, _Row] = {}
        self._lock = threading.Lock()
        #: rows read in one piece (whole or inside the edge windows), and rows read window
        #: by window (for the tests and the benchmark)
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
            if not entry.read:
                self._read_row(entry, row)
        if entry.band is not None and entry.lo <= col and col + p <= entry.hi:
            out = entry.band[:, col - entry.lo : col - entry.lo + p].copy()
        else:
            out = self.elev.read(row, col, p, p)
        with self._lock:
            entry.left -= 1
            if entry.left <= 0:
                self._rows.pop(row, None)
        return out

    def _read_row(self, entry: _Row, row: int) -> None:
        """Read the row in one piece: whole, else without its first and last windows.

        A DSM/DTM that covers the image exactly (IGN's tiles, the synthetic world) has no
        pixel of margin at the image's left and right edges: there the first and last
        windows are read on their own and the row between them in one piece.
        """
        p, spans = self.patch, [(self.c_lo, self.c_hi)]
        if self._n > 2:
            spans.append((self.c_lo + self._first_step, self.c_hi - self._last_step))
        for lo, hi in spans:
            band = self.elev.read_direct(row, lo, p, hi - lo)
            if band is not None:
                entry.band, entry.lo, entry.hi = band, lo, hi
                self.rows_whole += 1
                break
        else:
            self.rows_per_window += 1
        entry.read = True

    def held(self) -> int:
        """Rows held in memory now (read, some window not cut yet).

        Returns:
            The number of rows held.
        """
        with self._lock:
            return len(self._rows)
