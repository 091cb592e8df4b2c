"""FLAIR domains: ids such as ``D006_2020``, the official split, zones and positions.

A domain is one French *département* flown in one year. FLAIR's split is by domain, not by
patch, so that validation and test measure generalisation to unseen radiometry and
landscapes (a domain-shift benchmark: FLAIR #1 datapaper, Garioud et al. 2022).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from flair_pipeline.errors import DomainIdError

_DOMAIN_RE = re.compile(r"^D0(\d{2})_(\d{4})$")
_ZONE_RE = re.compile(r"^Z(\d+)_([A-Z]{2})$")


class Split(StrEnum):
    """The three dataset splits."""

    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


def _depts(text: str) -> tuple[int, ...]:
    return tuple(int(tok[1:]) for tok in text.split())


#: Official FLAIR split by département number (FLAIR #1 datapaper, Garioud et al. 2022).
OFFICIAL_SPLIT: dict[Split, tuple[int, ...]] = {
    Split.TRAIN: _depts(
        "D006 D007 D008 D009 D013 D016 D017 D021 D023 D030 D032 D033 D034 D035 D038 D041 "
        "D044 D046 D049 D051 D052 D055 D060 D063 D070 D072 D074 D078 D080 D081 D086 D091"
    ),
    Split.VALIDATION: _depts("D004 D014 D029 D031 D058 D066 D067 D077"),
    Split.TEST: _depts("D015 D022 D026 D036 D061 D064 D068 D069 D071 D084"),
}
_SPLIT_OF_DEPT = {d: s for s, depts in OFFICIAL_SPLIT.items() for d in depts}

#: The 50 domains of the FLAIR #1 release (département and year of the flight).
FLAIR_DOMAINS: tuple[str, ...] = tuple(
    [
        "D004_2021",
        "D006_2020",
        "D007_2020",
        "D008_2019",
        "D009_2019",
        "D013_2020",
        "D014_2020",
        "D015_2020",
        "D016_2020",
        "D017_2018",
        "D021_2020",
        "D022_2021",
        "D023_2020",
        "D026_2020",
        "D029_2021",
        "D030_2021",
        "D031_2019",
        "D032_2019",
        "D033_2021",
        "D034_2021",
        "D035_2020",
        "D036_2020",
        "D038_2021",
        "D041_2021",
        "D044_2020",
        "D046_2019",
        "D049_2020",
        "D051_2019",
        "D052_2019",
        "D055_2018",
        "D058_2020",
        "D060_2021",
        "D061_2020",
        "D063_2019",
        "D064_2021",
        "D066_2021",
        "D067_2021",
        "D068_2021",
        "D069_2020",
        "D070_2020",
        "D071_2020",
        "D072_2019",
        "D074_2020",
        "D077_2021",
        "D078_2021",
        "D080_2021",
        "D081_2020",
        "D084_2021",
        "D086_2020",
        "D091_2021",
    ]
)

#: Approximate centre (lon, lat, WGS84) of each FLAIR département, so synthetic domains sit
#: at plausible EPSG:2154 positions and in the right Sentinel-2 UTM zone.
DEPARTMENT_CENTRES: dict[int, tuple[float, float]] = {
    4: (6.24, 44.10),
    6: (7.12, 43.94),
    7: (4.42, 44.75),
    8: (4.64, 49.62),
    9: (1.50, 42.92),
    13: (5.09, 43.54),
    14: (-0.36, 49.10),
    15: (2.67, 45.05),
    16: (0.20, 45.72),
    17: (-0.67, 45.78),
    21: (4.77, 47.42),
    22: (-2.86, 48.44),
    23: (2.02, 46.09),
    26: (5.17, 44.68),
    29: (-4.06, 48.26),
    30: (4.18, 43.99),
    31: (1.17, 43.36),
    32: (0.45, 43.69),
    33: (-0.58, 44.83),
    34: (3.37, 43.58),
    35: (-1.64, 48.15),
    36: (1.58, 46.78),
    38: (5.58, 45.26),
    41: (1.43, 47.62),
    44: (-1.68, 47.36),
    46: (1.60, 44.62),
    49: (-0.56, 47.39),
    51: (4.24, 48.95),
    52: (5.23, 48.11),
    55: (5.38, 48.99),
    58: (3.50, 47.12),
    60: (2.43, 49.41),
    61: (0.13, 48.62),
    63: (3.14, 45.73),
    64: (-0.76, 43.26),
    66: (2.52, 42.60),
    67: (7.55, 48.67),
    68: (7.27, 47.86),
    69: (4.64, 45.87),
    70: (6.09, 47.64),
    71: (4.54, 46.64),
    72: (0.22, 47.99),
    74: (6.43, 46.03),
    77: (2.93, 48.63),
    78: (1.84, 48.81),
    80: (2.28, 49.96),
    81: (2.17, 43.79),
    84: (5.18, 44.01),
    86: (0.46, 46.56),
    91: (2.24, 48.52),
}

#: Mountain départements (Alps, Pyrenees, Massif Central): more relief, winter snow.
MOUNTAIN_DEPARTMENTS: frozenset[int] = frozenset({4, 6, 9, 15, 38, 63, 64, 66, 73, 74})


@dataclass(frozen=True, order=True)
class DomainId:
    """A parsed domain id: département number and flight year."""

    department: int
    year: int

    @classmethod
    def parse(cls, text: str) -> DomainId:
        """Parse ``D006_2020``.

        Args:
            text: The id: ``D0`` + two-digit département + ``_`` + four-digit year.

        Returns:
            The domain id.

        Raises:
            DomainIdError: `text` is not a domain id, saying what one looks like.
        """
        m = _DOMAIN_RE.match(text)
        if not m:
            raise DomainIdError(
                f"{text!r} is not a domain id: expected 'D0<dd>_<yyyy>' such as 'D006_2020'"
            )
        dept, year = int(m.group(1)), int(m.group(2))
        if not 1 <= dept <= 95:
            raise DomainIdError(f"{text!r}: département {dept} is outside 01..95")
        if not 1990 <= year <= 2100:
            raise DomainIdError(f"{text!r}: year {year} is not a plausible flight year")
        return cls(dept, year)

    def __str__(self) -> str:
        return f"D{self.department:03d}_{self.year}"

    @property
    def department_code(self) -> str:
        """The département part of the id, e.g. ``D006``."""
        return f"D{self.department:03d}"

    @property
    def official_split(self) -> Split | None:
        """The split FLAIR assigns to this département, or None if it is not in FLAIR."""
        return _SPLIT_OF_DEPT.get(self.department)

    @property
    def is_mountain(self) -> bool:
        """Whether the département is mountainous (relief, winter snow)."""
        return self.department in MOUNTAIN_DEPARTMENTS


def is_domain_id(text: str) -> bool:
    """True if `text` parses as a domain id.

    Args:
        text: Any text (a folder name).

    Returns:
        Whether :meth:`DomainId.parse` accepts it.
    """
    try:
        DomainId.parse(text)
    except DomainIdError:
        return False
    return True


def domain_id_problem(text: str) -> str | None:
    """Why `text` is not a domain id (DomainIdError's message), or None if it is one.

    Args:
        text: Any text (a folder name).

    Returns:
        The one-line reason, or None.
    """
    try:
        DomainId.parse(text)
    except DomainIdError as exc:
        return str(exc)
    return None


def official_split(domain: str) -> Split | None:
    """The official split of a domain id string, or None if its département is not in FLAIR.

    Args:
        domain: A domain id, e.g. ``D006_2020``.

    Returns:
        ``train``, ``validation`` or ``test`` as FLAIR assigned it, or None.
    """
    return DomainId.parse(domain).official_split


@dataclass(frozen=True)
class ZoneId:
    """A zone within a domain, FLAIR's ``Z<n>_<type>`` (e.g. ``Z12_UA``).

    The two type letters describe the dominant and secondary landscape of the zone:
    U urban, A agricultural, F forest, N natural (water, brushwood, bare land).
    """

    number: int
    kind: str

    @classmethod
    def parse(cls, text: str) -> ZoneId:
        """Parse ``Z12_UA``.

        Args:
            text: ``Z<n>_<two letters>``.

        Returns:
            The zone id.

        Raises:
            DomainIdError: `text` is not a zone id.
        """
        m = _ZONE_RE.match(text)
        if not m:
            raise DomainIdError(f"{text!r} is not a zone id: expected 'Z<n>_<XY>' like 'Z1_UA'")
        return cls(int(m.group(1)), m.group(2))

    def __str__(self) -> str:
        return f"Z{self.number}_{self.kind}"


@lru_cache(maxsize=128)
def department_centre_l93(department: int) -> tuple[float, float]:
    """Approximate centre of a département in Lambert-93 (EPSG:2154) metres.

    Départements outside FLAIR get the centre of France, so any valid id still works.

    Args:
        department: Département number.

    Returns:
        (x, y) in EPSG:2154 metres.
    """
    from pyproj import Transformer

    lon, lat = DEPARTMENT_CENTRES.get(department, (2.5, 46.6))
    tr = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)
    x, y = tr.transform(lon, lat)
    return float(x), float(y)


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone (north) that contains a point.

    Args:
        lon: Longitude, degrees.
        lat: Latitude, degrees.

    Returns:
        326zz north of the equator, 327zz south, zz the UTM zone.
    """
    zone = int((lon + 180.0) // 6.0) + 1
    return (32600 if lat >= 0 else 32700) + zone
