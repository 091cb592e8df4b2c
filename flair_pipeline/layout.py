"""Every path of the pipeline, in one place: raw inputs, dataset, models, evaluation.

One :class:`PathTemplate` per file or folder a stage reads or writes, relative to one of
the four data roots of ``paths.*`` in params.yaml (``raw``, ``dataset``, ``models``,
``eval``), with named fields (``{domain}``, ``{zone}``, ``{patch_id}``, ``{model}``,
``{part}``). Everything else is derived from these templates:

- the typed layouts the stages use (:class:`RawLayout`, :class:`DatasetLayout`,
  :class:`ModelFiles`, :class:`EvalFiles`),
- the files each asset owns in :mod:`flair_pipeline.orchestration.artifacts`, hence ``dvc.yaml``,
- the dataset prefixes an asset stages from URL roots (``@staged(...)``),
- the test that every file a stage writes is declared here (:func:`undeclared`).

Why a top-level module rather than ``dataset/layout.py``: sources, dataset, sentinel2,
training, evaluation and the Dagster front door all read it, so it sits below every stage
package (it imports nothing of the project), as torchgeo keeps FLAIR's file patterns in
one table and rslearn keeps a window's paths in one class. The folder names of the FLAIR
release layout (``aerial/<domain>/<zone>/img/IMG_<id>.tif``…) are FLAIR's own (IGNF
FLAIR #1/#2 data papers); the rest is this project's convention (docs/data-format.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Root = Literal["raw", "dataset", "models", "eval"]
#: The data roots, in the order of ``paths.*`` in params.yaml.
ROOTS: tuple[Root, ...] = ("raw", "dataset", "models", "eval")

_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class PathTemplate:
    """A file or folder under one data root, with ``{field}`` placeholders.

    Attributes:
        root: The data root it lives under (``raw``, ``dataset``, ``models``, ``eval``).
        rel: Its path relative to that root, ``/``-separated, e.g.
            ``"aerial/{domain}/{zone}/img/IMG_{patch_id}.tif"``.
        folder: True for a folder; every file below it belongs to it.
    """

    root: Root
    rel: str
    folder: bool = False

    @property
    def template(self) -> str:
        """The template with its root as a field: ``"{dataset}/aerial/{domain}"``.

        This is the syntax of :mod:`flair_pipeline.orchestration.artifacts` (and, once its roots
        and ``{domain}`` are rewritten, of dvc.yaml).
        """
        return f"{{{self.root}}}/{self.rel}"

    def fill(self, **fields: str) -> PathTemplate:
        """The same template with some fields replaced by values, others kept.

        Args:
            **fields: Field name to value, e.g. ``model="unet"``.

        Returns:
            A new template; ``fill(model="unet")`` of ``{model}/report.json`` is
            ``unet/report.json``.
        """
        rel = self.rel
        for key, value in fields.items():
            rel = rel.replace(f"{{{key}}}", value)
        return PathTemplate(self.root, rel, self.folder)

    def prefix(self, **fields: str) -> str:
        """The relative path with every field filled (a staging prefix).

        Args:
            **fields: A value for each ``{field}`` of the template.

        Returns:
            The relative path (POSIX), e.g. ``aerial/D006_2020``.

        Raises:
            KeyError: A field of the template is not given.
        """
        return self.rel.format(**fields)

    def under(self, root: Path, **fields: str) -> Path:
        """The path under a local `root` folder, every field filled.

        Args:
            root: The data root the template is relative to.
            **fields: A value for each ``{field}`` of the template.

        Returns:
            ``root / prefix``.

        Raises:
            KeyError: A field of the template is not given.
        """
        return root / self.prefix(**fields)

    def relative_to(self, folder: PathTemplate) -> str:
        """This path relative to a folder template.

        ``RAW_DSM.relative_to(RAW_DOMAIN)`` is ``"dsm.tif"``.

        Args:
            folder: A folder template of the same root.

        Returns:
            The relative template text.

        Raises:
            ValueError: This path is not below `folder`.
        """
        head = folder.rel + "/"
        if folder.root != self.root or not self.rel.startswith(head):
            raise ValueError(f"{self.template} is not below {folder.template}")
        return self.rel[len(head) :]

    def all_domains(self) -> PathTemplate:
        """The folder holding every domain's copy of a per-domain path.

        ``aerial/{domain}`` -> ``aerial``; ``metadata/domains/{domain}.json`` ->
        ``metadata/domains``. An all-domain stage depends on that folder.

        Returns:
            That folder, as a folder template (the template itself when it has no ``{domain}``).
        """
        parts = self.rel.split("/")
        cut = next((i for i, p in enumerate(parts) if "{domain}" in p), len(parts))
        return PathTemplate(self.root, "/".join(parts[:cut]), cut < len(parts) or self.folder)

    def matches(self, root: Root, rel: str) -> bool:
        """Whether file `rel` (relative to data root `root`) is this path or lies below it.

        Args:
            root: The data root `rel` is relative to.
            rel: A POSIX relative path.

        Returns:
            True when `rel` fills this template (any value per field), or lies below it for a
            folder template.
        """
        if root != self.root:
            return False
        pattern = re.escape(self.rel)
        pattern = re.sub(r"\\\{(\w+)\\\}", r"[^/]+", pattern)
        tail = "(/.+)?" if self.folder else ""
        return re.fullmatch(pattern + tail, rel) is not None


def _t(root: Root, rel: str) -> PathTemplate:
    return PathTemplate(root, rel)


def _dir(root: Root, rel: str) -> PathTemplate:
    return PathTemplate(root, rel, folder=True)


# -- raw inputs (data/raw): docs/inputs.md ------------------------------------------------
RAW_DOMAIN = _dir("raw", "domains/{domain}")
RAW_ORTHO = _dir("raw", "domains/{domain}/ortho")
RAW_DSM = _t("raw", "domains/{domain}/dsm.tif")
RAW_DTM = _t("raw", "domains/{domain}/dtm.tif")
RAW_LABELS = _t("raw", "domains/{domain}/labels.gpkg")
RAW_DOMAIN_JSON = _t("raw", "domains/{domain}/domain.json")
RAW_SENTINEL2 = _dir("raw", "sentinel2")
RAW_SENTINEL2_CATALOG = _t("raw", "sentinel2/catalog.json")
#: The local Sentinel-1 archive (a static STAC catalog of calibrated VV/VH COGs).
RAW_SENTINEL1 = _dir("raw", "sentinel1")
RAW_SENTINEL1_CATALOG = _t("raw", "sentinel1/catalog.json")
#: RPG parcels and their LPIS tables (docs/inputs.md, "Crop-type labels from the RPG").
RAW_RPG = _dir("raw", "rpg")
RAW_RPG_PARCELS = _t("raw", "rpg/{domain}.gpkg")

# -- the dataset (data/dataset): FLAIR's release layout, docs/data-format.md ---------------
AERIAL = _dir("dataset", "aerial/{domain}")
IMG = _t("dataset", "aerial/{domain}/{zone}/img/IMG_{patch_id}.tif")
LABELS = _dir("dataset", "labels/{domain}")
MSK = _t("dataset", "labels/{domain}/{zone}/msk/MSK_{patch_id}.tif")
#: Crop-type labels from the RPG (3 bands: LPIS levels 1-3), on the MSK's grid.
CROP_LABELS = _dir("dataset", "crop_labels/{domain}")
CROP = _t("dataset", "crop_labels/{domain}/{zone}/crop/CROP_{patch_id}.tif")
SENTINEL = _dir("dataset", "sentinel/{domain}")
#: One zone's Sentinel-2 series: `part` is ``data.npy``, ``masks.npy``, ``products.txt``
#: (FLAIR's three files) or ``products.json`` (this project's provenance companion).
SEN2 = _t("dataset", "sentinel/{domain}/{zone}/sen/SEN2_sp_{domain}-{zone}_{part}")
SEN2_PARTS = ("data.npy", "masks.npy", "products.txt", "products.json")
#: One zone's Sentinel-1 series in one orbit direction (`orbit` ``ASC`` or ``DESC``): `part`
#: is ``data.npy`` (T×2×H×W float32, VV VH), ``dates.txt`` (YYYYMMDD per line) or
#: ``products.json`` (one record per date: coefficient, units, orbit, nodata…).
#: Its own tree, not under SENTINEL: a DVC stage's outputs may not overlap another's
#: (``sentinel2_series`` outputs ``sentinel/<domain>`` whole).
SENTINEL1 = _dir("dataset", "sentinel1/{domain}")
SEN1 = _t("dataset", "sentinel1/{domain}/{zone}/SEN1-{orbit}_sp_{domain}-{zone}_{part}")
SEN1_PARTS = ("data.npy", "dates.txt", "products.json")
METADATA = _dir("dataset", "metadata")
SOURCES_RECORD = _t("dataset", "metadata/sources/{domain}.json")
PATCH_GRID = _t("dataset", "metadata/patch_grid/{domain}.gpkg")
DOMAIN_METADATA = _t("dataset", "metadata/domains/{domain}.json")
DOMAIN_CENTROIDS = _t("dataset", "metadata/centroids/{domain}.json")
AERIAL_METADATA = _t("dataset", "metadata/aerial_metadata.json")
CENTROIDS = _t("dataset", "metadata/centroids_sp_to_patch.json")
SPLITS = _t("dataset", "metadata/splits.csv")
#: The packed training input (training/packing.py): one folder swapped in whole.
PACKED = _dir("dataset", "packed")
PACK_INFO = _t("dataset", "packed/pack.json")
PACK_META_ENCODING = _t("dataset", "packed/metadata_encoding.json")
PACKED_SPLIT = _dir("dataset", "packed/{split}")
PACKED_IMG = _t("dataset", "packed/{split}/img.npy")
PACKED_MSK = _t("dataset", "packed/{split}/msk.npy")
PACKED_META = _t("dataset", "packed/{split}/meta.npy")
PACKED_INDEX = _t("dataset", "packed/{split}/index.json")
#: The FLAIR-HUB model's data (stage hub_release): the dataset exported in FLAIR-HUB's
#: layout (or ``source.json`` naming params.yaml's hub.release/hub.manifest) and the
#: import-flair-hub manifest the model trains on.
HUB_RELEASE = _dir("dataset", "hub/release")
HUB_MANIFEST = _t("dataset", "hub/manifest.csv")
#: The folder of the FLAIR-HUB model (``<paths.models>/hub``, ``<paths.eval>/hub``).
HUB_MODEL = "hub"
#: One build step's lock of one domain (dataset/domain_lock.py): empty while free, the
#: holder's record while held; kept after use. Hidden, in no DVC output.
STAGE_LOCK = _t("dataset", ".locks/{stage}/{domain}.lock")

# -- trained models (data/models/<model folder>) ------------------------------------------
CHECKPOINTS = _dir("models", "{model}/checkpoints")
BEST_CKPT = _t("models", "{model}/checkpoints/best.ckpt")
LAST_CKPT = _t("models", "{model}/checkpoints/last.ckpt")
#: Lightning's CSVLogger and TensorBoardLogger own what is inside.
TRAIN_LOGS = _dir("models", "{model}/logs")
#: The one file of the CSV logger the pipeline reads (the per-epoch metrics).
TRAIN_LOG_METRICS = _t("models", "{model}/logs/metrics.csv")
TENSORBOARD = _dir("models", "{model}/tb")
#: DVCLive's folder (training/tracking.py): params.yaml, metrics.json (the last epoch's
#: values, `dvc exp show`) and one TSV per metric, one row per epoch (`dvc plots`).
DVCLIVE = _dir("models", "{model}/dvclive")
DVCLIVE_METRICS = _t("models", "{model}/dvclive/metrics.json")
DVCLIVE_PARAMS = _t("models", "{model}/dvclive/params.yaml")
DVCLIVE_PLOT = _t("models", "{model}/dvclive/plots/metrics/{metric}.tsv")
CURVES_PNG = _t("models", "{model}/curves.png")
TRAIN_REPORT = _t("models", "{model}/report.json")

# -- evaluations (data/eval/<model folder>, data/eval/maps) -------------------------------
PREDICTIONS = _dir("eval", "{model}/predictions")
PRED = _t("eval", "{model}/predictions/{domain}/PRED_{patch_id}.tif")
METRICS = _t("eval", "{model}/metrics.json")
CONFUSION_CSV = _t("eval", "{model}/confusion.csv")
CONFUSION_PNG = _t("eval", "{model}/confusion.png")
PER_DOMAIN_CSV = _t("eval", "{model}/per_domain.csv")
PATCHES_PNG = _t("eval", "{model}/patches.png")
COMPARISON = _t("eval", "comparison.md")
MAPS = _dir("eval", "maps")
MAP = _t("eval", "maps/map_{domain}_{model}.tif")
MAP_STYLE = _t("eval", "maps/map_{domain}_{model}.qml")  # its QGIS style (13 classes)
MAPS_SUMMARY = _t("eval", "maps/maps.md")

#: Every declared path by name (the names above), for docs and :func:`undeclared`.
TEMPLATES: dict[str, PathTemplate] = {
    name: value for name, value in globals().items() if isinstance(value, PathTemplate)
}

#: What the pipeline writes: every template but the raw inputs' (nothing writes raw data
#: but the synthetic world) and the folders that only group files declared one by one.
WRITTEN: tuple[PathTemplate, ...] = tuple(
    t
    for t in TEMPLATES.values()
    if t.root != "raw"
    and t
    not in (AERIAL, LABELS, CROP_LABELS, SENTINEL, METADATA, PACKED, PACKED_SPLIT, CHECKPOINTS)
    and t not in (PREDICTIONS, MAPS)
)


def undeclared(roots: dict[Root, Path]) -> list[str]:
    """Files under the given data roots that no written template declares.

    Hidden files (the atomic writers' temporary names) count too: none may be left behind.

    Args:
        roots: Local folder of each data root to list, e.g. ``{"dataset": Path(...)}``.

    Returns:
        ``"<root>/<relative path>"`` of each undeclared file, sorted; empty when all are.
    """
    out = []
    for root, folder in roots.items():
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = path.relative_to(folder).as_posix()
            if not any(t.matches(root, rel) for t in WRITTEN):
                out.append(f"{root}/{rel}")
    return out


@dataclass(frozen=True)
class RawLayout:
    """Where a domain's raw inputs are (``data/raw``), in the raw layout (docs/inputs.md).

    `root` is a local folder, or (for the steps that read their raw inputs in place, see
    :mod:`flair_pipeline.defs.staging`) an ``s3://`` / ``https://`` URL string: such a root
    gives only :meth:`domain_location`; every method returning a local ``Path`` refuses it
    with a ValueError (a ``Path`` would collapse the URL's ``//``).
    """

    root: Path | str

    @property
    def is_url(self) -> bool:
        """Whether the root is a URL (``scheme://…``) read in place."""
        return isinstance(self.root, str) and "://" in self.root

    @property
    def local_root(self) -> Path:
        """The root as a local folder.

        Raises:
            ValueError: The root is a URL (this use needs a local copy: a staged step).
        """
        if self.is_url:
            raise ValueError(
                f"{self.root}: a URL raw root is read in place by domain_location(); this "
                "use needs a local folder (stage the step: flair_pipeline/defs/staging.py)"
            )
        return Path(self.root)

    def domain_location(self, domain: str) -> Path | str:
        """The domain's folder, local or a URL: ``<raw>/domains/<domain>``.

        Args:
            domain: Domain id, e.g. ``D006_2020``.

        Returns:
            A ``Path`` under a local root; under a URL root, the URL string
            (``s3://bucket/raw/domains/D006_2020``).
        """
        if self.is_url:
            return f"{str(self.root).rstrip('/')}/{RAW_DOMAIN.prefix(domain=domain)}"
        return self.domain(domain)

    def domain(self, domain: str) -> Path:
        """The domain's folder: ``<raw>/domains/<domain>``.

        Args:
            domain: Domain id, e.g. ``D006_2020``.

        Returns:
            The path (it may not exist yet).

        Raises:
            ValueError: The root is a URL (use :meth:`domain_location`).
        """
        return RAW_DOMAIN.under(self.local_root, domain=domain)

    @property
    def domains_dir(self) -> Path:
        """The folder holding every domain folder: ``<raw>/domains``."""
        return RAW_DOMAIN.all_domains().under(self.local_root)

    def ortho_dir(self, domain: str) -> Path:
        """The folder of the domain's orthophoto tiles.

        Args:
            domain: Domain id, e.g. ``D006_2020``.

        Returns:
            The path (it may not exist yet).
        """
        return RAW_ORTHO.under(self.local_root, domain=domain)

    def dsm(self, domain: str) -> Path:
        """The domain's surface model (GeoTIFF, metres).

        Args:
            domain: Domain id, e.g. ``D006_2020``.

        Returns:
            The path (it may not exist yet).
        """
        return RAW_DSM.under(self.local_root, domain=domain)

    def dtm(self, domain: str) -> Path:
        """The domain's terrain model (GeoTIFF, metres).

        Args:
            domain: Domain id, e.g. ``D006_2020``.

        Returns:
            The path (it may not exist yet).
        """
        return RAW_DTM.under(self.local_root, domain=domain)

    def labels(self, domain: str) -> Path:
        """The domain's label polygons (GeoPackage).

        Args:
            domain: Domain id, e.g. ``D006_2020``.

        Returns:
            The path (it may not exist yet).
        """
        return RAW_LABELS.under(self.local_root, domain=domain)

    def domain_json(self, domain: str) -> Path:
        """The domain's flight facts (``domain.json``).

        Args:
            domain: Domain id, e.g. ``D006_2020``.

        Returns:
            The path (it may not exist yet).
        """
        return RAW_DOMAIN_JSON.under(self.local_root, domain=domain)

    def sentinel2_catalog(self) -> Path:
        """The static STAC catalog of the local Sentinel-2 archive.

        Returns:
            The path (it may not exist yet).
        """
        return RAW_SENTINEL2_CATALOG.under(self.local_root)

    def sentinel1_catalog(self) -> Path:
        """The static STAC catalog of the local Sentinel-1 archive.

        Returns:
            The path (it may not exist yet).
        """
        return RAW_SENTINEL1_CATALOG.under(self.local_root)


@dataclass(frozen=True)
class DatasetLayout:
    """Where the product goes (``data/dataset``), as in FLAIR's releases."""

    root: Path

    def img(self, domain: str, zone: str, patch_id: str) -> Path:
        """``IMG_<id>.tif`` of a patch (5 bands uint8, EPSG:2154).

        Args:
            domain: Domain id, e.g. ``D006_2020``.
            zone: Zone name, e.g. ``Z1_UA``.
            patch_id: Patch id (the ``<id>`` of ``IMG_<id>.tif``).

        Returns:
            The path (it may not exist yet).
        """
        return IMG.under(self.root, domain=domain, zone=zone, patch_id=patch_id)

    def msk(self, domain: str, zone: str, patch_id: str) -> Path:
        """``MSK_<id>.tif`` of a patch (1 band uint8 codes).

        Args:
            domain: Domain id, e.g. ``D006_2020``.
            zone: Zone name, e.g. ``Z1_UA``.
            patch_id: Patch id (the ``<id>`` of ``IMG_<id>.tif``).

        Returns:
            The path (it may not exist yet).
        """
        return MSK.under(self.root, domain=domain, zone=zone, patch_id=patch_id)

    def sen_dir(self, domain: str, zone: str) -> Path:
        """The folder of a zone's Sentinel-2 series.

        Args:
            domain: Domain id, e.g. ``D006_2020``.
            zone: Zone name, e.g. ``Z1_UA``.

        Returns:
            The path (it may not exist yet).
        """
        return self.sen_file(domain, zone, SEN2_PARTS[0]).parent

    def sen_prefix(self, domain: str, zone: str) -> Path:
        """A zone's series without its suffix: ``…/SEN2_sp_<domain>-<zone>``.

        Args:
            domain: Domain id, e.g. ``D006_2020``.
            zone: Zone name, e.g. ``Z1_UA``.

        Returns:
            The path (it may not exist yet).
        """
        name = SEN2.rel.rpartition("/")[2].removesuffix("_{part}")
        return self.sen_dir(domain, zone) / name.format(domain=domain, zone=zone)

    def sen_file(self, domain: str, zone: str, part: str) -> Path:
        """One file of a zone's series; `part` is one of :data:`SEN2_PARTS`.

        Args:
            domain: Domain id, e.g. ``D006_2020``.
            zone: Zone name, e.g. ``Z1_UA``.
            part: One of :data:`SEN2_PARTS`.

        Returns:
            The path (it may not exist yet).
        """
        return SEN2.under(self.root, domain=domain, zone=zone, part=part)

    def sen1_file(self, domain: str, zone: str, orbit: str, part: str) -> Path:
        """One file of a zone's Sentinel-1 series; `part` is one of :data:`SEN1_PARTS`.

        Args:
            domain: Domain id, e.g. ``D006_2020``.
            zone: Zone name, e.g. ``Z1_UA``.
            orbit: ``ASC`` or ``DESC``.
            part: One of :data:`SEN1_PARTS`.

        Returns:
            The path (it may not exist yet).
        """
        return SEN1.under(self.root, domain=domain, zone=zone, orbit=orbit, part=part)

    @property
    def metadata_dir(self) -> Path:
        """``<dataset>/metadata``."""
        return METADATA.under(self.root)

    def sources_record(self, domain: str) -> Path:
        """The record of a domain's raw inputs and their fingerprint (JSON).

        Args:
            domain: Domain id, e.g. ``D006_2020``.

        Returns:
            The path (it may not exist yet).
        """
        return SOURCES_RECORD.under(self.root, domain=domain)

    def patch_grid(self, domain: str) -> Path:
        """A domain's patch footprints (GeoPackage).

        Args:
            domain: Domain id, e.g. ``D006_2020``.

        Returns:
            The path (it may not exist yet).
        """
        return PATCH_GRID.under(self.root, domain=domain)

    def stage_lock(self, stage: str, domain: str) -> Path:
        """The lock file of one build step (``patch_grid``…) of a domain.

        Args:
            stage: Build step name (``patch_grid``, ``aerial_patches``…).
            domain: Domain id, e.g. ``D006_2020``.

        Returns:
            The path (it may not exist yet).
        """
        return STAGE_LOCK.under(self.root, stage=stage, domain=domain)

    def domain_metadata(self, domain: str) -> Path:
        """A domain's aerial metadata and class distribution (JSON).

        Args:
            domain: Domain id, e.g. ``D006_2020``.

        Returns:
            The path (it may not exist yet).
        """
        return DOMAIN_METADATA.under(self.root, domain=domain)

    @property
    def domain_metadata_dir(self) -> Path:
        """The folder of every domain's :meth:`domain_metadata`."""
        return DOMAIN_METADATA.all_domains().under(self.root)

    def domain_centroids(self, domain: str) -> Path:
        """A domain's patch centroids in their super-area (row, col) (JSON).

        Args:
            domain: Domain id, e.g. ``D006_2020``.

        Returns:
            The path (it may not exist yet).
        """
        return DOMAIN_CENTROIDS.under(self.root, domain=domain)

    @property
    def domain_centroids_dir(self) -> Path:
        """The folder of every domain's :meth:`domain_centroids`."""
        return DOMAIN_CENTROIDS.all_domains().under(self.root)

    @property
    def aerial_metadata(self) -> Path:
        """FLAIR's ``aerial_metadata.json`` of every assigned domain."""
        return AERIAL_METADATA.under(self.root)

    @property
    def centroids(self) -> Path:
        """FLAIR's ``centroids_sp_to_patch.json`` of every built domain."""
        return CENTROIDS.under(self.root)

    @property
    def splits(self) -> Path:
        """``splits.csv``: the split of each domain."""
        return SPLITS.under(self.root)

    @property
    def packed(self) -> Path:
        """The packed training input's folder."""
        return PACKED.under(self.root)


def file_prefix(template: PathTemplate) -> str:
    """The fixed start of a per-patch template's file name: ``"IMG_"`` of :data:`IMG`.

    Args:
        template: A per-patch template (``…/IMG_{patch_id}.tif``).

    Returns:
        The prefix, e.g. ``"IMG_"``.

    Raises:
        ValueError: The file name does not start with a fixed prefix then ``{patch_id}``.
    """
    name = template.rel.rsplit("/", 1)[-1]
    head, sep, _ = name.partition("{patch_id}")
    if not sep or "{" in head:
        raise ValueError(f"{template.rel}: not a per-patch file")
    return head


def img_name(patch_id: str) -> str:
    """A patch's IMG file name, ``IMG_<patch_id>.tif``: the key of FLAIR's centroids JSON.

    Args:
        patch_id: The patch id.

    Returns:
        The file name.
    """
    return IMG.rel.rsplit("/", 1)[-1].format(patch_id=patch_id)


def patch_id_of(name: str) -> str:
    """The patch id in an IMG file name or FLAIR metadata key (``IMG_<id>[.tif]``).

    Args:
        name: ``IMG_<id>.tif`` or ``IMG_<id>``.

    Returns:
        The id.
    """
    return name.removeprefix(file_prefix(IMG)).removesuffix(".tif")


def packed_file(template: PathTemplate, pack: Path, **fields: str) -> Path:
    """A ``packed/…`` template's path inside pack folder `pack`.

    Args:
        template: One of the ``PACK*`` / ``PACKED_*`` templates.
        pack: The pack's folder: the live ``packed/`` or the temporary folder it is built in
            before the swap.
        **fields: ``split`` for the per-split files.

    Returns:
        ``pack / <the template below packed/>``.

    Raises:
        ValueError: `template` is not below ``packed/``.
    """
    return pack / template.relative_to(PACKED).format(**fields)


def sen2_file(prefix: Path, part: str) -> Path:
    """One file of a Sentinel-2 series from its prefix.

    Args:
        prefix: ``…/SEN2_sp_<domain>-<zone>``, as a training record holds it.
        part: One of :data:`SEN2_PARTS`.

    Returns:
        ``<prefix>_<part>``.
    """
    return Path(f"{prefix}_{part}")


def _in_folder(template: PathTemplate, folder: Path, **fields: str) -> Path:
    """A ``{model}/…`` template's path inside one model's folder, other fields filled.

    Args:
        template: A template starting with ``{model}/``.
        folder: The model's folder.
        **fields: Values of the template's other fields.

    Returns:
        The path inside `folder`.

    Raises:
        ValueError: The template is not per-model.
    """
    head, _, rest = template.rel.partition("/")
    if head != "{model}":
        raise ValueError(f"{template.rel}: not a per-model template")
    return folder / rest.format(**fields)


@dataclass(frozen=True)
class ModelFiles:
    """The files of one trained model, in its folder (``<paths.models>/<folder>``).

    The folder is given rather than derived so that ``flair-pipeline train --out`` may
    put a model anywhere; :meth:`of` gives the pipeline's own folder of a model.
    """

    folder: Path

    @classmethod
    def of(cls, models_root: Path, folder: str) -> ModelFiles:
        """The files of model folder `folder` (see the model registry) under the root.

        Args:
            models_root: The models root (``paths.models``).
            folder: The model's folder name (see the model registry).

        Returns:
            The path (it may not exist yet).
        """
        return cls(CHECKPOINTS.under(models_root, model=folder).parent)

    @property
    def checkpoints(self) -> Path:
        """Lightning's checkpoint folder."""
        return _in_folder(CHECKPOINTS, self.folder)

    @property
    def best(self) -> Path:
        """The checkpoint of the best validation mIoU."""
        return _in_folder(BEST_CKPT, self.folder)

    @property
    def last(self) -> Path:
        """The checkpoint of the last epoch (``train --resume`` continues from it)."""
        return _in_folder(LAST_CKPT, self.folder)

    @property
    def logs(self) -> Path:
        """The CSV logger's folder."""
        return _in_folder(TRAIN_LOGS, self.folder)

    @property
    def log_metrics(self) -> Path:
        """The CSV logger's per-epoch metrics (Lightning's ``metrics.csv``)."""
        return _in_folder(TRAIN_LOG_METRICS, self.folder)

    @property
    def tensorboard(self) -> Path:
        """The TensorBoard logger's folder."""
        return _in_folder(TENSORBOARD, self.folder)

    @property
    def dvclive(self) -> Path:
        """DVCLive's folder: params, last-epoch metrics, one TSV per metric."""
        return _in_folder(DVCLIVE, self.folder)

    def dvclive_plot(self, metric: str) -> Path:
        """DVCLive's TSV of one metric (columns ``timestamp``, ``step`` = epoch, `metric`).

        Args:
            metric: The metric's name as logged (``train/loss``, ``val/miou``…).

        Returns:
            ``<model>/dvclive/plots/metrics/<metric>.tsv``.
        """
        return _in_folder(DVCLIVE_PLOT, self.folder, metric=metric)

    @property
    def curves_png(self) -> Path:
        """The training curves figure."""
        return _in_folder(CURVES_PNG, self.folder)

    @property
    def report(self) -> Path:
        """``report.json``: what the training run produced."""
        return _in_folder(TRAIN_REPORT, self.folder)


@dataclass(frozen=True)
class EvalFiles:
    """The files of one model's evaluation on the test split (``<paths.eval>/<folder>``)."""

    folder: Path

    @classmethod
    def of(cls, eval_root: Path, folder: str) -> EvalFiles:
        """The evaluation files of model folder `folder` under the eval root.

        Args:
            eval_root: The evaluation root (``paths.eval``).
            folder: The model's folder name (see the model registry).

        Returns:
            The path (it may not exist yet).
        """
        return cls(METRICS.under(eval_root, model=folder).parent)

    @property
    def predictions(self) -> Path:
        """The folder of ``PRED_<id>.tif`` maps, one subfolder per domain."""
        return _in_folder(PREDICTIONS, self.folder)

    def pred(self, domain: str, patch_id: str) -> Path:
        """The predicted map of one test patch.

        Args:
            domain: Domain id, e.g. ``D006_2020``.
            patch_id: Patch id (the ``<id>`` of ``IMG_<id>.tif``).

        Returns:
            The path (it may not exist yet).
        """
        return _in_folder(PRED, self.folder, domain=domain, patch_id=patch_id)

    @property
    def metrics(self) -> Path:
        """``metrics.json``: FLAIR's scores."""
        return _in_folder(METRICS, self.folder)

    @property
    def confusion_csv(self) -> Path:
        """The 13 x 13 confusion matrix (pixel counts)."""
        return _in_folder(CONFUSION_CSV, self.folder)

    @property
    def confusion_png(self) -> Path:
        """The row-normalised confusion matrix figure."""
        return _in_folder(CONFUSION_PNG, self.folder)

    @property
    def per_domain_csv(self) -> Path:
        """mIoU, accuracy and per-class IoU per domain."""
        return _in_folder(PER_DOMAIN_CSV, self.folder)

    @property
    def patches_png(self) -> Path:
        """The figure of a few test patches."""
        return _in_folder(PATCHES_PNG, self.folder)


def comparison(eval_root: Path) -> Path:
    """``comparison.md``: one table of every evaluated model.

    Args:
        eval_root: The evaluation root (``paths.eval``).

    Returns:
        Its ``comparison.md``.
    """
    return COMPARISON.under(eval_root)


def maps_dir(eval_root: Path) -> Path:
    """Where the demo's large-area maps go.

    Args:
        eval_root: The evaluation root (``paths.eval``).

    Returns:
        The maps folder.
    """
    return MAPS.under(eval_root)


def map_path(maps_folder: Path, domain: str, folder: str) -> Path:
    """The large-area map of `domain` by model folder `folder`, inside `maps_folder`.

    Args:
        maps_folder: The maps folder (:func:`maps_dir` or another).
        domain: Domain id.
        folder: The model's folder name.

    Returns:
        The map's GeoTIFF path.
    """
    return maps_folder / MAP.rel.partition("/")[2].format(domain=domain, model=folder)
