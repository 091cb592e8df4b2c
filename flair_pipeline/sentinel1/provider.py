"""The provider interface every Sentinel-1 source implements, and the series it returns.

A provider answers one question: for these zone grids (10 m EPSG:2154, the Sentinel-2
:class:`~flair_pipeline.sentinel2.provider.Grid`) and this time range, what are the VV/VH
backscatter series of each orbit direction? The answer has FLAIR-HUB's shapes for
``SENTINEL1-ASC_TS`` / ``SENTINEL1-DESC_TS``: two channels per date (IGNF/FLAIR-HUB 3d5693b,
``src/flair_hub/data/dataloader.py`` reshapes each series with ``reshape_sentinel(…,
chunk_size=2)``, ``configs/train/config_modalities.yaml`` selects channels ``[1, 2]``), in
the order VV, VH (docs/flair-release.md, FLAIR-HUB's data paper). Data are float32 T×2×H×W;
a pixel without a measurement is NaN. Which coefficient (σ0 or γ0), which units (linear or
dB) and every other decision are recorded per date in :attr:`S1Series.records`: FLAIR-HUB's
code does not state them, so this project never guesses them silently.
"""

from __future__ import annotations

import abc
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from flair_pipeline.errors import InputError
from flair_pipeline.progress import Progress
from flair_pipeline.sentinel2.provider import Grid

#: FLAIR-HUB's channel order of a Sentinel-1 date.
BANDS = ("VV", "VH")
Orbit = Literal["ascending", "descending"]
#: Orbit directions, as STAC's ``sat:orbit_state`` spells them.
ORBITS: tuple[Orbit, ...] = ("ascending", "descending")
#: The short code of each direction in file names (``SEN1-ASC``, FLAIR-HUB's ``SENTINEL1-ASC``).
ORBIT_CODES: dict[str, str] = {"ascending": "ASC", "descending": "DESC"}
Coefficient = Literal["sigma0", "gamma0"]
COEFFICIENTS: tuple[Coefficient, ...] = ("sigma0", "gamma0")
Units = Literal["linear", "dB"]
UNITS: tuple[Units, ...] = ("linear", "dB")
#: The keys every per-date record carries (products.json), in this order.
RECORD_KEYS = (
    "date",
    "provider",
    "product",
    "collection",
    "coefficient",
    "units",
    "orbit_state",
    "relative_orbit",
    "polarizations",
    "nodata",
    "border_noise_masked",
    "resampling",
)


def to_db(linear: np.ndarray) -> np.ndarray:
    """Backscatter in decibels, ``10·log10(linear)``; NaN where the input is NaN or <= 0.

    Args:
        linear: Backscatter in linear power units (any shape).

    Returns:
        float32 array of the same shape, in dB.
    """
    x = np.asarray(linear, dtype=np.float32)
    out = np.full(x.shape, np.nan, dtype=np.float32)
    ok = np.isfinite(x) & (x > 0)
    out[ok] = 10.0 * np.log10(x[ok])
    return out


def to_linear(db: np.ndarray) -> np.ndarray:
    """Backscatter in linear power units, ``10**(dB/10)``; NaN stays NaN.

    Args:
        db: Backscatter in decibels (any shape).

    Returns:
        float32 array of the same shape, linear power.
    """
    x = np.asarray(db, dtype=np.float32)
    out: np.ndarray = np.power(np.float32(10.0), x / np.float32(10.0)).astype(np.float32)
    return out


@dataclass
class S1Series:
    """One zone's series in one orbit direction."""

    grid: Grid
    orbit: Orbit
    data: np.ndarray  # (T, 2, H, W) float32, VV then VH, NaN = no measurement
    dates: list[dt.date]
    #: one record per date (keys :data:`RECORD_KEYS`), what was asked, delivered and converted
    records: list[dict[str, Any]]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item/product, why)

    def __post_init__(self) -> None:
        t = len(self.dates)
        h, w = self.grid.height, self.grid.width
        if self.orbit not in ORBITS:
            raise ValueError(f"orbit {self.orbit!r}: expected one of {ORBITS}")
        if self.data.shape != (t, len(BANDS), h, w) or self.data.dtype != np.float32:
            raise ValueError(
                f"data {self.data.shape} {self.data.dtype}: expected ({t}, 2, {h}, {w}) float32"
            )
        if len(self.records) != t:
            raise ValueError(f"{len(self.records)} records for {t} dates")
        if self.dates != sorted(self.dates):
            raise ValueError("dates must be sorted")
        for rec in self.records:
            missing = [k for k in RECORD_KEYS if k not in rec]
            if missing:
                raise ValueError(f"record {rec.get('product')!r} lacks {missing}")
        mixed = {(r["coefficient"], r["units"]) for r in self.records}
        if len(mixed) > 1:
            raise ValueError(f"one series mixes coefficients/units {sorted(mixed)}")


#: Per zone grid: per orbit direction asked, its series or the error saying why it has none.
ZoneResult = dict[str, "S1Series | InputError"]


class Sentinel1Provider(abc.ABC):
    """What every Sentinel-1 source implements, and what its callers may use.

    Subclasses set :attr:`name` and implement :meth:`fetch_each`; :meth:`fetch` and the cost
    accounting (:attr:`processing_units`) come from here.
    """

    #: the ``sentinel1.source.provider`` value that selects this provider ("stac", "sentinelhub")
    name: str = ""

    @abc.abstractmethod
    def fetch_each(
        self,
        grids: list[Grid],
        start: dt.date,
        end: dt.date,
        orbits: tuple[Orbit, ...] = ORBITS,
        *,
        progress: Progress | None = None,
    ) -> list[ZoneResult]:
        """One result per grid, in order: per orbit direction, its series or why it has none.

        Args:
            grids: 10 m EPSG:2154 grids (super-areas) to fill.
            start: first day of the range (inclusive).
            end: last day of the range (inclusive).
            orbits: the orbit directions wanted, each kept in its own series.
            progress: where to show the count of scenes (or requests) done, or None.

        Returns:
            Per grid, a dict orbit -> :class:`S1Series` (dates sorted, T >= 1) or the
            :class:`~flair_pipeline.errors.InputError` naming the grid and orbit when no date
            is usable there. Items that fail (one polarisation only, another coefficient,
            unreadable file) are listed in ``S1Series.skipped`` and left out.

        Raises:
            InputError: a failure that concerns every grid (empty range, catalogue or
                account unreachable, credentials refused).
        """

    def fetch(
        self,
        grids: list[Grid],
        start: dt.date,
        end: dt.date,
        orbits: tuple[Orbit, ...] = ORBITS,
    ) -> list[dict[str, S1Series]]:
        """Series for each grid and orbit between `start` and `end` (inclusive).

        Args:
            grids: 10 m EPSG:2154 grids to fill.
            start: first day (inclusive).
            end: last day (inclusive).
            orbits: the orbit directions wanted.

        Returns:
            Per grid, a dict orbit -> :class:`S1Series`.

        Raises:
            InputError: the first grid and orbit without a usable date, or a failure that
                concerns every grid.
        """
        out: list[dict[str, S1Series]] = []
        for result in self.fetch_each(grids, start, end, orbits):
            zone: dict[str, S1Series] = {}
            for orbit, series in result.items():
                if isinstance(series, InputError):
                    raise series
                zone[orbit] = series
            out.append(zone)
        return out

    @property
    def processing_units(self) -> float:
        """What this provider's requests have cost so far, in processing units (0.0 for STAC)."""
        return 0.0
