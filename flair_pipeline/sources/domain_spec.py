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
from flair_pipeline.geo.raster_vrt import ORTHO_BANDS, Product, default_product, is_raster_name
from flair_pipeline.geo.surface import SurfaceInput
from flair_pipeline.sources.domain_info import (
    flight_time,
    read_domain_info,
    validate_domain_info,
)
from flair_pipeline.storage import gdal_path, is_url, read_text, remote_tree

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
    """What the build reads for one domain, whichever way the folder is written.

    Under a URL raw root (read in place), `folder`, `labels` and the mapping table are URL
    strings, the ortho products' and DSM/DTM files GDAL paths (``/vsis3/…``,
    ``/vsicurl/…``, :func:`flair_pipeline.storage.gdal_path`), the raw layout's ortho
    folder a single product and its DSM/DTM :class:`SurfaceInput` s of one file each.
    """

    folder: Path | str
    ortho: Path | list[Product]  # a folder of R,G,B,NIR tiles, or products
    dsm: Path | SurfaceInput
    dtm: Path | SurfaceInput
    labels: Path | str
    mapping: LabelMapping | None
    info: dict[str, Any]
    files: list[Path | str] = field(default_factory=list)  # every input, fingerprint order
    spec: Path | str | None = None
    labels_layer: str | None = None  # the layer the domain names (geo/label_layers.py)
    #: a URL folder's rasters: location (GDAL path) -> "<size>:<ETag or mtime>" from the
    #: listing (dataset/tile_record.py reuses headers whose version is unchanged); local: {}
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Folder:
    """A domain folder's files, listed once: a local folder or a URL (fsspec, one listing).

    Attributes:
        where: The folder: a local Path or a URL string.
        names: Relative POSIX paths of every file under it, sorted.
    """

    where: Path | str
    names: tuple[str, ...]
    stamps: tuple[str, ...] = ()  # a URL folder's "<size>:<version>" of each name

    @classmethod
    def of(cls, folder: Path | str) -> _Folder:
        """List `folder` once (recursively).

        Args:
            folder: A local folder, or an ``s3://`` / ``https://`` URL.

        Returns:
            The listing (empty when the folder does not exist).

        Raises:
            StorageError: The URL could not be listed (unreachable endpoint, denied access).
        """
        if is_url(folder):
            url = str(folder).rstrip("/")
            tree = remote_tree(url)  # sorted by name
            return cls(url, tuple(n for n, _, _ in tree), tuple(f"{s}:{v}" for _, s, v in tree))
        root = Path(folder)
        if not root.is_dir():
            return cls(root, ())
        names = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        return cls(root, tuple(sorted(names)))

    @property
    def name(self) -> str:
        """The folder's own name (the domain id)."""
        return str(self.where).rstrip("/").rsplit("/", 1)[-1]

    def location(self, name: str) -> Path | str:
        """Where the file `name` is: a local Path, or the URL string.

        Args:
            name: A relative POSIX path.

        Returns:
            ``folder / name``, or ``<url>/<name>``.
        """
        if isinstance(self.where, str):
            return f"{self.where}/{name}"
        return self.where / name

    def raster(self, name: str) -> Path | str:
        """Where GDAL opens the raster `name`: the local Path, or its GDAL VSI path.

        Args:
            name: A relative POSIX path.

        Returns:
            The local Path, or ``/vsis3/…`` / ``/vsicurl/…`` for a URL folder.
        """
        found = self.location(name)
        return gdal_path(found) if isinstance(found, str) else found

    def versions(self) -> dict[str, str]:
        """A URL folder's rasters' versions by GDAL path (empty for a local folder).

        Returns:
            ``{GDAL path: "<size>:<ETag or mtime>"}`` of every raster-named file.
        """
        if not self.stamps:
            return {}
        return {
            str(self.raster(n)): v
            for n, v in zip(self.names, self.stamps, strict=True)
            if is_raster_name(n.rsplit("/", 1)[-1])
        }

    def has(self, name: str) -> bool:
        """Whether the folder holds the file `name`.

        Args:
            name: An exact relative POSIX path.

        Returns:
            True when the listing has it.
        """
        return name in self.names

    def read_text(self, name: str) -> str | None:
        """The text of the small file `name` (``domain.yaml``), or None when absent.

        Args:
            name: A relative POSIX path.

        Returns:
            Its UTF-8 text, or None when it is not there (removed since the listing).

        Raises:
            OSError: A local file cannot be read.
            StorageError: The store failed.
        """
        found = self.location(name)
        if isinstance(found, str):
            return read_text(found)
        return found.read_text() if found.is_file() else None

    def match(self, pattern: str) -> list[str]:
        """Names whose relative POSIX path matches `pattern`, case ignored; sorted.

        Args:
            pattern: A glob (``ortho/*.jp2``), relative to the folder.

        Returns:
            The matching relative names.
        """
        pat = pattern.lower().lstrip("./")
        return [n for n in self.names if fnmatch.fnmatchcase(n.lower(), pat)]


def match(folder: Path, pattern: str) -> list[Path]:
    """Files under `folder` whose relative POSIX path matches `pattern`, case ignored; sorted.

    Args:
        folder: The domain folder.
        pattern: A glob (``ortho/*.jp2``), relative to `folder`.

    Returns:
        The matching files.
    """
    listing = _Folder.of(folder)
    return [Path(folder) / n for n in listing.match(pattern)]


def load_spec(path: Path | str, text: str | None = None) -> DomainSpec:
    """The parsed spec.

    Args:
        path: A ``domain.yaml`` (named in errors; read when `text` is None).
        text: Its content, already read (a spec behind a URL).

    Returns:
        The validated spec.

    Raises:
        InputError: Unreadable YAML or invalid keys, naming the file and each bad key.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text() if text is None else text)
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


def _one_or_more(folder: _Folder, spec_path: Path | str, role: str, pattern: str) -> list[str]:
    found = folder.match(pattern)
    if not found:
        raise InputError(
            f"{spec_path}: {role} glob {pattern!r} matches no file under {folder.where} "
            "(case ignored)"
        )
    return found


def resolve(folder: Path | str, layout_info: Path | None = None) -> DomainInputs:
    """A domain folder's inputs: from ``domain.yaml`` when present, else the raw layout.

    The folder is listed once (recursively); a URL folder (``s3://…``, ``https://…``:
    a raw root read in place) is listed with fsspec and its ``domain.json`` /
    ``domain.yaml`` read with one GET each; its rasters are given as GDAL paths that read
    them in place.

    Args:
        folder: The domain folder: a local path, or a URL.
        layout_info: The ``domain.json`` of the raw layout (it wins over the spec's
            acquisition facts when both exist), or None.

    Returns:
        The ortho products, DSM, DTM, labels (layer, mapping) and flight facts.

    Raises:
        InputError: A piece is missing or a glob matches nothing, naming what.
        StorageError: A URL folder could not be listed or read.
    """
    listing = _Folder.of(folder)
    spec_path = listing.location(SPEC_NAME)
    info_path = layout_info or listing.location("domain.json")
    has_info = Path(info_path).is_file() if layout_info else listing.has("domain.json")
    info: dict[str, Any] = {}
    if has_info:  # validated (issue 15): one line naming the file and the field
        info = read_domain_info(info_path, listing.name).as_record()
    if not listing.has(SPEC_NAME):
        if not info:  # the raw layout needs its domain.json: one line saying so
            info = read_domain_info(info_path, listing.name).as_record()
        layer = _info_layer(info, info_path)
        if isinstance(listing.where, Path):
            where = listing.where
            return DomainInputs(
                where, where / "ortho", where / "dsm.tif", where / "dtm.tif",
                where / "labels.gpkg", None, info, labels_layer=layer,
            )  # fmt: skip
        tiles = [  # the Mosaic's selection (raster_vrt.raster_files): ortho/'s own tiles
            listing.raster(n)
            for n in listing.names
            if n.startswith("ortho/") and n.count("/") == 1 and is_raster_name(n[len("ortho/") :])
        ]
        if not tiles:
            raise InputError(
                f"{listing.location('ortho')}: no mosaic tiles (*.tif, *.tiff, *.jp2, any case) "
                "found"
            )
        return DomainInputs(
            listing.where,
            [default_product(tiles)],
            SurfaceInput((listing.raster("dsm.tif"),)),
            SurfaceInput((listing.raster("dtm.tif"),)),
            listing.location("labels.gpkg"),
            None,
            info,
            labels_layer=layer,
            versions=listing.versions(),
        )
    try:
        text = listing.read_text(SPEC_NAME)
    except OSError as exc:
        raise InputError(f"{spec_path}: cannot read as YAML ({exc})") from None
    if text is None:
        raise InputError(f"{spec_path}: removed while the domain was being read; rerun")
    spec = load_spec(spec_path, text)
    products: list[Product] = []
    files: list[Path | str] = []
    for o in spec.ortho:
        names = _one_or_more(listing, spec_path, f"ortho {o.name!r}", o.glob)
        products.append(
            Product(o.name, [listing.raster(t) for t in names], dict(o.bands), o.rescale)
        )
        files += [listing.location(t) for t in names]
    surfaces = []
    for role, s in (("dsm", spec.dsm), ("dtm", spec.dtm)):
        names = _one_or_more(listing, spec_path, role, s.glob)
        surfaces.append(SurfaceInput(tuple(listing.raster(t) for t in names), s.crs))
        files += [listing.location(t) for t in names]
    labels = _one_or_more(listing, spec_path, "labels", spec.labels.glob)
    if len(labels) > 1:
        raise InputError(
            f"{spec_path}: labels glob {spec.labels.glob!r} matches {len(labels)} files; "
            "name one label file"
        )
    fields = (spec.labels.field,) if isinstance(spec.labels.field, str) else spec.labels.field
    table = None
    if spec.labels.mapping:
        table = listing.location(
            _one_or_more(listing, spec_path, "labels mapping", spec.labels.mapping)[0]
        )
    mapping = None if table is None and fields == ("code",) else LabelMapping(tuple(fields), table)
    files += [*(listing.location(n) for n in _companions(listing, labels[0]))]
    files += [table] if table else []
    if not info:  # the spec's acquisition facts, validated like a domain.json
        facts = spec.acquisition.model_dump() if spec.acquisition is not None else {}
        data = {"domain": listing.name, **{k: v for k, v in facts.items() if v is not None}}
        info = validate_domain_info(data, spec_path, listing.name).as_record()
    files.append(spec_path)
    if has_info:
        files.append(info_path)
    layer = spec.labels.layer
    named = _info_layer(info, info_path) if has_info else None
    if named is not None and layer is not None and named != layer:
        raise InputError(
            f'{spec_path}: labels.layer {layer!r} differs from "labels_layer" {named!r} of '
            f"{info_path}; keep one of them"
        )
    return DomainInputs(
        listing.where,
        products,
        surfaces[0],
        surfaces[1],
        listing.location(labels[0]),
        mapping,
        info,
        files,
        spec_path,
        labels_layer=layer if layer is not None else named,
        versions=listing.versions(),
    )


def _info_layer(info: dict[str, Any], path: Path | str) -> str | None:
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
        f"found {layer!r}; fix {str(path).rsplit('/', 1)[-1]} and rerun"
    )


def _companions(folder: _Folder, name: str) -> list[str]:
    """A shapefile with its .shx/.dbf/.prj/.cpg (any case); any other file alone.

    Args:
        folder: The domain folder's listing.
        name: A file named by the spec (relative).

    Returns:
        The relative names to fingerprint with it, sorted.
    """
    if not name.lower().endswith(".shp"):
        return [name]
    head, _, base = name.rpartition("/")
    stem = base[: -len(".shp")].lower()
    prefix = f"{head}/" if head else ""
    return sorted(
        n
        for n in folder.names
        if n.startswith(prefix)
        and "/" not in n[len(prefix) :]
        and n[len(prefix) :].rsplit(".", 1)[0].lower() == stem
    )
