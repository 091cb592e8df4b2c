"""The Sentinel-1 stage of one domain: a series per zone and orbit direction, and its checks.

:func:`build_domain_s1_series` fetches VV/VH backscatter over each zone's super-area (the
Sentinel-2 one, :func:`flair_pipeline.sentinel2.series.super_areas`) for each orbit
direction asked, and writes ``SEN1-<ASC|DESC>_sp_*`` files (:mod:`.series`). A zone whose
series cannot be fetched in one of the directions asked writes nothing and is named in
``failed_zones``; the other zones are written; no zone at all is an error.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from flair_pipeline.config import PipelineConfig
from flair_pipeline.dataset.sampling import read_patch_grid
from flair_pipeline.domains import DomainId
from flair_pipeline.errors import InputError
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.progress import Progress
from flair_pipeline.reports import JSON, StageReport
from flair_pipeline.sentinel1.provider import BANDS, ORBIT_CODES, S1Series, Sentinel1Provider
from flair_pipeline.sentinel1.series import write_s1_series
from flair_pipeline.sentinel2.series import super_areas
from flair_pipeline.sources.domain_spec import resolve


@dataclass(frozen=True)
class S1SeriesReport(StageReport):
    """A domain's Sentinel-1 series, per zone and orbit; check s1_series_valid."""

    domain: str
    provider: str
    #: "<zone>/<ASC|DESC>" -> number of dates written
    dates_per_zone: dict[str, int]
    failed_zones: tuple[str, ...] = ()  # "<zone>: <why>"
    skipped_dates: tuple[str, ...] = ()  # "<zone>/<ASC|DESC> <item>: <why>"
    processing_units: float = 0.0
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def as_metadata(self) -> dict[str, JSON]:
        """Zones written and failed, dates per zone and orbit (plain values).

        Returns:
            A JSON-serialisable dict: ``zones`` (int), ``failed_zones``, ``dates_per_zone``,
            ``skipped_dates`` (the first 50), ``provider``, ``processing_units``.
        """
        return {
            "zones": len({k.split("/")[0] for k in self.dates_per_zone}),
            "failed_zones": list(self.failed_zones),
            "dates_per_zone": dict(self.dates_per_zone),
            "skipped_dates": list(self.skipped_dates[:50]),
            "provider": self.provider,
            "processing_units": self.processing_units,
        }


def check_s1_series(written: dict[str, S1Series], start: dt.date, end: dt.date) -> list[str]:
    """``s1_series_valid``: dates in range, 2 bands float32, some finite backscatter.

    Args:
        written: The series written, by ``"<zone>/<ASC|DESC>"``.
        start: First date asked.
        end: Last date asked.

    Returns:
        One line per problem found (empty: valid).
    """
    bad = []
    for key, s in written.items():
        if s.data.shape[1] != len(BANDS) or s.data.dtype != np.float32:
            bad.append(f"{key}: data {s.data.shape} {s.data.dtype}, expected T×2×H×W float32")
        if any(not start <= d <= end for d in s.dates):
            bad.append(f"{key}: dates outside {start}..{end}")
        if not np.isfinite(s.data).any():
            bad.append(f"{key}: no finite backscatter value")
    return bad


def build_domain_s1_series(
    domain: str,
    raw: RawLayout,
    dataset: DatasetLayout,
    cfg: PipelineConfig,
    provider: Sentinel1Provider,
    *,
    progress: Progress | None = None,
) -> S1SeriesReport:
    """Fetch and write the Sentinel-1 series of each zone of a domain, per orbit direction.

    Args:
        domain: A domain id such as ``D006_2020``; its year (domain.json's ``year``, else
            the id's) sets the default range.
        raw: The raw data root (domain facts).
        dataset: The dataset root (read: patch grid; written: ``sentinel/<domain>/*/sen1``).
        cfg: The configuration (``sentinel1``; ``sentinel2.window``/``max_size`` for the grids).
        provider: A Sentinel-1 provider (:func:`flair_pipeline.sentinel1.factory.build_s1_provider`).
        progress: Where to show the provider's count, or None.

    Returns:
        The :class:`S1SeriesReport`; a zone the provider failed on (in any orbit asked) is a
        ``failed_zones`` entry and has no file.

    Raises:
        InputError: No zone got its series (every zone's reason named), a super-area larger
            than ``sentinel2.max_size``, an unusable input.
    """
    inputs = resolve(raw.domain(domain))
    year = int(inputs.info.get("year") or DomainId.parse(domain).year)
    s1 = cfg.sentinel1
    start, end = s1.start or dt.date(year, 1, 1), s1.end or dt.date(year, 12, 31)
    areas = super_areas(
        read_patch_grid(dataset.patch_grid(domain)), cfg.sentinel2.window, cfg.sentinel2.max_size
    )
    grids = [a.grid for a in areas]
    if progress is None:
        results = provider.fetch_each(grids, start, end, s1.orbits)
    else:
        results = provider.fetch_each(
            grids, start, end, s1.orbits, progress=progress.within(domain)
        )
    failed: list[str] = []
    written: dict[str, S1Series] = {}
    skipped: list[str] = []
    for area, res in zip(areas, results, strict=True):
        errors = [f"{o}: {e}" for o, e in res.items() if isinstance(e, Exception)]
        if errors:  # nothing of this zone is written: its series would be half
            failed.append(f"{area.zone}: " + "; ".join(errors))
            continue
        for orbit, series in res.items():
            assert isinstance(series, S1Series)
            key = f"{area.zone}/{ORBIT_CODES[orbit]}"
            write_s1_series(dataset, area, series)
            written[key] = series
            skipped += [f"{key} {p}: {why}" for p, why in series.skipped]
    if not written:
        raise InputError(f"{domain}: no zone got its Sentinel-1 series: " + "; ".join(failed))
    return S1SeriesReport(
        domain=domain,
        provider=provider.name,
        dates_per_zone={k: len(s.dates) for k, s in written.items()},
        failed_zones=tuple(failed),
        skipped_dates=tuple(skipped),
        processing_units=provider.processing_units,
        problems=tuple(check_s1_series(written, start, end)),
        warnings=tuple(f"{line} (left out)" for line in skipped if "never mixed" in line),
    )
