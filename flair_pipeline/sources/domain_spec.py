"""``domain.yaml``: a domain's inputs named by role, as the products are delivered.

A domain folder either keeps the project's raw layout (``ortho/*.tif`` of R,G,B,NIR tiles,
``dsm.tif``, ``dtm.tif``, ``labels.gpkg``, ``domain.json``), unchanged, or carries a
``domain.yaml`` naming each role with a glob (relative to the folder, matched without
regard to case) and options. Example for IGN's products (docs/inputs.md has one per product)::

    ortho:
      - {name: rvb, glob: "ortho/*-0M20-E080.jp2", bands: {R: 1, G: 2, B: 3}}
      - {name: irc, glob: "ortho/*-IRC-E080.jp2", bands: {NIR: 1}}   # IRC = NIR, R, G
    dsm: {glob: "lidar_hd/*_MNS_*.tif"}
    dtm: {glob: "rge_alti/*.asc", crs: "EPSG:2154"}                 # .asc carry no CRS
    labels:
      glob: "ocsge/OCCUPATION_SOL.gpkg"
      field: [code_cs, code_us]
      mapping: "ocsge/ocsge_to_flair.csv"
    acquisition: {date: "2022-06-14", time: "10h30", camera: "UCE-M3-f100-s06"}

:func:`resolve` turns it into the inputs the build reads; every glob that matches nothing,
and every unknown key, is an InputError naming ``domain.yaml`` and the key.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from flair_pipeline.errors import InputError
from flair_pipeline.geo.label_mapping import LabelMapping
from flair_pipeline.geo.raster_vrt import ORTHO_BANDS, Product
from flair_pipeline.geo.surface import SurfaceInput
from flair_pipeline.sources.domain_info import (
    flight_time,
    read_domain_info,
    validate_domain_info,
)

SPEC_NAME = "domain.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrthoSpec(_Strict):
    """One ortho product: its tiles and which of its bands give R, G, B, NIR."""

    name: str
    glob: str
    bands: dict[str, int]
    rescale: tuple[float, float] | None = None

    @field_validator("bands")
    @classmethod
    def _known_bands(cls, v: dict[str, int]) -> dict[str, int]:
        bad = [k for k in v if k not in ORTHO_BANDS]
        if bad or any(b < 1 for b in v.values()):
            raise ValueError(f"bands maps {list(ORTHO_BANDS)} to 1-based indices, got {v}")
        return v


class SurfaceSpec(_Strict):
    """A DSM or DTM: one file or tiles, and the CRS of files that carry none."""

    glob: str
    crs: str | None = None


class LabelSpec(_Strict):
    """Labels: any OGR vector or a label raster, its class field(s) and mapping table."""

    glob: str
    layer: str | None = None
    field: str | list[str] = "code"
    mapping: str | None = None

    @field_validator("field")
    @classmethod
    def _one_or_two(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not 1 <= len(v) <= 2:
            raise ValueError("field is one column or a list of two")
        return v


class AcquisitionSpec(_Strict):
    """``acquisition:`` of domain.yaml: flight date (YYYY-MM-DD), time, camera.

    The time is ``"HH:MM"``, ``"HH:MM:SS"`` or FLAIR's ``"HHhMM"``, kept as ``HH:MM:SS``
    (:func:`~flair_pipeline.sources.domain_info.flight_time`).
    """

    date: str | None = None
    time: str | None = None
    camera: str | None = None

    @field_validator("time", mode="before")
    @classmethod
    def _quoted_time(cls, v: Any) -> Any:
        return flight_time(v)  # before str: YAML's unquoted 10:30 is the number 630


class DomainSpec(_Strict):
    """A whole domain.yaml: ortho products, DSM, DTM, labels, acquisition facts."""

    ortho: list[OrthoSpec]
    dsm: SurfaceSpec
    dtm: SurfaceSpec
    labels: LabelSpec
    acquisition: AcquisitionSpec | None = None


@dataclass
class DomainInputs:
    """What the build reads for one domain, whichever way the folder is written."""

    folder: Path
    ortho: Path | list[Product]  # a folder of R,G,B,NIR tiles, or products
    dsm: Path | SurfaceInput
    dtm: Path | SurfaceInput
    labels: Path
    mapping: LabelMapping | None
    info: dict[str, Any]
    files: list[Path] = field(default_factory=list)  # every input, fingerprint order
    spec: Path | None = None
    labels_layer: str | None = None  # the layer the domain names (geo/label_layers.py)


def match(folder: Path, pattern: str) -> list[Path]:
    """Files under `folder` whose relative POSIX path matches `pattern`, case ignored; sorted.

    Args:
        folder: The domain folder.
        pattern: A glob (``ortho/*.jp2``), relative to `folder`.

    Returns:
        The matching files.
    """
    pat = pattern.lower().lstrip("./")
    out = [
        p
        for p in folder.rglob("*")
        if p.is_file() and fnmatch.fnmatchcase(p.relative_to(folder).as_posix().lower(), pat)
    ]
    return sorted(out)


def load_spec(path: Path) -> DomainSpec:
    """The parsed spec.

    Args:
        path: A ``domain.yaml``.

    Returns:
        The validated spec.

    Raises:
        InputError: Unreadable YAML or invalid keys, naming the file and each bad key.
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read as YAML ({exc})") from None
    try:
        return DomainSpec.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise InputError(f"{path}: {problems}") from None


def _one_or_more(folder: Path, spec_path: Path, role: str, pattern: str) -> list[Path]:
    found = match(folder, pattern)
    if not found:
        raise InputError(
            f"{spec_path}: {role} glob {pattern!r} matches no file under {folder} (case ignored)"
        )
    return found


def resolve(folder: Path, layout_info: Path | None = None) -> DomainInputs:
    """A domain folder's inputs: from ``domain.yaml`` when present, else the raw layout.

    Args:
        folder: The domain folder.
        layout_info: The ``domain.json`` of the raw layout (it wins over the spec's
            acquisition facts when both exist), or None.

    Returns:
        The ortho products, DSM, DTM, labels (layer, mapping) and flight facts.

    Raises:
        InputError: A piece is missing or a glob matches nothing, naming what.
    """
    folder = Path(folder)
    spec_path = folder / SPEC_NAME
    info_path = layout_info or folder / "domain.json"
    info: dict[str, Any] = {}
    if info_path.is_file():  # validated (issue 15): one line naming the file and the field
        info = read_domain_info(info_path, folder.name).as_record()
    if not spec_path.is_file():
        if not info:  # the raw layout needs its domain.json: one line saying so
            info = read_domain_info(info_path, folder.name).as_record()
        return DomainInputs(
            folder,
            folder / "ortho",
            folder / "dsm.tif",
            folder / "dtm.tif",
            folder / "labels.gpkg",
            None,
            info,
            labels_layer=_info_layer(info, info_path),
        )
    spec = load_spec(spec_path)
    products, files = [], []
    for o in spec.ortho:
        tiles = _one_or_more(folder, spec_path, f"ortho {o.name!r}", o.glob)
        products.append(Product(o.name, tiles, dict(o.bands), o.rescale))
        files += tiles
    surfaces = []
    for role, s in (("dsm", spec.dsm), ("dtm", spec.dtm)):
        tiles = _one_or_more(folder, spec_path, role, s.glob)
        surfaces.append(SurfaceInput(tuple(tiles), s.crs))
        files += tiles
    labels = _one_or_more(folder, spec_path, "labels", spec.labels.glob)
    if len(labels) > 1:
        raise InputError(
            f"{spec_path}: labels glob {spec.labels.glob!r} matches {len(labels)} files; "
            "name one label file"
        )
    fields = (spec.labels.field,) if isinstance(spec.labels.field, str) else spec.labels.field
    table = None
    if spec.labels.mapping:
        table = _one_or_more(folder, spec_path, "labels mapping", spec.labels.mapping)[0]
    mapping = None if table is None and fields == ("code",) else LabelMapping(tuple(fields), table)
    files += [*_companions(labels[0]), *([table] if table else [])]
    if not info:  # the spec's acquisition facts, validated like a domain.json
        facts = spec.acquisition.model_dump() if spec.acquisition is not None else {}
        data = {"domain": folder.name, **{k: v for k, v in facts.items() if v is not None}}
        info = validate_domain_info(data, spec_path, folder.name).as_record()
    files.append(spec_path)
    if info_path.is_file():
        files.append(info_path)
    layer = spec.labels.layer
    named = _info_layer(info, info_path) if info_path.is_file() else None
    if named is not None and layer is not None and named != layer:
        raise InputError(
            f'{spec_path}: labels.layer {layer!r} differs from "labels_layer" {named!r} of '
            f"{info_path}; keep one of them"
        )
    return DomainInputs(
        folder,
        products,
        surfaces[0],
        surfaces[1],
        labels[0],
        mapping,
        info,
        files,
        spec_path,
        labels_layer=layer if layer is not None else named,
    )


def _info_layer(info: dict[str, Any], path: Path) -> str | None:
    """``labels_layer`` of a domain.json.

    Args:
        info: The parsed domain.json.
        path: The file, named in the error.

    Returns:
        The layer name, or None when absent.

    Raises:
        InputError: The field is not a non-empty string.
    """
    layer = info.get("labels_layer")
    if layer is None or (isinstance(layer, str) and layer.strip()):
        return layer
    raise InputError(
        f"{path}: field 'labels_layer': expected the name of a layer of labels.gpkg, "
        f"found {layer!r}; fix {path.name} and rerun"
    )


def _companions(path: Path) -> list[Path]:
    """A shapefile with its .shx/.dbf/.prj/.cpg (any case); any other file alone.

    Args:
        path: A file named by the spec.

    Returns:
        The files to fingerprint with it, sorted.
    """
    if path.suffix.lower() != ".shp":
        return [path]
    stem = path.stem.lower()
    return sorted(p for p in path.parent.iterdir() if p.is_file() and p.stem.lower() == stem)
