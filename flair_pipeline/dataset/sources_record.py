"""A domain's raw inputs, checked and fingerprinted: ``metadata/sources/<domain>.json``.

The first step of a domain's build (:mod:`flair_pipeline.dataset.build`), the
``domain_sources`` asset's function. The listing and fingerprint are the sensor's
(:mod:`flair_pipeline.sources.domain_inputs`), so the fingerprint recorded here equals the
one in the sensor's run keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fsspec.implementations.local import LocalFileSystem

from flair_pipeline.dataset import metadata as md
from flair_pipeline.dataset.domain_lock import holds
from flair_pipeline.domains import DomainId
from flair_pipeline.errors import InputError
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.reports import JSON, StageReport
from flair_pipeline.sources import domain_inputs
from flair_pipeline.sources.domain_spec import DomainInputs, resolve

if TYPE_CHECKING:  # geopandas only for the annotation: not imported at run time here
    import geopandas as gpd


def domain_input_files(raw: RawLayout, domain: str) -> list[Path]:
    """The files a domain needs, in fingerprint order.

    Same listing as the sensor's (:mod:`flair_pipeline.sources.domain_inputs`), so the
    fingerprint recorded here equals the one in the sensor's run keys.

    Args:
        raw: The raw data root.
        domain: A domain id such as ``D006_2020``.

    Returns:
        Absolute paths of every input file of the domain.

    Raises:
        DomainIdError: `domain` is not a domain id.
        InputError: The domain folder or a required input is missing (named).
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
    """sha256 over relative names and contents: changes iff an input changes.

    Args:
        files: The domain's input files (:func:`domain_input_files`).
        root: The domain folder the names are taken relative to.

    Returns:
        The hex digest (64 characters).
    """
    return domain_inputs.fingerprint(
        LocalFileSystem(), [str(f) for f in files], os.path.abspath(root)
    )


@dataclass(frozen=True)
class SourcesReport(StageReport):
    """A domain's raw inputs, checked and fingerprinted (``metadata/sources/<domain>.json``)."""

    domain: str
    fingerprint: str
    ortho_tiles: int
    inputs: str  # "domain.yaml" or "raw layout"
    label_polygons: int
    repaired_geometries: int
    input_bytes: int
    camera: str
    flight_date: str

    def as_metadata(self) -> dict[str, JSON]:
        """Fingerprint, tile and polygon counts, input size (MB), camera and flight date."""
        return {
            "fingerprint": self.fingerprint,
            "ortho_tiles": self.ortho_tiles,
            "inputs": self.inputs,
            "label_polygons": self.label_polygons,
            "repaired_geometries": self.repaired_geometries,
            "input_mb": round(self.input_bytes / 1e6, 2),
            "camera": self.camera,
            "flight_date": self.flight_date,
        }


@holds("domain_sources")
def record_domain_sources(
    domain: str,
    raw: RawLayout,
    dataset: DatasetLayout,
    *,
    inputs: DomainInputs | None = None,
    labels: gpd.GeoDataFrame | None = None,
) -> SourcesReport:
    """Check a domain's raw inputs (presence, domain.json, label codes) and record them.

    Writes ``metadata/sources/<domain>.json``: the fingerprint, the input files (relative),
    their total size in bytes and the validated domain facts. Holds the domain's
    ``domain_sources`` lock while it runs (another build of it waits,
    :mod:`~flair_pipeline.dataset.domain_lock`).

    Args:
        domain: A domain id such as ``D006_2020``.
        raw: The raw data root.
        dataset: The dataset root written to.
        inputs: The domain's inputs already resolved (``sources.domain_spec.resolve``), or
            None to resolve them here.
        labels: The label layer already read and checked (``rasterize.read_labels``), or
            None to read it here.

    Returns:
        The :class:`SourcesReport`.

    Raises:
        InputError: A missing input, an invalid domain.json or bad label codes (named).
    """
    from flair_pipeline.dataset.rasterize import read_labels

    files = domain_input_files(raw, domain)
    if inputs is None:  # resolving validates domain.json (or the spec's facts)
        inputs = resolve(raw.domain(domain))
    if labels is None:  # reading checks the codes and geometries
        labels = read_labels(inputs.labels, mapping=inputs.mapping)
    info = inputs.info
    fp = fingerprint(files, raw.domain(domain))
    total = sum(f.stat().st_size for f in files)
    record = {
        "domain": domain,
        "fingerprint": fp,
        "files": [str(f.relative_to(raw.domain(domain))) for f in files],
        "bytes": total,
        "info": info,
    }
    md.write_json(record, dataset.sources_record(domain))
    ortho = inputs.ortho
    tiles = len(files) - 4 if isinstance(ortho, Path) else sum(len(p.files) for p in ortho)
    return SourcesReport(
        domain=domain,
        fingerprint=fp,
        ortho_tiles=tiles,
        inputs="domain.yaml" if inputs.spec else "raw layout",
        label_polygons=len(labels),
        repaired_geometries=int(labels.attrs.get("repaired", 0)),
        input_bytes=total,
        camera=str(info.get("camera", "")),
        flight_date=str(info.get("date", "")),
    )
