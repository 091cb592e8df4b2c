"""Dataset assets, partitioned by domain: patch grid, IMG, MSK, metadata; and the split."""

from typing import Any

import dagster as dg

from flair_pipeline import layout as L
from flair_pipeline.dataset import build
from flair_pipeline.dataset.assemble import assemble_splits
from flair_pipeline.defs.adapter import progress, result
from flair_pipeline.defs.partitions import DOMAIN_BACKFILL, domains_partitions
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.defs.staging import staged

#: Keyword arguments shared by the per-domain dataset assets' @dg.asset.
DOMAIN: dict[str, Any] = {
    "partitions_def": domains_partitions,
    "backfill_policy": DOMAIN_BACKFILL,
    "group_name": "dataset",
}


def _context(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> build.DomainContext:
    """The build context of the asset's domain (its partition), opened once per step."""
    return build.DomainContext.open(
        context.partition_key, flair.raw(), flair.dataset(), flair.load()
    )


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
def patch_grid(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult:
    """Asset: the patch grid of one domain (its ``description`` says what it writes)."""
    report = build.sample_domain_grid(_context(context, flair))
    return result(context, report, check="has_patches")


@dg.asset(
    **DOMAIN,
    deps=["patch_grid"],
    kinds={"python", "geotiff"},
    description="`IMG_<id>.tif`: 5 bands uint8 (R, G, B, NIR, elevation = DSM − DTM scaled), "
    "exact 0.2 m grid, EPSG:2154; windows straddling tiles are read seamlessly.",
    check_specs=[dg.AssetCheckSpec("img_format", asset="aerial_patches", blocking=True)],
)
@staged(L.PATCH_GRID)
def aerial_patches(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult:
    """Asset: the IMG patches of one domain (its ``description`` says what it writes)."""
    report = build.build_domain_images(_context(context, flair), progress=progress(context))
    return result(context, report, check="img_format")


@dg.asset(
    **DOMAIN,
    deps=["patch_grid"],
    kinds={"python", "geotiff"},
    description="`MSK_<id>.tif`: labels rasterized from the polygons intersecting each patch "
    "(spatial index, pixel-centre rule), uint8 codes 1..19, same grid as the IMG.",
    check_specs=[dg.AssetCheckSpec("msk_codes", asset="label_masks", blocking=True)],
)
@staged(L.PATCH_GRID)
def label_masks(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult:
    """Asset: the MSK patches of one domain (its ``description`` says what it writes)."""
    report = build.build_domain_masks(_context(context, flair), progress=progress(context))
    return result(context, report, check="msk_codes")


@dg.asset(
    **DOMAIN,
    deps=["aerial_patches", "label_masks", "domain_sources"],
    kinds={"python", "json"},
    description="FLAIR's aerial metadata per patch (centroid x/y/z, camera, date, time, domain, "
    "zone) and the domain's class distribution; checks that every IMG has a MSK on its grid.",
    check_specs=[dg.AssetCheckSpec("img_msk_pairs", asset="dataset_metadata", blocking=True)],
)
@staged(L.PATCH_GRID, L.AERIAL, L.LABELS)
def dataset_metadata(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult:
    """Asset: one domain's metadata and its checks (its ``description`` says what it writes)."""
    report = build.write_domain_metadata(_context(context, flair))
    return result(context, report, check="img_msk_pairs")


@dg.asset(
    group_name="dataset",
    deps=[dg.AssetDep("dataset_metadata", partition_mapping=dg.AllPartitionMapping())],
    kinds={"python", "csv"},
    description="Train / validation / test per domain: the official FLAIR split, other domains "
    "by explicit mapping or a deterministic hash. Writes metadata/splits.csv and the merged "
    "aerial_metadata.json of every built domain; a built domain whose raw folder is gone is "
    "stale: left out, and named in a warning.",
    check_specs=[dg.AssetCheckSpec("no_split_leakage", asset="split_assignment", blocking=True)],
)
@staged(L.DOMAIN_METADATA.all_domains(), raw_folders=True)
def split_assignment(
    context: dg.AssetExecutionContext, flair: PipelineConfigResource
) -> dg.MaterializeResult:
    """Asset: the split of every domain (its ``description`` says what it writes)."""
    report = assemble_splits(flair.dataset(), flair.load().split, flair.raw())
    return result(context, report, check="no_split_leakage")
