"""Patch sampling: where the patches of a domain are, and which zone each belongs to.

The areas that get patches are chosen first (:mod:`~flair_pipeline.dataset.areas`); the
candidates are the lattice cells inside them. Candidates lie on a lattice of patch-sized squares anchored at the mosaic's top-left corner,
so patches never overlap and a patch's id (département, year, lattice row and column) is the
same whichever order domains are built in. A candidate is rejected when too much of it is
nodata or not covered by labels. Strategies pick among the valid candidates: the whole
`grid`, a seeded `random` subset, or a `balanced` subset chosen greedily so that the class
shares move toward FLAIR's (rare classes are favoured). Patches are grouped into square
zones, the areas (FLAIR's ``Z<n>_<type>``); each zone later gets one Sentinel-2 super-area.

A candidate's pixel coverage is read at full resolution (``sampling.coverage_read``
``full``, and ``auto`` on a small mosaic), or at reduced resolution first (``overview``,
and ``auto`` on a département's dalles, :mod:`~flair_pipeline.dataset.coarse_coverage`):
then only the cells a nodata edge crosses are read at full resolution, the kept cells'
``valid_fraction`` is an estimate (column ``coverage_decimation``: the decimation, or 1
where exact) and the exact check runs on the kept patches in the IMG step.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from flair_pipeline.config import SamplingConfig
from flair_pipeline.dataset.area_pool import CellScorer, choose_pooled, pooled
from flair_pipeline.dataset.area_scoring import cell_class_areas
from flair_pipeline.dataset.areas import (
    AreaChoice,
    PatchLattice,
    area_record,
    areas_frame,
    balanced_choice,
    choose_areas,
    product_coverage,
)
from flair_pipeline.dataset.coarse_coverage import CoverageMode, coarse_verdict, coverage_mode
from flair_pipeline.dataset.mosaic import Mosaic, TileReadError
from flair_pipeline.domains import DomainId, ZoneId
from flair_pipeline.io import atomic_path
from flair_pipeline.nomenclature import N_CLASSES_MERGED
from flair_pipeline.reports import JSON

FIXED_DATE = "2000-01-01T00:00:00.000Z"  # reproducible GeoPackage metadata
#: Footprint shares are areas of float polygons: a candidate within this of the tolerance
#: is read, never rejected on its footprints alone.
_MARGIN = 1e-6
#: Zone type letters by merged class index: Urban, Agricultural, Forest, Natural.
_GROUP = "UUUANFFNAAAA" + "U"


@dataclass
class SamplingReport:
    """Why candidates were kept or rejected."""

    candidates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    selected: int = 0
    unreadable: list[str] = field(default_factory=list)  # "patch id: reason", skipped
    #: ortho product -> candidates rejected because it alone does not cover them
    product_missing: dict[str, list[str]] = field(default_factory=dict)
    #: the areas the candidates were laid in (dataset/areas.py)
    areas: AreaChoice | None = None
    #: candidates read at full resolution (the others lack tiles of every product)
    read: int = 0
    #: candidates decided at reduced resolution (``sampling.coverage_read`` overview)
    coarse: int = 0
    #: how coverage was read (``sampling.coverage_read`` resolved for the mosaic)
    coverage: CoverageMode | None = None


def patch_id(domain: DomainId, row: int, col: int) -> str:
    """Stable id unique across domains: département, 2-digit year, lattice row and column.

    Args:
        domain: The domain.
        row: Lattice row from the mosaic's top.
        col: Lattice column from the mosaic's left.

    Returns:
        13 digits: ``DDDYYRRRRCCCC``.
    """
    return f"{domain.department:03d}{domain.year % 100:02d}{row:04d}{col:04d}"


#: A landscape group covering less than this share of a zone's labelled area is float dust
#: (a label edge on a patch edge, intersected: ~1e-14 of the area), not a second group.
_DUST = 1e-9


def zone_kind(areas: np.ndarray) -> str:
    """Two letters: the dominant and second landscape group of a zone's patches.

    Args:
        areas: (13,) area (any unit) of each merged class in the zone.

    Returns:
        The largest group's letter (U, A, F, N; ties alphabetical), then the second's, or
        the first again when no other group covers more than ``_DUST`` of the area.
    """
    groups: dict[str, float] = {}
    for idx, a in enumerate(areas):
        groups[_GROUP[idx]] = groups.get(_GROUP[idx], 0.0) + float(a)
    ranked = sorted(groups, key=lambda g: (-groups[g], g))
    dust = _DUST * sum(groups.values())
    second = ranked[1] if len(ranked) > 1 and groups[ranked[1]] > dust else ranked[0]
    return ranked[0] + second


def sample_patches(
    domain: str,
    mosaic: Mosaic,
    labels: gpd.GeoDataFrame | None,
    cfg: SamplingConfig,
    user_areas: gpd.GeoDataFrame | None = None,
    class_areas: np.ndarray | None = None,
    *,
    scorer: CellScorer | None = None,
) -> tuple[gpd.GeoDataFrame, SamplingReport]:
    """Choose a domain's patches; return them (EPSG:2154 boxes with ids and zones).

    The areas come first (:func:`~flair_pipeline.dataset.areas.choose_areas`, from the
    labels and the tiles' footprints, no pixel read; on a département-size delivery from a
    bounded pool of areas, :func:`~flair_pipeline.dataset.area_pool.choose_pooled`); the candidates are the lattice cells
    inside them (every cell when the mosaic is sampled whole). A candidate that the tiles of
    every product leave uncovered beyond ``cfg.max_nodata_fraction`` (their footprints, no
    pixel read) is rejected as ``nodata`` unread; the others are read at full resolution
    (counted in ``read``), or first at reduced resolution when ``cfg.coverage_read``
    resolves to overview (counted in ``coarse`` when that decides them,
    :mod:`~flair_pipeline.dataset.coarse_coverage`). A candidate is rejected when
    more than ``cfg.max_nodata_fraction`` of it is not
    covered by every ortho product (nodata, masked, no tile; counted under
    ``ortho product <name> missing`` when one product alone lacks it, with the patch ids
    in ``product_missing``), or not covered by labels. An unreadable tile rejects the
    candidates it touches (``unreadable tile``) rather than failing the domain.

    Args:
        domain: Domain id.
        mosaic: The domain's ortho mosaic.
        labels: Label polygons (column ``code``), EPSG:2154; None when `class_areas` is given.
        cfg: The ``sampling`` section.
        user_areas: The user's areas (:func:`~flair_pipeline.dataset.areas.read_areas_layer`),
            or None to choose them by ``cfg.area_strategy``.
        class_areas: (lattice cells, 13) class areas of every cell, already scored
            (:func:`~flair_pipeline.dataset.area_scoring.streamed_class_areas`), or None to
            score them from `labels` or `scorer`.
        scorer: Scores the cells of a sub-lattice from the labels read by their extent;
            with it, a département-size delivery scores a bounded pool of areas
            (:mod:`~flair_pipeline.dataset.area_pool`), a small mosaic every cell.

    Returns:
        (patch boxes (EPSG:2154) with ``patch_id``, ``domain``, ``zone``, lattice
        ``row``/``col``, centroids, valid and labelled fractions and the share of each
        merged class ``class_<k>``, plus ``coverage_decimation`` in overview mode; the
        counts of candidates and rejections, the areas, the coverage mode).
    """  # noqa: DOC501 (TileReadError caught inside; choose_areas' InputError; ValueError: misuse)
    did = DomainId.parse(domain)
    lattice = PatchLattice.of(mosaic, cfg)
    size_m = lattice.size_m
    if scorer is not None and user_areas is None and pooled(mosaic, lattice, cfg):
        # a département: a bounded pool of areas scored, never every cell (area_pool.py)
        choice, all_areas = choose_pooled(domain, mosaic, lattice, scorer, cfg)
    else:
        if class_areas is None and scorer is not None:
            class_areas = scorer(lattice)
        if class_areas is None:
            if labels is None:
                raise ValueError("sample_patches needs labels, class_areas or scorer")
            class_areas = cell_class_areas(labels, lattice.boxes)  # vectors only, no pixel
        all_areas = class_areas
        choice = choose_areas(domain, mosaic, lattice, all_areas, cfg, user_areas)
    laid = np.flatnonzero(choice.cells)
    rows, cols, boxes = lattice.rows[laid], lattice.cols[laid], lattice.boxes[laid]
    areas = all_areas[laid]
    mode = coverage_mode(mosaic, cfg)
    report = SamplingReport(candidates=len(boxes), areas=choice, coverage=mode)

    valid = np.zeros(len(boxes))
    decimation = np.ones(len(boxes), "int32")  # where valid is a coarse estimate: the factor
    unreadable = np.zeros(len(boxes), bool)
    lacking: list[str | None] = [None] * len(boxes)  # the one product missing, if any
    # footprints first: a candidate every product's tiles leave uncovered beyond the
    # tolerance is nodata whatever its pixels (they cover at most the footprints): not read
    cover = product_coverage(mosaic, boxes)
    for i, b in enumerate(boxes):
        bounds = tuple(b.bounds)
        try:
            broken = mosaic.broken_touching(bounds)
            if broken:
                raise TileReadError(f"{broken[0]}: unreadable tile")
            if all(1.0 - c[i] > cfg.max_nodata_fraction + _MARGIN for c in cover.values()):
                valid[i] = min(float(c[i]) for c in cover.values())  # an upper bound
                continue
            if mode.overview:  # coarse first; a nodata edge through the cell: full read
                verdict = coarse_verdict(
                    mosaic.read_coverage(bounds, mode.decimation), cfg.max_nodata_fraction
                )
                if verdict is not None:
                    report.coarse += 1
                    valid[i], lacking[i] = verdict
                    decimation[i] = mode.decimation
                    continue
            report.read += 1
            per_product = mosaic.read_products(bounds)[1]
        except TileReadError as exc:
            unreadable[i] = True
            report.unreadable.append(f"{patch_id(did, int(rows[i]), int(cols[i]))}: {exc}")
            continue
        valid[i] = np.logical_and.reduce(list(per_product.values())).mean()
        short = [n for n, m in per_product.items() if 1.0 - m.mean() > cfg.max_nodata_fraction]
        if short and len(short) < len(per_product):  # the others cover it: that one lacks
            lacking[i] = short[0]
    labelled = areas.sum(1) / (size_m * size_m)
    ok_data = ((1.0 - valid) <= cfg.max_nodata_fraction) & ~unreadable
    ok_labels = (1.0 - labelled) <= cfg.max_nodata_fraction + 1e-9
    report.rejected["unreadable tile"] = int(unreadable.sum())
    for i in np.flatnonzero(~ok_data & ~unreadable).tolist():
        name = lacking[i]
        reason = "nodata" if name is None else f"ortho product {name} missing"
        report.rejected[reason] += 1
        if name is not None:
            pid = patch_id(did, int(rows[i]), int(cols[i]))
            report.product_missing.setdefault(name, []).append(pid)
    report.rejected["nodata"] += 0  # always reported, 0 included
    report.rejected["labels not covering"] = int((ok_data & ~ok_labels).sum())
    keep = np.flatnonzero(ok_data & ok_labels)

    limit = cfg.max_patches_per_domain
    if cfg.strategy == "random":
        rng = np.random.default_rng([cfg.seed, did.department, did.year])
        n = limit if limit is not None else max(1, len(keep) // 2)
        keep = np.sort(rng.permutation(keep)[: min(n, len(keep))])
    elif cfg.strategy == "balanced":
        n = limit if limit is not None else max(1, len(keep) // 2)
        keep = keep[balanced_choice(areas[keep], n)] if len(keep) else keep
    elif limit is not None:
        keep = keep[:limit]
    report.selected = len(keep)

    zsize = lattice.cells_per_area  # a zone is an area
    zr, zc = rows[keep] // zsize, cols[keep] // zsize
    zone_keys = sorted(set(zip(zr.tolist(), zc.tolist(), strict=True)))
    zone_names = {}
    for n, key in enumerate(zone_keys, start=1):
        members = keep[(zr == key[0]) & (zc == key[1])]
        zone_names[key] = str(ZoneId(n, zone_kind(areas[members].sum(0))))
    centroids = shapely.centroid(boxes[keep])
    gdf = gpd.GeoDataFrame(
        {
            "patch_id": [
                patch_id(did, int(r), int(c)) for r, c in zip(rows[keep], cols[keep], strict=True)
            ],
            "domain": domain,
            "zone": [zone_names[k] for k in zip(zr.tolist(), zc.tolist(), strict=True)],
            "row": rows[keep].astype("int32"),
            "col": cols[keep].astype("int32"),
            "x_centroid": shapely.get_x(centroids),
            "y_centroid": shapely.get_y(centroids),
            "valid_fraction": valid[keep],
            "label_fraction": labelled[keep],
        },
        geometry=boxes[keep],
        crs="EPSG:2154",
    )
    for k in range(N_CLASSES_MERGED):
        gdf[f"class_{k}"] = areas[keep, k] / (size_m * size_m)
    if mode.overview:  # which valid_fraction is an estimate (a full grid keeps its bytes)
        gdf["coverage_decimation"] = decimation[keep]
    return gdf, report


def write_patch_grid(
    gdf: gpd.GeoDataFrame, path: str | Path, areas: AreaChoice | None = None
) -> Path:
    """Save the patch grid as a GeoPackage (layer ``patches``), atomically, reproducibly.

    When areas were chosen (not the whole mosaic), they are a second layer ``areas``
    (:func:`~flair_pipeline.dataset.areas.areas_frame`); a mosaic sampled whole keeps one
    layer, byte for byte as before areas existed.

    Args:
        gdf: The patch grid.
        path: The GeoPackage written.
        areas: The areas the patches were laid in, or None.

    Returns:
        `path` as a Path.
    """
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_DATE})
    with atomic_path(path) as tmp:
        tmp.unlink()
        gdf.to_file(tmp, layer="patches", driver="GPKG", engine="pyogrio")
        if areas is not None and not areas.whole and areas.chosen:
            areas_frame(areas).to_file(tmp, layer="areas", driver="GPKG", engine="pyogrio")
    return Path(path)


def read_patch_grid(path: str | Path) -> gpd.GeoDataFrame:
    """Load a patch grid written by :func:`write_patch_grid`.

    Args:
        path: A patch-grid GeoPackage.

    Returns:
        The grid, as written.
    """
    return gpd.read_file(path, layer="patches")


def read_area_record(path: str | Path) -> dict[str, JSON] | None:
    """How a grid's areas were chosen, from its ``areas`` layer; None for a whole mosaic.

    Args:
        path: A patch-grid GeoPackage.

    Returns:
        :func:`~flair_pipeline.dataset.areas.area_record`'s dict, or None when the grid
        has no ``areas`` layer (the mosaic was sampled whole).
    """
    if "areas" not in {str(n) for n, _ in pyogrio.list_layers(path)}:
        return None
    return area_record(gpd.read_file(path, layer="areas"))
