"""The Sentinel-2 stage of one domain: a series per zone, its checks, and the centroid index.

:func:`build_domain_series` fetches one year of Sentinel-2 L2A over each zone's super-area
(:mod:`flair_pipeline.sentinel2.series`) from any provider, writes FLAIR's ``SEN2_sp_*``
files and the domain's centroids, and reports per zone. A zone the provider fails on is
isolated (named in ``failed_zones``, the other zones are written); no zone at all is an
error. :func:`merge_centroids` merges every domain's centroids into
``centroids_sp_to_patch.json``. The Dagster assets (``defs/assets/sentinel2.py``) call them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import shapely

from flair_pipeline.config import PipelineConfig
from flair_pipeline.dataset import aerial_metadata as md
from flair_pipeline.dataset.rasterize import read_labels
from flair_pipeline.dataset.sampling import read_patch_grid
from flair_pipeline.domains import DomainId
from flair_pipeline.errors import InputError
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.progress import Progress
from flair_pipeline.reports import JSON, MetadataKind, StageReport
from flair_pipeline.sentinel2.profiles import class_profiles
from flair_pipeline.sentinel2.provider import Sentinel2Provider, TimeSeries
from flair_pipeline.sentinel2.series import super_areas, write_series
from flair_pipeline.sources.domain_spec import resolve


@dataclass(frozen=True)
class SeriesReport(StageReport):
    """A domain's Sentinel-2 series, per zone; check series_valid."""

    domain: str
    provider: str
    dates_per_zone: dict[str, int]
    #: share of dates with more than 10 % of the super-area at or above the cloud threshold
    cloudy_date_share: dict[str, float]
    failed_zones: tuple[str, ...] = ()  # "<zone>: <why>"
    skipped_dates: tuple[str, ...] = ()  # "<zone> <product>: <why>"
    processing_units: float = 0.0  # the provider's cost (Sentinel Hub PU); 0.0 for STAC
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: NDVI rows (one per sampled pixel, 12 months) per class name, for the profile figure
    profiles: dict[str, list[np.ndarray]] = field(default_factory=dict, compare=False, repr=False)

    def as_metadata(self) -> dict[str, JSON]:
        """Zones written and failed, dates and cloudy shares per zone (plain values).

        The NDVI figure of :attr:`profiles` is drawn by the Dagster adapter
        (``defs/adapter.py``), not here.

        Returns:
            A JSON-serialisable dict: ``zones`` (int), ``failed_zones`` (list of str),
            ``dates_per_zone`` (zone -> int), ``cloudy_date_share`` (zone -> share in [0, 1]),
            ``skipped_dates`` (the first 50), ``provider`` and ``processing_units`` (float).
        """
        return {
            "zones": len(self.dates_per_zone),
            "failed_zones": list(self.failed_zones),
            "dates_per_zone": dict(self.dates_per_zone),
            "cloudy_date_share": dict(self.cloudy_date_share),
            "skipped_dates": list(self.skipped_dates[:50]),
            "provider": self.provider,
            "processing_units": self.processing_units,
        }


def cloudy_share(series: TimeSeries, threshold: int) -> float:
    """Share of dates on which over 10 % of the pixels have cloud probability >= `threshold`.

    Args:
        series: A zone's series; ``masks[:, 1]`` is the cloud probability (0..100, %).
        threshold: ``sentinel2.cloud_threshold`` (%).

    Returns:
        The share in [0, 1], rounded to 3 decimals.
    """
    cloudy = (series.masks[:, 1] >= threshold).mean((1, 2)) > 0.1
    return round(float(cloudy.mean()), 3)


def check_series(written: Mapping[str, TimeSeries], year: int) -> list[str]:
    """``series_valid``: at least one date, FLAIR's shapes, masks <= 100, dates in `year`.

    Args:
        written: The series written, by zone.
        year: The domain's acquisition year.

    Returns:
        One line per problem found (empty: valid).
    """
    bad = []
    for zone, s in written.items():
        t, h, w = len(s.dates), s.grid.height, s.grid.width
        if t < 1:
            bad.append(f"{zone}: no dates")
        if s.data.shape != (t, 10, h, w) or s.masks.shape != (t, 2, h, w):
            bad.append(f"{zone}: shapes {s.data.shape} / {s.masks.shape}")
        if s.masks.max(initial=0) > 100:
            bad.append(f"{zone}: mask values above 100")
        if any(d.year != year for d in s.dates):
            bad.append(f"{zone}: dates outside {year}")
    return bad


def build_domain_series(
    domain: str,
    raw: RawLayout,
    dataset: DatasetLayout,
    cfg: PipelineConfig,
    provider: Sentinel2Provider,
    *,
    progress: Progress | None = None,
) -> SeriesReport:
    """Fetch and write one year of Sentinel-2 L2A for each zone of a domain.

    Per zone: ``SEN2_sp_<domain>-<zone>_data.npy`` (T×10×H×W uint16, 10 m, the zone's
    super-area in EPSG:2154), ``_masks.npy`` (T×2×H×W uint8 snow/cloud %),
    ``_products.txt``; and ``metadata/centroids/<domain>.json`` (``IMG_<id>.tif`` → the
    centroid's [row, col] in its super-area).

    Args:
        domain: A domain id such as ``D006_2020``; its year is domain.json's ``year``, else
            the id's.
        raw: The raw data root (domain facts; the labels under the super-areas, read by
            extent, for the NDVI profiles).
        dataset: The dataset root (read: patch grid; written: ``sentinel/<domain>``).
        cfg: The configuration (``sentinel2``, ``sampling.seed``).
        provider: A Sentinel-2 provider (:func:`flair_pipeline.sentinel2.factory.build_provider`)
            with ``fetch_each(grids, start, end)`` returning a series or an exception per grid.
        progress: Where to show the provider's count of scenes (or requests), or None.

    Returns:
        The :class:`SeriesReport`; a zone the provider failed on is a ``failed_zones``
        entry (``"<zone>: <why>"``).

    Raises:
        InputError: No zone got a series (every zone's reason named), a super-area larger
            than ``sentinel2.max_size``, an unusable input.
    """
    inputs = resolve(raw.domain(domain))  # raw layout or domain.yaml
    year = int(inputs.info.get("year") or DomainId.parse(domain).year)
    grid = read_patch_grid(dataset.patch_grid(domain))
    areas = super_areas(grid, cfg.sentinel2.window, cfg.sentinel2.max_size)
    span = (dt.date(year, 1, 1), dt.date(year, 12, 31))
    if progress is None:
        results = provider.fetch_each([a.grid for a in areas], *span)
    else:  # a provider of a test or a plug-in may not count
        results = provider.fetch_each(
            [a.grid for a in areas], *span, progress=progress.within(domain)
        )
    problems: list[str] = []
    written: dict[str, TimeSeries] = {}
    dates: dict[str, int] = {}
    cloudy: dict[str, float] = {}
    skipped: list[str] = []
    warnings: list[str] = []  # catalogue items no rule settles: one line each, date dropped
    # for the NDVI-by-class plot: the label polygons under the super-areas only (by extent:
    # a département's layer holds millions of polygons, the profiles sample pixel centres
    # inside the super-areas, so the polygons outside them never change a profile)
    extent = shapely.union_all([shapely.box(*a.grid.bounds) for a in areas])
    labels = read_labels(inputs.labels, inputs.labels_layer, inputs.mapping, within=extent)
    profiles: dict[str, list[np.ndarray]] = {}
    centroids: dict[str, list[int]] = {}
    for area, res in zip(areas, results, strict=True):
        if isinstance(res, Exception):
            problems.append(f"{area.zone}: {res}")
            continue
        write_series(dataset, area, res)
        written[area.zone] = res
        dates[area.zone] = len(res.dates)
        cloudy[area.zone] = cloudy_share(res, cfg.sentinel2.cloud_threshold)
        skipped += [f"{area.zone} {p}: {why}" for p, why in res.skipped]
        warnings += [f"{area.zone}: {why}" for _, why in res.skipped if "date is dropped" in why]
        centroids.update({k: list(v) for k, v in area.centroids.items()})
        for name, rows in class_profiles(res, labels, seed=cfg.sampling.seed).items():
            profiles.setdefault(name, []).extend(rows)
    if not written:
        raise InputError(f"{domain}: no zone got a Sentinel-2 series: " + "; ".join(problems))
    md.write_json(centroids, dataset.domain_centroids(domain))
    return SeriesReport(
        domain=domain,
        provider=provider.name,
        dates_per_zone=dates,
        cloudy_date_share=cloudy,
        failed_zones=tuple(problems),
        skipped_dates=tuple(skipped),
        processing_units=provider.processing_units,
        problems=tuple(check_series(written, year)),
        warnings=tuple(dict.fromkeys(warnings)),
        profiles=profiles,
    )


@dataclass(frozen=True)
class CentroidIndexReport(StageReport):
    """``centroids_sp_to_patch.json``: every patch's centroid in its zone's super-area."""

    metadata_kinds: ClassVar[Mapping[str, MetadataKind]] = {"path": "path"}

    path: str
    patches: int
    domains: int

    def as_metadata(self) -> dict[str, JSON]:
        """Patch and domain counts, and the file.

        Returns:
            ``patches`` and ``domains`` (ints) and ``path`` (str) of the merged index.
        """
        return {"patches": self.patches, "domains": self.domains, "path": self.path}


def merge_centroids(dataset: DatasetLayout) -> CentroidIndexReport:
    """Merge every domain's ``metadata/centroids/<domain>.json`` into one index.

    Args:
        dataset: The dataset root (written: ``metadata/centroids_sp_to_patch.json``).

    Returns:
        The :class:`CentroidIndexReport`.
    """
    merged: dict[str, list[int]] = {}
    files = sorted(dataset.domain_centroids_dir.glob("*.json"))
    for f in files:
        merged.update(json.loads(f.read_text()))
    md.write_json(merged, dataset.centroids)
    return CentroidIndexReport(str(dataset.centroids), len(merged), len(files))
