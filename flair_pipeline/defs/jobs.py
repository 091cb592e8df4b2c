"""Jobs of the code location: the per-domain build, run by the new-domains sensor."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

#: Asset groups whose partitioned assets make up a domain's dataset files.
DOMAIN_GROUPS = frozenset({"sources", "dataset"})


def domain_build_assets(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The assets that build one domain's dataset files, in the order given.

    Args:
        assets: every asset of the code location.

    Returns:
        Those partitioned by domain whose groups are all in :data:`DOMAIN_GROUPS`
        (``domain_sources``, ``patch_grid``, ``aerial_patches``, ``label_masks``,
        ``dataset_metadata``); the all-domain ``split_assignment`` and the Sentinel-2 series
        are not part of it.
    """
    return [
        a
        for a in assets
        if a.partitions_def is not None and set(a.group_names_by_key.values()) <= DOMAIN_GROUPS
    ]


def build_domain_job(assets: Sequence[dg.AssetsDefinition]) -> dg.UnresolvedAssetJobDefinition:
    """The ``build_domain`` job over :func:`domain_build_assets` of `assets`.

    Args:
        assets: every asset of the code location.

    Returns:
        The job the new-domains sensor requests, one run per domain partition.
    """
    return dg.define_asset_job(
        "build_domain",
        selection=dg.AssetSelection.assets(*domain_build_assets(assets)),
        description="Build one domain's dataset files (run per domain partition).",
    )
