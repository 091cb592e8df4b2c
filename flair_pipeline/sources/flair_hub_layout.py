"""FLAIR-HUB's layout: patch ids, modality names, file paths and what each modality holds.

Source of every rule: IGN's FLAIR-HUB repository (IGNF/FLAIR-HUB at 3d5693b,
``src/flair_hub/data/``, ``configs/train/config_modalities.yaml``, ``csv/FLAIR-HUB_TOY.zip``)
and TorchGeo's ``FLAIRHUB`` dataset (``torchgeo/datasets/flair.py``):

- a patch id is ``D006-2020_FF-S1-14_5-5``: département and year joined by a hyphen (the
  *domain*), the area of interest (*ROI*, hyphens inside, never an underscore), and the
  patch's row-col in its area;
- a modality file is ``{D}-{Y}_{MODALITY}/{ROI}/{D}-{Y}_{MODALITY}_{ROI}_{r}-{c}.tif``,
  the historical ortho (``AERIAL-RLT_PAN``) under the pseudo-year ``195X``;
- labels: ``AERIAL_LABEL-COSIA`` is one band of **0-based** classes 0–18 (FLAIR #1/#2 MSK
  are 1-based, 1–19), ``ALL_LABEL-LPIS`` three bands (the crop nomenclature's 3 levels).
  COSIA's classes are **not** FLAIR #1/#2's shifted by one: they come in another order
  (``configs/train/config_supervision.yaml``, the COSIA and FLAIR ``.qml`` styles of
  ``color-styles/``: 0 building, 1 greenhouse, 2 swimming pool, …), so a FLAIR MSK becomes a
  COSIA label through :data:`FLAIR_TO_COSIA`, class by class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from flair_pipeline.errors import InputError

#: The pseudo-year of the historical ortho's folder and file names.
HISTORICAL_YEAR = "195X"


@dataclass(frozen=True)
class ModalitySpec:
    """What one FLAIR-HUB modality file holds.

    bands: bands of a single-date file; per_date: bands per date of a time series (its file
    has ``per_date × T`` bands, T the length of its dates row); size: width = height in
    pixels (None: not fixed by the release); dtypes: numpy dtypes accepted; dates: the
    dates GeoPackage that gives T (``GLOBAL_<dates>_MTD_DATES.gpkg``); label_max: the
    largest valid class of a label band (0-based).
    """

    name: str
    bands: int | None = None
    per_date: int | None = None
    size: int | None = None
    dtypes: tuple[str, ...] = ()
    dates: str | None = None
    label_max: int | None = None
    historical: bool = False


#: Every modality of the release, with its shape rules (issue 24 from IGN's code and
#: TorchGeo's; dtypes of the reflectances are left open: the release ships them as stored).
MODALITIES: dict[str, ModalitySpec] = {
    m.name: m
    for m in (
        ModalitySpec("AERIAL_RGBI", bands=4, size=512, dtypes=("uint8",)),
        ModalitySpec("AERIAL-RLT_PAN", bands=1, size=256, dtypes=("uint8",), historical=True),
        ModalitySpec("DEM_ELEV", bands=2, dtypes=("float32",)),
        ModalitySpec("SPOT_RGBI", bands=4, size=64),
        ModalitySpec("SENTINEL2_TS", per_date=10, size=10, dates="SENTINEL2"),
        ModalitySpec("SENTINEL2_MSK-SC", per_date=2, size=10, dtypes=("uint8",), dates="SENTINEL2"),
        ModalitySpec("SENTINEL1-ASC_TS", per_date=2, size=10, dates="SENTINEL1-ASC"),
        ModalitySpec("SENTINEL1-DESC_TS", per_date=2, size=10, dates="SENTINEL1-DESC"),
        ModalitySpec("AERIAL_LABEL-COSIA", bands=1, size=512, dtypes=("uint8",), label_max=18),
        ModalitySpec("ALL_LABEL-LPIS", bands=3, size=512),
    )
}
#: FLAIR-HUB's COSIA classes, 0-based (IGNF/FLAIR-HUB 3d5693b,
#: ``configs/train/config_supervision.yaml`` ``value_name``; 18 is "undefined" there and
#: "other" in ``color-styles/flair-hub-qgis-style-cosia-num.qml``).
COSIA_NAMES: tuple[str, ...] = (
    "building",
    "greenhouse",
    "swimming pool",
    "impervious surface",
    "pervious surface",
    "bare soil",
    "water",
    "snow",
    "herbaceous vegetation",
    "agricultural land",
    "plowed land",
    "vineyard",
    "deciduous",
    "coniferous",
    "brushwood",
    "clear cut",
    "ligneous",
    "mixed",
    "other",
)
#: FLAIR #1/#2 MSK code (1..19, :mod:`flair_pipeline.nomenclature`) -> COSIA class (0..18),
#: matched by class name (COSIA's "clear cut" is FLAIR's "clear-cut").
FLAIR_TO_COSIA: dict[int, int] = {
    1: 0,  # building
    2: 4,  # pervious surface
    3: 3,  # impervious surface
    4: 5,  # bare soil
    5: 6,  # water
    6: 13,  # coniferous
    7: 12,  # deciduous
    8: 14,  # brushwood
    9: 11,  # vineyard
    10: 8,  # herbaceous vegetation
    11: 9,  # agricultural land
    12: 10,  # plowed land
    13: 2,  # swimming pool
    14: 7,  # snow
    15: 15,  # clear-cut
    16: 17,  # mixed
    17: 16,  # ligneous
    18: 1,  # greenhouse
    19: 18,  # other
}
#: The dates GeoPackages (``GLOBAL_ALL_MTD/GLOBAL_<key>_MTD_DATES.gpkg``).
DATES_FILES = ("SENTINEL2", "SENTINEL1-ASC", "SENTINEL1-DESC")

_PATCH_RE = re.compile(r"^(D\d{3})-(\d{4})_([A-Za-z0-9]+(?:-[A-Za-z0-9]+)*)_(\d+)-(\d+)$")
_MODS = "|".join(re.escape(m) for m in sorted(MODALITIES, key=len, reverse=True))
_FILE_RE = re.compile(
    rf"^(D\d{{3}})-(\d{{4}}|{HISTORICAL_YEAR})_({_MODS})_"
    r"([A-Za-z0-9]+(?:-[A-Za-z0-9]+)*)_(\d+)-(\d+)\.tiff?$"
)
#: A download archive, named ``D004-2021_AERIAL_RGBI.zip`` or, since late 2025,
#: ``D004-2021_AERIAL_RGBI_IMS.zip``: both accepted.
ARCHIVE_RE = re.compile(rf"^(D\d{{3}})-(\d{{4}}|{HISTORICAL_YEAR})_({_MODS})(?:_IMS)?\.zip$")


@dataclass(frozen=True, order=True)
class HubPatchId:
    """A parsed FLAIR-HUB patch id (``D006-2020_FF-S1-14_5-5``)."""

    departement: str  # "D006"
    year: str  # "2020"
    roi: str  # "FF-S1-14"
    row: int
    col: int

    @property
    def domain(self) -> str:
        """The domain as FLAIR-HUB spells it: ``D006-2020``."""
        return f"{self.departement}-{self.year}"

    @property
    def area(self) -> str:
        """The area of interest, unique in the release: ``D006-2020_FF-S1-14``."""
        return f"{self.domain}_{self.roi}"

    def __str__(self) -> str:
        return f"{self.area}_{self.row}-{self.col}"

    def relpath(self, modality: str) -> PurePosixPath:
        """The file of `modality` for this patch, relative to the release root.

        Args:
            modality: a key of :data:`MODALITIES`.

        Returns:
            ``{D}-{Y}_{MOD}/{ROI}/{D}-{Y}_{MOD}_{ROI}_{r}-{c}.tif`` (year ``195X`` for the
            historical ortho).

        Raises:
            KeyError: an unknown modality.
        """
        year = HISTORICAL_YEAR if MODALITIES[modality].historical else self.year
        stem = f"{self.departement}-{year}_{modality}"
        return PurePosixPath(stem, self.roi, f"{stem}_{self.roi}_{self.row}-{self.col}.tif")


def parse_patch_id(text: str, source: str = "") -> HubPatchId:
    """Parse a FLAIR-HUB patch id.

    Args:
        text: e.g. ``D006-2020_FF-S1-14_5-5``.
        source: the file it was read from, named in the error.

    Returns:
        The parsed id.

    Raises:
        InputError: `text` is not a FLAIR-HUB patch id (one line naming `source`).
    """
    m = _PATCH_RE.match(text.strip())
    if m is None:
        where = f"{source}: " if source else ""
        raise InputError(
            f"{where}patch id {text!r} does not parse: FLAIR-HUB ids look like "
            "'D006-2020_FF-S1-14_5-5' (département-year, area, row-col)"
        )
    d, y, roi, r, c = m.groups()
    return HubPatchId(d, y, roi, int(r), int(c))


def parse_file_name(name: str) -> tuple[HubPatchId, str] | None:
    """The patch id and modality of a FLAIR-HUB file name, None for any other name.

    The historical ortho's pseudo-year ``195X`` is not the patch's year: its patch id is
    completed by the caller from the other modalities of the same area and row-col; here
    the year is returned as ``195X``.

    Args:
        name: a file name such as ``D006-2020_AERIAL_RGBI_FF-S1-14_5-5.tif``.

    Returns:
        (patch id, modality) or None.
    """
    m = _FILE_RE.match(name)
    if m is None:
        return None
    d, y, mod, roi, r, c = m.groups()
    return HubPatchId(d, y, roi, int(r), int(c)), mod
