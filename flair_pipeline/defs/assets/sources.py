"""Asset `domain_sources`: a domain's raw inputs, checked and fingerprinted."""

import os
from pathlib import Path

import dagster as dg
from fsspec.implementations.local import LocalFileSystem

from flair_pipeline.dataset.metadata import write_json
from flair_pipeline.defs.partitions import domains_partitions
from flair_pipeline.defs.resources import FlairConfig
from flair_pipeline.defs.staging import staged
from flair_pipeline.domains import DomainId
from flair_pipeline.errors import InputError
from flair_pipeline.layout import RawLayout
from flair_pipeline.sources import domain_inputs
from flair_pipeline.sources.domain_spec import resolve


def domain_input_files(raw: RawLayout, domain: str) -> list[Path]:
    """The files a domain needs; raises InputError naming what is missing.

    Same listing as the sensor's (:mod:`flair_pipeline.sources.domain_inputs`), so the
    fingerprint recorded here equals the one in the sensor's run keys.
    """
    DomainId.parse(domain)
    folder = raw.domain(domain)
    if not folder.is_dir():
        raise InputError(f"{folder}: domain folder not found")
    scan = domain_inputs.scan_domain(LocalFileSystem(), os.path.abspath(raw.root), domain)
    if scan.missing:
        first = scan.missing[0]
        if first == "ortho/*.tif":
            raise InputError(f"{raw.ortho_dir(domain)}: no orthophoto tiles (*.tif)")
        raise InputError(f"{folder / first}: required input missing")
    return [Path(f) for f in scan.files]


def fingerprint(files: list[Path], root: Path) -> str:
    """sha256 over relative names and contents: changes iff an input changes."""
    return domain_inputs.fingerprint(
        LocalFileSystem(), [str(f) for f in files], os.path.abspath(root)
    )


@dg.asset(
    partitions_def=domains_partitions,
    group_name="sources",
    kinds={"python", "geotiff", "geopackage"},
    description="A domain's raw inputs (orthophoto tiles, DSM/DTM, labels.gpkg, domain.json), "
    "checked for presence and fingerprinted so downstream assets rebuild only when they change.",
)
@staged()
def domain_sources(context: dg.AssetExecutionContext, flair: FlairConfig) -> dg.MaterializeResult:
    domain = context.partition_key
    raw, dataset = flair.raw(), flair.dataset()
    files = domain_input_files(raw, domain)
    from flair_pipeline.dataset.rasterize import read_labels

    inputs = resolve(raw.domain(domain))  # validates domain.json (or the spec's facts)
    labels = read_labels(inputs.labels, mapping=inputs.mapping)
    info = inputs.info
    fp = fingerprint(files, raw.domain(domain))
    record = {
        "domain": domain,
        "fingerprint": fp,
        "files": [str(f.relative_to(raw.domain(domain))) for f in files],
        "bytes": sum(f.stat().st_size for f in files),
        "info": info,
    }
    write_json(record, dataset.sources_record(domain))
    return dg.MaterializeResult(
        metadata={
            "fingerprint": fp,
            "ortho_tiles": (
                len(files) - 4 if inputs.spec is None else sum(len(p.files) for p in inputs.ortho)  # type: ignore[union-attr]
            ),
            "inputs": "domain.yaml" if inputs.spec else "raw layout",
            "label_polygons": len(labels),
            "repaired_geometries": int(labels.attrs.get("repaired", 0)),
            "input_mb": round(record["bytes"] / 1e6, 2),
            "camera": str(info.get("camera", "")),
            "flight_date": str(info.get("date", "")),
        },
        data_version=dg.DataVersion(fp[:16]),
    )
