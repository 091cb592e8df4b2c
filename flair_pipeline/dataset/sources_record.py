"""A domain's raw inputs, checked and fingerprinted: ``metadata/sources/<domain>.json``.

The first step of a domain's build (:mod:`flair_pipeline.dataset.build`), the
``domain_sources`` asset's function. The listing and fingerprint are the sensor's
(:mod:`flair_pipeline.sources.domain_inputs`), so the fingerprint recorded here equals the
one in the sensor's run keys.

An empty input is named as empty here, before any patch is cut (issue 30): a 0-byte file
(an interrupted copy or download) and a DSM or DTM whose every pixel is nodata
(:func:`check_not_empty`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from fsspec.implementations.local import LocalFileSystem

from flair_pipeline.dataset import aerial_metadata as md
from flair_pipeline.dataset import tile_record
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.domain_lock import holds
from flair_pipeline.domains import DomainId
from flair_pipeline.errors import InputError
from flair_pipeline.geo.surface import SurfaceInput
from flair_pipeline.layout import RawLayout
from flair_pipeline.reports import JSON, StageReport
from flair_pipeline.sources import domain_inputs
from flair_pipeline.sources.domain_spec import DomainInputs
from flair_pipeline.storage import gdal_env


def domain_scan(raw: RawLayout, domain: str) -> domain_inputs.DomainScan:
    """The domain's inputs listed and checked for presence: a local folder or a URL.

    Same listing as the sensor's (:mod:`flair_pipeline.sources.domain_inputs`), so the
    fingerprint recorded here equals the one in the sensor's run keys. Under a URL raw
    root (read in place) the folder is listed once with fsspec; nothing is read.

    Args:
        raw: The raw data root (a local folder or a URL).
        domain: A domain id such as ``D006_2020``.

    Returns:
        The scan: files in fingerprint order with their sizes.

    Raises:
        DomainIdError: `domain` is not a domain id.
        InputError: The domain folder or a required input is missing (named).
        StorageError: A URL root could not be listed.
    """
    DomainId.parse(domain)
    folder = raw.domain_location(domain)
    fs, root = domain_inputs.open_root(raw.root)
    scan = domain_inputs.scan_domain(fs, root, domain)
    if not (fs.isdir(scan.folder) if raw.is_url else Path(folder).is_dir()):
        raise InputError(f"{folder}: domain folder not found")
    if scan.missing:
        first = scan.missing[0]
        if first == "ortho/*.tif":
            raise InputError(f"{_join(folder, 'ortho')}: no orthophoto tiles (*.tif)")
        raise InputError(f"{_join(folder, first)}: required input missing")
    return scan


def _join(folder: Path | str, name: str) -> Path | str:
    """`name` under `folder`, a Path or a URL string.

    Returns:
        ``folder / name``, or ``<folder>/<name>`` for a URL.
    """
    return f"{folder}/{name}" if isinstance(folder, str) else folder / name


def domain_input_files(raw: RawLayout, domain: str) -> list[Path]:
    """The files a domain needs, in fingerprint order (a local raw root).

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
    return [Path(f) for f in domain_scan(raw, domain).files]


def check_not_empty(
    files: list[Path] | list[str], inputs: DomainInputs, sizes: tuple[int, ...] | None = None
) -> None:
    """Refuse a 0-byte input file, or a DSM/DTM whose every pixel is nodata.

    A surface is read block by block from its middle outwards and the first valid pixel
    ends the check (one block for a normal DSM); only an empty one is read whole.

    Args:
        files: The domain's input files (local paths, or URLs with `sizes`).
        inputs: The domain's resolved inputs (their DSM and DTM are checked).
        sizes: Each file's size in bytes from the listing (a URL root); None: stat them.

    Raises:
        InputError: ``<file>: empty file (0 bytes)`` or ``<dsm>: empty DSM: every pixel is
            nodata``, one line naming the file and what to do.
    """
    if sizes is None:
        sizes = tuple(Path(f).stat().st_size if Path(f).is_file() else -1 for f in files)
    for f, size in zip(files, sizes, strict=True):
        if size == 0:
            raise InputError(
                f"{f}: empty file (0 bytes; an interrupted copy or download?): "
                "replace it with the complete file and rerun"
            )
    for role, surface in (("DSM", inputs.dsm), ("DTM", inputs.dtm)):
        tiles = [surface] if isinstance(surface, Path) else list(surface.files)
        found = [_nodata_only(t) for t in tiles]
        if tiles and all(found):
            name = surface.name if isinstance(surface, SurfaceInput) else str(surface)
            raise InputError(
                f"{name}: empty {role}: every pixel is nodata ({found[0]}) in "
                f"{'its ' + str(len(tiles)) + ' tiles' if len(tiles) > 1 else 'the file'}: "
                f"replace it with a {role} that covers the domain and rerun"
            )


def _nodata_only(path: Path | str) -> str:
    """What marks every pixel of band 1 of `path` invalid ('' if one pixel is valid).

    Returns:
        '' when band 1 holds at least one valid (unmasked, finite) pixel; otherwise
        "nodata = <value>" when the file declares a nodata value, else "masked or NaN".

    Raises:
        InputError: `path` cannot be opened or read as a raster.
    """
    try:
        with gdal_env([path]), rasterio.open(path) as src:
            windows = [w for _, w in src.block_windows(1)]
            mid = len(windows) // 2
            for w in windows[mid:] + windows[:mid]:  # the middle first: likeliest to hold data
                a = src.read(1, window=w, masked=True)
                valid = ~np.ma.getmaskarray(a)
                if a.dtype.kind == "f":
                    valid &= np.isfinite(a.data)
                if valid.any():
                    return ""
            nodata = src.nodata
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"{path}: cannot open as a raster ({exc})") from None
    return f"nodata = {nodata:g}" if nodata is not None else "masked or NaN"


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
    label_polygons: int  # read: those over the mosaic (the labels by extent)
    repaired_geometries: int | None  # None: a département, its codes alone checked here
    input_bytes: int
    camera: str
    flight_date: str
    label_layer: str | None = None
    warnings: tuple[str, ...] = ()

    def as_metadata(self) -> dict[str, JSON]:
        """Fingerprint, tile and polygon counts, input size (MB), camera and flight date.

        Returns:
            A JSON-serialisable dict of the report's fields; ``input_mb`` is the inputs'
            total size in megabytes (10^6 bytes), rounded to 2 decimals.
        """
        return {
            "fingerprint": self.fingerprint,
            "ortho_tiles": self.ortho_tiles,
            "inputs": self.inputs,
            "label_polygons": self.label_polygons,
            "label_layer": self.label_layer,
            "repaired_geometries": self.repaired_geometries,
            "input_mb": round(self.input_bytes / 1e6, 2),
            "camera": self.camera,
            "flight_date": self.flight_date,
        }


@holds("domain_sources")
def record_domain_sources(ctx: DomainContext) -> SourcesReport:
    """Check a domain's raw inputs (presence, domain.json, label codes) and record them.

    The ortho tiles' headers are checked as the build will read them
    (:class:`~flair_pipeline.dataset.mosaic.Mosaic`): a tile at another pixel size than
    ``sampling.resolution`` is refused here, up front, unless ``ortho_resampling`` is set.

    Writes ``metadata/sources/<domain>.json``: the fingerprint, the input files (relative),
    their total size in bytes and the validated domain facts. Holds the domain's
    ``domain_sources`` lock while it runs (another build of it waits,
    :mod:`~flair_pipeline.dataset.domain_lock`).

    Args:
        ctx: The domain's build: its inputs are resolved (validating domain.json or the
            spec) and its label layer read and checked over the mosaic's extent here, if
            not yet; ``sampling``.

    Returns:
        The :class:`SourcesReport`.

    Raises:
        InputError: A missing input, an empty one (a 0-byte file, a DSM or DTM with no
            valid pixel), an invalid domain.json or bad label codes (named), an ortho
            tile the build would refuse (named).
    """
    domain, raw, dataset = ctx.domain, ctx.raw, ctx.dataset
    scan = domain_scan(raw, domain)
    files = scan.files
    inputs = ctx.inputs  # resolving validates domain.json (or the spec's facts)
    check_not_empty(files, inputs, scan.sizes)
    labels = ctx.label_summary  # reading checks the codes and geometries, block by block
    _ = ctx.mosaic_extent  # the mosaic opened as the build reads it (once a context): tiles checked
    info = inputs.info
    fs, _root = domain_inputs.open_root(raw.root)
    fp, _read = domain_inputs.content_fingerprint(fs, scan)
    assert fp is not None  # no deadline: always finishes
    total = scan.nbytes
    layer, decision = ctx.label_layer, ctx.label_layer_decision
    record = {
        "domain": domain,
        "fingerprint": fp,
        "fingerprint_kind": domain_inputs.fingerprint_kind(scan),
        "files": [domain_inputs.relative(f, scan.folder) for f in files],
        "bytes": total,
        "info": info,
        "labels_layer": layer,  # the layer read (None: a label raster), geo/label_layers.py
        "decisions": [decision] if decision else [],
    }
    if inputs.versions:  # a URL raw root: later steps reuse the headers (tile_record.py)
        record[tile_record.KEY] = tile_record.to_record(ctx.mosaic_tiles, inputs.versions)
    md.write_json(record, dataset.sources_record(domain))
    ortho = inputs.ortho
    tiles = len(files) - 4 if isinstance(ortho, Path) else sum(len(p.files) for p in ortho)
    return SourcesReport(
        domain=domain,
        fingerprint=fp,
        ortho_tiles=tiles,
        inputs="domain.yaml" if inputs.spec else "raw layout",
        label_polygons=labels.features,
        repaired_geometries=labels.repaired,
        input_bytes=total,
        camera=str(info.get("camera", "")),
        flight_date=str(info.get("date", "")),
        label_layer=layer,
        warnings=(decision,) if decision else (),
    )
