"""Dataset assets, partitioned by domain: patch grid, IMG, MSK, metadata; and the split."""

import json
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import rasterio

from flair_pipeline import layout as L
from flair_pipeline.dataset import metadata as md
from flair_pipeline.dataset.generation import recover
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.patches import (
    BuildReport,
    Elevation,
    build_aerial_patches,
    build_label_masks,
    unlabelled_fraction,
)
from flair_pipeline.dataset.sampling import read_patch_grid, sample_patches, write_patch_grid
from flair_pipeline.dataset.splits import assign_splits, write_splits
from flair_pipeline.defs.partitions import domains_partitions
from flair_pipeline.defs.resources import FlairConfig
from flair_pipeline.defs.staging import staged
from flair_pipeline.io import remove_stale_temps
from flair_pipeline.layout import DatasetLayout
from flair_pipeline.plots import class_share_chart, markdown_image, patch_preview
from flair_pipeline.sources.domain_spec import DomainInputs, resolve

DOMAIN: dict[str, Any] = {"partitions_def": domains_partitions, "group_name": "dataset"}


@dg.asset(
    **DOMAIN,
    deps=["domain_sources"],
    kinds={"python", "geopackage"},
    description="Patch footprints (patch_size × resolution) on a lattice inside the mosaic, "
    "non-overlapping, grouped into zones; strategy grid, random or class-balanced. "
    "Candidates with too much nodata or unlabelled area are rejected.",
    check_specs=[dg.AssetCheckSpec("has_patches", asset="patch_grid", blocking=True)],
)
@staged()
def patch_grid(context: dg.AssetExecutionContext, flair: FlairConfig) -> dg.MaterializeResult:
    """Asset: the patch grid of one domain (its ``description`` says what it writes)."""
    from flair_pipeline.dataset.rasterize import read_labels

    domain, cfg = context.partition_key, flair.load()
    raw, dataset = flair.raw(), flair.dataset()
    remove_stale_temps(dataset.patch_grid(domain))
    inputs = resolve(raw.domain(domain))
    labels = read_labels(inputs.labels, mapping=inputs.mapping)
    with Mosaic(inputs.ortho) as mosaic:
        grid, report = sample_patches(domain, mosaic, labels, cfg.sampling)
        broken = [str(p) for p in mosaic.broken]
    for tile in broken:  # a truncated download: name it and what it costs (issue 15)
        lost = [e.split(": ", 1)[0] for e in report.unreadable if tile in e]
        context.log.warning(
            f"{tile}: unreadable tile, {len(lost)} patch(es) lost "
            f"({', '.join(lost[:10])}{' …' if len(lost) > 10 else ''}); replace the file"
        )
    write_patch_grid(grid, dataset.patch_grid(domain))
    return dg.MaterializeResult(
        metadata={
            "patches": len(grid),
            "zones": int(grid["zone"].nunique()) if len(grid) else 0,
            "candidates": report.candidates,
            "rejected": dict(report.rejected),
            "strategy": cfg.sampling.strategy,
            "unreadable_tiles": broken,
            "skipped_patches": report.unreadable[:50],
            "path": dg.MetadataValue.path(str(dataset.patch_grid(domain))),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="has_patches",
                passed=len(grid) > 0,
                metadata={"patches": len(grid)},
            )
        ],
    )


def _grid(flair: FlairConfig, domain: str):
    return read_patch_grid(flair.dataset().patch_grid(domain))


@dg.asset(
    **DOMAIN,
    deps=["patch_grid"],
    kinds={"python", "geotiff"},
    description="`IMG_<id>.tif`: 5 bands uint8 (R, G, B, NIR, elevation = DSM − DTM scaled), "
    "exact 0.2 m grid, EPSG:2154; windows straddling tiles are read seamlessly.",
    check_specs=[dg.AssetCheckSpec("img_format", asset="aerial_patches", blocking=True)],
)
@staged(L.PATCH_GRID)
def aerial_patches(context: dg.AssetExecutionContext, flair: FlairConfig) -> dg.MaterializeResult:
    """Asset: the IMG patches of one domain (its ``description`` says what it writes)."""
    domain, cfg = context.partition_key, flair.load()
    raw, dataset = flair.raw(), flair.dataset()
    grid = _grid(flair, domain)
    inputs = resolve(raw.domain(domain))
    report = build_aerial_patches(
        grid,
        inputs.ortho,
        inputs.dsm,
        inputs.dtm,
        dataset,
        cfg.sampling.patch_size,
        cfg.sampling.elevation_scale,
        cfg.dataset.compression,
    )
    for pid, reason in report.skipped:
        context.log.warning(f"skipped patch {pid}: {reason}")
    bad = _check_images(grid, dataset, cfg.sampling.patch_size, report)
    return dg.MaterializeResult(
        metadata=report.as_metadata(),
        check_results=[
            dg.AssetCheckResult(
                check_name="img_format",
                passed=not bad and report.written > 0,
                metadata={"problems": bad[:20], "checked": report.written},
            )
        ],
    )


def _check_images(grid, dataset: DatasetLayout, size: int, report: BuildReport) -> list[str]:
    skipped = {p for p, _ in report.skipped}
    bad = []
    for row in grid.itertuples():
        if row.patch_id in skipped:
            continue
        path = dataset.img(row.domain, row.zone, row.patch_id)
        with rasterio.open(path) as src:
            if (src.count, src.width, src.height) != (5, size, size) or src.dtypes[0] != "uint8":
                bad.append(
                    f"{path.name}: {src.count} bands {src.width}x{src.height} {src.dtypes[0]}"
                )
            elif src.crs is None or src.crs.to_epsg() != 2154:
                bad.append(f"{path.name}: CRS {src.crs}")
    return bad


@dg.asset(
    **DOMAIN,
    deps=["patch_grid"],
    kinds={"python", "geotiff"},
    description="`MSK_<id>.tif`: labels rasterized from the polygons intersecting each patch "
    "(spatial index, pixel-centre rule), uint8 codes 1..19, same grid as the IMG.",
    check_specs=[dg.AssetCheckSpec("msk_codes", asset="label_masks", blocking=True)],
)
@staged(L.PATCH_GRID)
def label_masks(context: dg.AssetExecutionContext, flair: FlairConfig) -> dg.MaterializeResult:
    """Asset: the MSK patches of one domain (its ``description`` says what it writes)."""
    domain, cfg = context.partition_key, flair.load()
    raw, dataset = flair.raw(), flair.dataset()
    grid = _grid(flair, domain)
    inputs = resolve(raw.domain(domain))
    tolerance = cfg.sampling.max_nodata_fraction
    report = build_label_masks(
        grid,
        inputs.labels,
        dataset,
        cfg.sampling.patch_size,
        cfg.sampling.resolution,
        mapping=inputs.mapping,
        max_unlabelled=tolerance,
        compression=cfg.dataset.compression,
    )
    for pid, reason in report.skipped:
        context.log.warning(f"skipped patch {pid}: {reason}")
    skipped = {p for p, _ in report.skipped}
    bad, counts = [], np.zeros(20, np.int64)
    for row in grid.itertuples():
        if row.patch_id in skipped:
            continue
        with rasterio.open(dataset.msk(row.domain, row.zone, row.patch_id)) as src:
            m = src.read(1)
        counts += np.bincount(m.ravel(), minlength=20)[:20]
        # 0 = unlabelled, allowed up to the sampler's tolerance (the same number)
        unknown = sorted(set(np.unique(m).tolist()) - set(range(0, 20)))
        if unknown:
            bad.append(f"MSK_{row.patch_id}: codes {unknown}")
        elif unlabelled_fraction(m) > tolerance:
            bad.append(f"MSK_{row.patch_id}: {100 * unlabelled_fraction(m):.2f} % unlabelled")
    return dg.MaterializeResult(
        metadata={
            **report.as_metadata(),
            "pixels_per_code": {str(c): int(counts[c]) for c in range(1, 20) if counts[c]},
            "unlabelled_pixels": int(counts[0]),
            "unlabelled_tolerance": tolerance,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="msk_codes",
                passed=not bad and report.written > 0,
                metadata={"problems": bad[:20]},
            )
        ],
    )


@dg.asset(
    **DOMAIN,
    deps=["aerial_patches", "label_masks", "domain_sources"],
    kinds={"python", "json"},
    description="FLAIR's aerial metadata per patch (centroid x/y/z, camera, date, time, domain, "
    "zone) and the domain's class distribution; checks that every IMG has a MSK on its grid.",
    check_specs=[dg.AssetCheckSpec("img_msk_pairs", asset="dataset_metadata", blocking=True)],
)
@staged(L.PATCH_GRID, L.AERIAL, L.LABELS)
def dataset_metadata(context: dg.AssetExecutionContext, flair: FlairConfig) -> dg.MaterializeResult:
    """Asset: one domain's metadata and its checks (its ``description`` says what it writes)."""
    domain, cfg = context.partition_key, flair.load()
    raw, dataset = flair.raw(), flair.dataset()
    grid = _grid(flair, domain)
    # a swap killed half-way: back to one generation
    for kind in (L.AERIAL.all_domains().rel, L.LABELS.all_domains().rel):
        for line in recover(dataset.root, kind, domain):
            context.log.warning(line)
    remove_stale_temps(dataset.domain_metadata(domain))
    inputs = resolve(raw.domain(domain))
    info = inputs.info
    pairs: list[str] = []
    problems: list[str] = []
    missing: list[str] = []
    previews: list[tuple[np.ndarray, np.ndarray, str]] = []  # (IMG, MSK, title)
    for row in grid.itertuples():
        img, msk = (
            dataset.img(row.domain, row.zone, row.patch_id),
            dataset.msk(row.domain, row.zone, row.patch_id),
        )
        if not (img.is_file() and msk.is_file()):  # skipped upstream and reported there
            missing.append(f"{row.patch_id}: no {'IMG' if not img.is_file() else 'MSK'}")
            continue
        with rasterio.open(img) as a, rasterio.open(msk) as b:
            if (a.transform, a.shape, a.crs) != (b.transform, b.shape, b.crs):
                problems.append(f"{row.patch_id}: IMG and MSK grids differ")
                continue
            if len(previews) < 3:
                previews.append((a.read(), b.read(1), f"IMG_{row.patch_id} ({row.zone})"))
        pairs.append(row.patch_id)
    kept = grid[grid["patch_id"].isin(pairs)]
    elevation = Elevation(inputs.dsm, inputs.dtm, cfg.sampling.elevation_scale)
    try:
        ground = {
            r.patch_id: elevation.ground(r.x_centroid, r.y_centroid, r.geometry.bounds)
            for r in kept.itertuples()
        }
    finally:
        elevation.close()
    shares = md.class_distribution(kept)
    md.write_json(
        {
            "domain": domain,
            "patches": md.aerial_metadata(kept, info, ground),
            "class_distribution": shares,
            "problems": problems,
            "skipped": missing,
            "decisions": [
                *_ortho_decisions(inputs),
                *elevation.decisions,
                *_label_decisions(inputs),
            ],
        },
        dataset.domain_metadata(domain),
    )
    table = pd.DataFrame({"class": list(shares), "share_%": [round(v, 2) for v in shares.values()]})
    meta: dict[str, Any] = {
        "patches": len(kept),
        "skipped": missing[:50],
        "zones": int(kept["zone"].nunique()) if len(kept) else 0,
        "class_shares": dg.MetadataValue.md(table.to_markdown(index=False)),
        "class_chart": dg.MetadataValue.md(
            markdown_image(class_share_chart(shares, domain), "classes")
        ),
    }
    if previews:
        png = patch_preview(*zip(*previews, strict=True))
        meta["preview"] = dg.MetadataValue.md(markdown_image(png, "preview"))
    return dg.MaterializeResult(
        metadata=meta,
        check_results=[
            dg.AssetCheckResult(
                check_name="img_msk_pairs",
                passed=not problems and len(kept) > 0,
                metadata={"problems": problems[:20]},
            )
        ],
    )


def _ortho_decisions(inputs: DomainInputs) -> list[str]:
    """One line per rescaled ortho product (its nodata through the rescale), else none."""
    from flair_pipeline.geo.raster_vrt import rescale_decisions

    return rescale_decisions(inputs.ortho) if isinstance(inputs.ortho, list) else []


def _label_decisions(inputs: DomainInputs) -> list[str]:
    """The decision line ("labels …: CRS … reprojected on the fly") when the label file is not in Lambert-93."""
    from flair_pipeline.geo.crs import is_lambert93
    from flair_pipeline.geo.label_mapping import label_crs

    crs = label_crs(inputs.labels)
    if crs is None or is_lambert93(crs):
        return []
    name = rasterio.crs.CRS.from_user_input(crs).to_string()
    return [f"labels {inputs.labels}: CRS {name} reprojected on the fly to EPSG:2154"]


@dg.asset(
    group_name="dataset",
    deps=[dg.AssetDep("dataset_metadata", partition_mapping=dg.AllPartitionMapping())],
    kinds={"python", "csv"},
    description="Train / validation / test per domain: the official FLAIR split, other domains "
    "by explicit mapping or a deterministic hash. Writes metadata/splits.csv and the merged "
    "aerial_metadata.json of every built domain.",
    check_specs=[dg.AssetCheckSpec("no_split_leakage", asset="split_assignment", blocking=True)],
)
@staged(L.DOMAIN_METADATA.all_domains())
def split_assignment(context: dg.AssetExecutionContext, flair: FlairConfig) -> dg.MaterializeResult:
    """Asset: the split of every domain (its ``description`` says what it writes)."""
    cfg, dataset = flair.load(), flair.dataset()
    remove_stale_temps(dataset.splits, dataset.aerial_metadata)
    files = sorted(
        f for f in dataset.domain_metadata_dir.glob("*.json") if not f.name.startswith(".")
    )
    per_domain = {f.stem: json.loads(f.read_text()) for f in files}
    assignment = assign_splits(per_domain, cfg.split)
    write_splits(assignment, dataset.splits)
    merged: dict[str, object] = {}
    owners: dict[str, str] = {}
    leaks = []
    for d, data in sorted(per_domain.items()):
        for key, value in data["patches"].items():
            if key in owners:
                leaks.append(f"{key} in {owners[key]} and {d}")
            owners[key] = d
            merged[key] = value
    md.write_json(merged, dataset.aerial_metadata)
    counts = {
        s: sum(len(per_domain[d]["patches"]) for d, (sp, _) in assignment.items() if sp == s)
        for s in ("train", "validation", "test")
    }
    table = pd.DataFrame(
        [(d, str(s), r, len(per_domain[d]["patches"])) for d, (s, r) in assignment.items()],
        columns=["domain", "split", "rule", "patches"],
    )
    return dg.MaterializeResult(
        metadata={
            "domains": len(assignment),
            **{f"{k}_patches": v for k, v in counts.items()},
            "splits": dg.MetadataValue.md(table.to_markdown(index=False)),
            "path": dg.MetadataValue.path(str(dataset.splits)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_split_leakage",
                passed=not leaks,
                metadata={"leaks": leaks[:20]},
            )
        ],
    )
