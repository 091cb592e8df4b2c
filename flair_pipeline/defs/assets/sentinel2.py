"""Sentinel-2 assets: one series per zone (partitioned by domain), and the centroid index."""

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
import numpy as np
import rasterio

from flair_pipeline.dataset import metadata as md
from flair_pipeline.dataset.rasterize import read_labels
from flair_pipeline.dataset.sampling import read_patch_grid
from flair_pipeline.defs.partitions import domains_partitions
from flair_pipeline.defs.resources import FlairConfig, SentinelHubCredentials
from flair_pipeline.domains import DomainId
from flair_pipeline.errors import FlairPipelineError, InputError
from flair_pipeline.plots import markdown_image, ndvi_profiles
from flair_pipeline.sentinel2.factory import make_provider
from flair_pipeline.sentinel2.profiles import class_profiles
from flair_pipeline.sentinel2.provider import TimeSeries
from flair_pipeline.sentinel2.series import super_areas, write_series
from flair_pipeline.sources.domain_spec import resolve


@dg.asset(
    partitions_def=domains_partitions,
    group_name="sentinel2",
    deps=["patch_grid"],
    kinds={"python", "numpy", "stac"},
    retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL),
    description="Per zone, a one-year Sentinel-2 L2A series over a super-area covering a "
    "window of sentinel2.window px around every patch centroid: FLAIR's "
    "`SEN2_sp_<domain>-<zone>_{data,masks}.npy` and `_products.txt`. Provider from config "
    "(stac on the local archive by default, or sentinelhub).",
    check_specs=[dg.AssetCheckSpec("series_valid", asset="sentinel2_series", blocking=True)],
)
def sentinel2_series(
    context: dg.AssetExecutionContext, flair: FlairConfig, sentinelhub: SentinelHubCredentials
) -> dg.MaterializeResult:
    """Asset: the Sentinel-2 series of one domain's zones (its ``description`` says what it writes)."""
    try:
        return _build_series(context, flair, sentinelhub)
    except FlairPipelineError as exc:
        # Bad input or an exhausted provider (which already retried with back-off):
        # running the step again cannot help, so fail now with the message.
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except Exception as exc:
        if transient(exc):
            raise  # a network or disk hiccup: the retry policy may get past it
        # anything else (a bug, a library error on a bad file) fails the same way on a
        # retry: one line now rather than the same trace three times, 30 s apart (issue 15)
        raise dg.Failure(
            description=f"{context.partition_key}: sentinel2_series failed, not retried "
            f"({type(exc).__name__}: {exc})",
            allow_retries=False,
        ) from exc


def transient(exc: BaseException) -> bool:
    """Whether a retry of the step may succeed.

    Whether a retry of the step may succeed: OS-level I/O errors (connection reset,
    timeout, EIO) but not a missing file, a permission or a raster GDAL cannot read.
    """
    permanent = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
                 rasterio.errors.RasterioError)  # fmt: skip
    return isinstance(exc, OSError) and not isinstance(exc, permanent)


def _build_series(
    context: dg.AssetExecutionContext, flair: FlairConfig, sentinelhub: SentinelHubCredentials
) -> dg.MaterializeResult:
    domain, cfg = context.partition_key, flair.load()
    raw, dataset = flair.raw(), flair.dataset()
    inputs = resolve(raw.domain(domain))  # raw layout or domain.yaml
    year = int(inputs.info.get("year") or DomainId.parse(domain).year)
    grid = read_patch_grid(dataset.patch_grid(domain))
    areas = super_areas(grid, cfg.sentinel2.window, cfg.sentinel2.max_size)
    provider = make_provider(cfg.sentinel2, flair.resolve, raw.sentinel2_catalog(), sentinelhub)
    results = provider.fetch_each(
        [a.grid for a in areas], dt.date(year, 1, 1), dt.date(year, 12, 31)
    )
    problems, written, dates, cloudy, skipped = [], {}, {}, {}, []
    labels = read_labels(inputs.labels, mapping=inputs.mapping)  # for the NDVI-by-class plot
    profiles: dict[str, list[np.ndarray]] = {}
    centroids: dict[str, list[int]] = {}
    for area, res in zip(areas, results, strict=True):
        if isinstance(res, Exception):
            problems.append(f"{area.zone}: {res}")
            context.log.error(f"{domain}/{area.zone}: {res}")
            continue
        write_series(dataset, area, res)
        written[area.zone] = res
        dates[area.zone] = len(res.dates)
        cloudy[area.zone] = round(
            float(((res.masks[:, 1] >= cfg.sentinel2.cloud_threshold).mean((1, 2)) > 0.1).mean()), 3
        )
        skipped += [f"{area.zone} {p}: {why}" for p, why in res.skipped]
        centroids.update({k: list(v) for k, v in area.centroids.items()})
        for name, rows in class_profiles(res, labels, seed=cfg.sampling.seed).items():
            profiles.setdefault(name, []).extend(rows)
    if not written:
        raise InputError(f"{domain}: no zone got a Sentinel-2 series: " + "; ".join(problems))
    md.write_json(centroids, dataset.domain_centroids(domain))
    checks = _check(written, year)
    meta: dict[str, Any] = {
        "zones": len(written),
        "failed_zones": problems,
        "dates_per_zone": dates,
        "cloudy_date_share": cloudy,
        "skipped_dates": skipped[:50],
        "provider": provider.name,
        "processing_units": provider.processing_units,
    }
    if profiles:
        png = ndvi_profiles(profiles, domain)
        meta["ndvi_by_class"] = dg.MetadataValue.md(markdown_image(png, "NDVI"))
    return dg.MaterializeResult(
        metadata=meta,
        check_results=[
            dg.AssetCheckResult(
                check_name="series_valid", passed=not checks, metadata={"problems": checks[:20]}
            )
        ],
    )


def _check(written: Mapping[str, TimeSeries], year: int) -> list[str]:
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


@dg.asset(
    group_name="sentinel2",
    deps=[dg.AssetDep("sentinel2_series", partition_mapping=dg.AllPartitionMapping())],
    kinds={"python", "json"},
    description="centroids_sp_to_patch.json: for every patch, the row and column of its "
    "centroid in its zone's super-area (merged over all built domains).",
)
def sentinel2_index(flair: FlairConfig) -> dg.MaterializeResult:
    """Asset: the centroid index over every domain's series (its ``description`` says what it writes)."""
    dataset = flair.dataset()
    merged: dict[str, list[int]] = {}
    files = sorted(dataset.domain_centroids_dir.glob("*.json"))
    for f in files:
        merged.update(json.loads(f.read_text()))
    md.write_json(merged, dataset.centroids)
    return dg.MaterializeResult(
        metadata={
            "patches": len(merged),
            "domains": len(files),
            "path": dg.MetadataValue.path(str(dataset.centroids)),
        }
    )
