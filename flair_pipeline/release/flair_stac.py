"""A STAC description of a FLAIR release folder, and a QGIS style for its MSK and maps.

Built with pystac on the rows of :func:`flair_pipeline.sources.flair_release.index_release`,
so it describes an export of ours and an official release alike:

* ``stac/collection.json``: one Collection with the label extension (v1.0.1: raster
  segmentation labels) and the classification extension (v2.0.0: FLAIR's 19 codes, with
  names, titles and colours from :mod:`flair_pipeline.nomenclature`) in its summaries and
  ``item_assets``;
* ``stac/<domain>-<zone>/<domain>-<zone>.json``: one Item per zone, geometry the union of its
  patches' footprints in WGS84 (EPSG:4326, from Lambert-93), datetime the aerial acquisition
  date of its metadata (else the domain's year as start/end: a documented fallback), property
  ``flair:split``, and assets ``IMG_<id>`` / ``MSK_<id>`` per patch and ``SEN2_data``,
  ``SEN2_masks``, ``SEN2_products`` when the zone has a super-area, hrefs relative;
* ``flair-msk.qml``: a QGIS paletted-raster style for MSK and predicted maps (codes 1–19).

:func:`validate_offline` validates with pystac's JSON-schema validator without network:
pystac ships the core schemas, the two extension schemas are vendored in ``stac_schemas/``
(see ``stac_schemas/SOURCES.md``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pystac
import rasterio
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.label import LabelClasses, LabelExtension, LabelTask, LabelType
from pystac.validation import JsonSchemaSTACValidator, RegisteredValidator
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from flair_pipeline.errors import InputError
from flair_pipeline.io import atomic_path
from flair_pipeline.nomenclature import CLASSES
from flair_pipeline.release.export_folder import RECORD
from flair_pipeline.sources.flair_release import ManifestRow, index_release

SCHEMAS = Path(__file__).with_name("stac_schemas")
VENDORED = {
    "https://stac-extensions.github.io/label/v1.0.1/schema.json": "label-v1.0.1.json",
    "https://stac-extensions.github.io/classification/v2.0.0/schema.json": (
        "classification-v2.0.0.json"
    ),
}
COLLECTION_ID = "flair-release"
QML_NAME = "flair-msk.qml"


def class_name(name: str) -> str:
    """A machine-readable class name (classification v2: ``^[0-9A-Za-z-_]+$``).

    Args:
        name: A class name as FLAIR spells it.

    Returns:
        Runs of other characters replaced by ``-``, trimmed.
    """
    return re.sub(r"[^0-9A-Za-z]+", "-", name).strip("-")


def flair_classes() -> list[Classification]:
    """FLAIR's 19 codes as classification objects (value, name, title, colour).

    Returns:
        One per code 1..19, in code order.
    """
    return [
        Classification.create(
            value=c.code,
            name=class_name(c.name),
            title=c.name,
            description=f"FLAIR code {c.code}: {c.name}",
            color_hint=c.colour.lstrip("#").upper(),
        )
        for c in CLASSES
    ]


def _footprint(path: str) -> tuple[BaseGeometry, str]:
    with rasterio.open(path) as src:
        if src.crs is None:
            raise InputError(f"{path}: no CRS, cannot place the patch in WGS84")
        bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
    return box(*bounds), "EPSG:4326"


def _zone_dates(rows: list[ManifestRow]) -> tuple[dt.datetime | None, dt.datetime, dt.datetime]:
    dates = sorted(
        dt.date.fromisoformat(str(json.loads(r.metadata).get("date"))[:10])
        for r in rows
        if r.metadata and re.match(r"^\d{4}-\d{2}-\d{2}", str(json.loads(r.metadata).get("date")))
    )
    if dates:
        start = dt.datetime.combine(dates[0], dt.time(), dt.UTC)
        end = dt.datetime.combine(dates[-1], dt.time(), dt.UTC)
        return start, start, end
    year = int(rows[0].domain.split("_")[1])  # D006_2020 → the flight year
    start = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    return None, start, dt.datetime(year, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


def _zone_item(domain: str, zone: str, rows: list[ManifestRow], root: Path) -> pystac.Item:
    shapes = [_footprint(r.img_path)[0] for r in rows]
    geom = unary_union(shapes)
    when, start, end = _zone_dates(rows)
    splits = sorted({r.split for r in rows})
    item = pystac.Item(
        id=f"{domain}-{zone}",
        geometry=mapping(geom),
        bbox=list(geom.bounds),
        datetime=when,
        start_datetime=start if when is None else None,
        end_datetime=end if when is None else None,
        properties={
            "flair:domain": domain,
            "flair:zone": zone,
            "flair:split": splits[0] if len(splits) == 1 else splits,
        },
    )
    if when is not None and start != end:
        item.common_metadata.start_datetime, item.common_metadata.end_datetime = start, end
    for r in rows:
        item.add_asset(
            f"IMG_{r.patch_id}",
            pystac.Asset(
                Path(root, r.img).as_posix(),
                media_type=pystac.MediaType.GEOTIFF,
                roles=["data"],
                title=f"aerial IMG_{r.patch_id} (R, G, B, NIR, elevation; uint8)",
            ),
        )
        if r.msk:
            msk = pystac.Asset(
                Path(root, r.msk).as_posix(),
                media_type=pystac.MediaType.GEOTIFF,
                roles=["labels", "labels-raster"],
                title=f"labels MSK_{r.patch_id}",
            )
            item.add_asset(f"MSK_{r.patch_id}", msk)
            ClassificationExtension.ext(msk, add_if_missing=True).classes = flair_classes()
    sen = next((r.sen_prefix for r in rows if r.sen_prefix), "")
    if sen:
        for key, suffix, media in (
            ("SEN2_data", "_data.npy", "application/x-npy"),
            ("SEN2_masks", "_masks.npy", "application/x-npy"),
            ("SEN2_products", "_products.txt", "text/plain"),
        ):
            item.add_asset(key, pystac.Asset(f"{sen}{suffix}", media_type=media, roles=["data"]))
    label = LabelExtension.ext(item, add_if_missing=True)
    label.apply(
        label_description="FLAIR land-cover codes 1..19 per 0.2 m pixel (MSK_<id>.tif)",
        label_type=LabelType.RASTER,
        label_properties=None,
        label_classes=[LabelClasses.create(classes=[c.code for c in CLASSES], name=None)],
        label_tasks=[LabelTask.SEGMENTATION],
    )
    return item


def build_collection(release_dir: str | Path, name: str | None = None) -> pystac.Collection:
    """The Collection and its zone Items for the release at `release_dir` (not yet saved).

    `name` is the release's name in the title (default: the folder's). Patches an export
    left out for want of a Sentinel-2 series (its ``flair-export.json``) are listed in the
    collection's ``flair:excluded_without_sentinel2``.

    Args:
        release_dir: A FLAIR-2 release folder.
        name: The release's name, or None for the folder's.

    Returns:
        The collection, one item per zone, hrefs not yet set.

    Raises:
        InputError: The folder holds no indexable patch.
    """
    root = Path(release_dir).resolve()
    index = index_release(root, workers=2)
    if not index.rows:
        raise InputError(f"{root}: no indexable patch to describe")
    zones: dict[tuple[str, str], list[ManifestRow]] = defaultdict(list)
    for r in index.rows:
        zones[(r.domain, r.zone)].append(r)
    items = [_zone_item(d, z, rows, root) for (d, z), rows in sorted(zones.items())]
    # every zone item has a datetime or a start/end range (_zone_dates)
    starts = [d for i in items if (d := i.datetime or i.common_metadata.start_datetime)]
    ends = [d for i in items if (d := i.common_metadata.end_datetime or i.datetime)]
    extent = pystac.Extent(
        pystac.SpatialExtent([list(unary_union([box(*(i.bbox or ())) for i in items]).bounds)]),
        pystac.TemporalExtent([[min(starts), max(ends)]]),
    )
    coll = pystac.Collection(
        COLLECTION_ID,
        "FLAIR-style land-cover dataset: 0.2 m aerial patches (IMG), raster labels (MSK, FLAIR "
        "codes 1..19) and Sentinel-2 super-area time series (SEN2), one Item per zone.",
        extent,
        title=f"FLAIR release {name or root.name}",
        license="etalab-2.0",
    )
    record = root / RECORD
    excluded = (
        json.loads(record.read_text()).get("excluded_without_sentinel2")
        if (record.is_file())
        else None
    )
    if excluded:
        coll.extra_fields["flair:excluded_without_sentinel2"] = list(excluded)
        coll.description += (
            f" {len(excluded)} patches without a Sentinel-2 series were left out of this "
            "export (flair:excluded_without_sentinel2; FLAIR-2's loader needs a centroid "
            "for every patch)."
        )
    ClassificationExtension.summaries(coll, add_if_missing=True).classes = flair_classes()
    LabelExtension.summaries(coll, add_if_missing=True).label_type = [LabelType.RASTER]
    LabelExtension.add_to(coll)
    coll.add_items(items)
    return coll


def write_qml(path: str | Path) -> Path:
    """A QGIS paletted style for a single-band map of FLAIR codes 1..19 (MSK or PRED).

    Args:
        path: The ``.qml`` file written.

    Returns:
        `path` as a Path.
    """
    entries = "\n".join(
        f'        <paletteEntry value="{c.code}" color="{c.colour}" alpha="255" '
        f"label={quoteattr(c.name)}/>"
        for c in CLASSES
    )
    text = f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_stac(release_dir: str | Path, name: str | None = None) -> Path:
    """Write the STAC description and the QGIS style of a release folder.

    Write ``stac/`` (self-contained, relative hrefs) and the QML into `release_dir`.

    Args:
        release_dir: A FLAIR-2 release folder.
        name: The release's name (default: the folder's).

    Returns:
        The path of ``stac/collection.json``.

    Raises:
        InputError: The release is empty.
    """
    root = Path(release_dir).resolve()
    coll = build_collection(root, name)
    out = root / "stac"
    coll.normalize_hrefs(out.as_posix())
    coll.make_all_asset_hrefs_relative()
    coll.save(pystac.CatalogType.SELF_CONTAINED)
    write_qml(root / QML_NAME)
    return out / "collection.json"


def offline_validator() -> JsonSchemaSTACValidator:
    """Pystac's validator with the extension schemas from ``stac_schemas/`` (no network).

    Returns:
        A validator whose schema cache holds every vendored schema.
    """
    validator = JsonSchemaSTACValidator()
    for uri, name in VENDORED.items():
        validator.schema_cache[uri] = json.loads((SCHEMAS / name).read_text())
    return validator


def validate_offline(obj: pystac.STACObject) -> list[str]:
    """Validate `obj` with the offline validator; return the schema URIs checked.

    Args:
        obj: An item or a collection (every item of a collection is validated too).

    Returns:
        The schema URIs checked.

    Raises:
        pystac.errors.STACValidationError: The first failure.
    """
    previous = RegisteredValidator.get_validator()
    RegisteredValidator.set_validator(offline_validator())
    try:
        uris = list(obj.validate())
        if isinstance(obj, pystac.Collection):
            for item in obj.get_items(recursive=True):
                uris += item.validate()
    finally:
        RegisteredValidator.set_validator(previous)
    return uris
