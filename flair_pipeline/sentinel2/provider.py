"""The provider interface every Sentinel-2 source implements, and the grid it fills.

A provider answers one question: for these footprints (EPSG:2154 bounds) and this time
range, what are the L2A series on a 10 m EPSG:2154 grid? The answer has FLAIR's shapes:
data T×10×H×W uint16 (reflectance × 10000, L2A offset removed; bands B02 B03 B04 B05 B06
B07 B08 B8A B11 B12, 20 m bands up-sampled by nearest neighbour), masks T×2×H×W uint8
(SNW, CLD probabilities 0..100), one date and one product name per acquisition. Asking
for several footprints at once lets a provider open each scene (or send each request) once
for all of them, not once per patch.
"""

from __future__ import annotations

import abc
import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine

from flair_pipeline.errors import InputError
from flair_pipeline.progress import Progress

#: FLAIR band order (FLAIR band numbers 1..10).
BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
#: Earth Search `sentinel-2-c1-l2a` asset key of each band, and of the two masks.
STAC_ASSETS = (
    "blue",
    "green",
    "red",
    "rededge1",
    "rededge2",
    "rededge3",
    "nir",
    "nir08",
    "swir16",
    "swir22",
)
MASKS = ("SNW", "CLD")
STAC_MASK_ASSETS = ("snow", "cloud")
RES = 10.0
CRS = "EPSG:2154"


@dataclass(frozen=True)
class Grid:
    """A 10 m EPSG:2154 pixel grid: the footprint of one super-area."""

    left: float
    top: float
    width: int
    height: int

    @classmethod
    def around(cls, bounds: tuple[float, float, float, float]) -> Grid:
        """The smallest 10 m-aligned grid covering `bounds`.

        Args:
            bounds: (left, bottom, right, top) in EPSG:2154, metres.

        Returns:
            The grid whose edges are `bounds` rounded outwards to multiples of 10 m.
        """
        x0, y0, x1, y1 = bounds
        left, top = math.floor(x0 / RES) * RES, math.ceil(y1 / RES) * RES
        right, bottom = math.ceil(x1 / RES) * RES, math.floor(y0 / RES) * RES
        return cls(left, top, round((right - left) / RES), round((top - bottom) / RES))

    @property
    def transform(self) -> Affine:
        """The grid's north-up affine transform (10 m pixels, origin at `left`, `top`)."""
        return Affine(RES, 0.0, self.left, 0.0, -RES, self.top)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of the grid in its CRS, metres."""
        return (self.left, self.top - RES * self.height, self.left + RES * self.width, self.top)

    def rowcol(self, x: float, y: float) -> tuple[int, int]:
        """Row and column of the pixel holding point (x, y).

        Args:
            x: Easting in the grid's CRS (EPSG:2154), metres.
            y: Northing in the grid's CRS, metres.

        Returns:
            (row, col), 0-based from the top-left pixel; not clipped to the grid.
        """
        return int((self.top - y) // RES), int((x - self.left) // RES)


@dataclass
class TimeSeries:
    """One footprint's series, in FLAIR's layout."""

    grid: Grid
    data: np.ndarray  # (T, 10, H, W) uint16
    masks: np.ndarray  # (T, 2, H, W) uint8
    dates: list[dt.date]
    products: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (product, why)
    #: decisions taken per date (offset rule, mask source…), written next to products.txt
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = len(self.dates)
        h, w = self.grid.height, self.grid.width
        if self.data.shape != (t, len(BANDS), h, w) or self.data.dtype != np.uint16:
            raise ValueError(
                f"data {self.data.shape} {self.data.dtype}: expected ({t}, 10, {h}, {w}) uint16"
            )
        if self.masks.shape != (t, 2, h, w) or self.masks.dtype != np.uint8:
            raise ValueError(
                f"masks {self.masks.shape} {self.masks.dtype}: expected ({t}, 2, {h}, {w}) uint8"
            )
        if len(self.products) != t:
            raise ValueError(f"{len(self.products)} products for {t} dates")


class Sentinel2Provider(abc.ABC):
    """What every Sentinel-2 source implements, and what its callers may use.

    Subclasses set :attr:`name` and implement :meth:`fetch_each`; :meth:`fetch` and the
    cost accounting (:attr:`processing_units`) come from here, so that callers (the
    ``sentinel2_series`` asset, prediction with S2 inputs) never probe a provider's type.
    """

    #: the ``sentinel2.provider`` value that selects this provider ("stac", "sentinelhub")
    name: str = ""

    @abc.abstractmethod
    def fetch_each(
        self,
        grids: list[Grid],
        start: dt.date,
        end: dt.date,
        *,
        progress: Progress | None = None,
    ) -> list[TimeSeries | InputError]:
        """One result per grid, in order: its series or the error saying why it has none.

        Args:
            grids: 10 m EPSG:2154 grids (super-areas) to fill.
            start: first day of the range (inclusive).
            end: last day of the range (inclusive).
            progress: where to show the count of scenes (or requests) done, or None.

        Returns:
            Per grid, a :class:`TimeSeries` (dates sorted, T >= 1; data T×10×H×W uint16,
            masks T×2×H×W uint8) or the :class:`~flair_pipeline.errors.InputError` naming the
            grid when no date is usable there. Dates that fail (missing asset, unreadable
            file) are listed in ``TimeSeries.skipped`` and left out.

        Raises:
            InputError: a failure that concerns every grid (empty range, catalogue or
                account unreachable, credentials refused).
        """

    def fetch(self, grids: list[Grid], start: dt.date, end: dt.date) -> list[TimeSeries]:
        """Series for each grid between `start` and `end` (inclusive), sorted by date.

        Args:
            grids: 10 m EPSG:2154 grids to fill.
            start: first day (inclusive).
            end: last day (inclusive).

        Returns:
            One :class:`TimeSeries` per grid, in order.

        Raises:
            InputError: the first grid without a usable date (see :meth:`fetch_each`), or a
                failure that concerns every grid.
        """
        out: list[TimeSeries] = []
        for result in self.fetch_each(grids, start, end):
            if isinstance(result, InputError):
                raise result
            out.append(result)
        return out

    @property
    def processing_units(self) -> float:
        """What this provider's requests have cost so far, in processing units.

        The unit is the service's (Sentinel Hub PU); 0.0 for sources that do not charge
        (STAC).
        """
        return 0.0
