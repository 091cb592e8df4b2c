"""Sentinel-2 L2A reflectance of synthetic objects through one year (class phenology).

Each object's spectrum on a date is a mix of a few endmembers (green vegetation, dry
vegetation, soil, water, built-up, snow…) with class-specific timing: deciduous trees lose
their leaves in winter, crops go bare → green → harvested within their calendar, grassland
stays green most of the year, water is dark in NIR. Agricultural land (11) and herbaceous
vegetation (10) look alike from the air but not here: this is what a multi-source model can
learn and an aerial-only one cannot (FLAIR paper, A.1).
"""

from __future__ import annotations

import numpy as np

#: Band order everywhere: B02 B03 B04 B05 B06 B07 B08 B8A B11 B12 (FLAIR bands 1..10).
BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")

_E = {
    "veg": (0.030, 0.060, 0.032, 0.095, 0.250, 0.330, 0.380, 0.400, 0.200, 0.100),
    "dry": (0.085, 0.115, 0.150, 0.180, 0.220, 0.245, 0.265, 0.280, 0.350, 0.280),
    "soil": (0.075, 0.105, 0.135, 0.165, 0.195, 0.215, 0.235, 0.250, 0.310, 0.265),
    "conifer": (0.020, 0.040, 0.022, 0.060, 0.150, 0.200, 0.235, 0.250, 0.120, 0.060),
    "water": (0.060, 0.070, 0.050, 0.040, 0.030, 0.022, 0.020, 0.015, 0.010, 0.008),
    "urban": (0.100, 0.110, 0.120, 0.140, 0.150, 0.160, 0.170, 0.180, 0.220, 0.200),
    "roof": (0.120, 0.120, 0.140, 0.160, 0.170, 0.180, 0.190, 0.200, 0.250, 0.220),
    "snow": (0.880, 0.870, 0.850, 0.820, 0.800, 0.780, 0.760, 0.740, 0.080, 0.060),
    "pool": (0.120, 0.160, 0.130, 0.080, 0.050, 0.040, 0.035, 0.030, 0.015, 0.010),
    "glass": (0.250, 0.270, 0.280, 0.290, 0.300, 0.310, 0.320, 0.325, 0.300, 0.260),
}
ENDMEMBERS = {k: np.asarray(v, np.float32) for k, v in _E.items()}
CLOUD = np.asarray((0.46, 0.45, 0.45, 0.46, 0.47, 0.47, 0.48, 0.48, 0.38, 0.30), np.float32)


def _sig(x: np.ndarray | float, centre: np.ndarray | float, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x - centre) / width))


def leaf_on(doy: float, phase: np.ndarray) -> np.ndarray:
    """Deciduous canopy: 0 in winter, 1 from May to September, per-object timing.

    Args:
        doy: Day of year.
        phase: Per-object timing draw in 0..1 (shifts the dates by up to ±10 days).

    Returns:
        Leaf-on fraction 0..1 per object.
    """
    shift = (phase - 0.5) * 20.0
    return _sig(doy, 110.0 + shift, 8.0) * (1.0 - _sig(doy, 295.0 + shift, 10.0))


def grassland(doy: float, phase: np.ndarray, south: bool) -> np.ndarray:
    """Meadows: green all year, peak in spring, a summer dip (stronger in the south).

    Args:
        doy: Day of year.
        phase: Per-object timing draw in 0..1.
        south: Whether the domain is in the south (stronger summer drought).

    Returns:
        Greenness 0..1 per object.
    """
    spring = np.exp(-(((doy - 130.0 - 20 * (phase - 0.5)) / 45.0) ** 2))
    drought = np.exp(-(((doy - 215.0) / 30.0) ** 2)) * (0.35 if south else 0.15)
    green: np.ndarray = np.clip(0.66 + 0.22 * spring - drought, 0.0, 1.0)
    return green


def crop(doy: float, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greenness of a crop parcel and whether it is past harvest (stubble) on `doy`.

    phase < 0.55: winter cereal (green March-June, harvest early July);
    otherwise a summer crop such as maize (bare until May, green June-September).

    Args:
        doy: Day of year.
        phase: Per-parcel draw in 0..1 (crop type and timing).

    Returns:
        (greenness 0..1, past harvest bool), one value per parcel.
    """
    winter = phase < 0.55
    p = (phase % 0.55) / 0.55
    up = np.where(winter, 70.0 + 20 * p, 150.0 + 20 * p)
    harvest = np.where(winter, 185.0 + 15 * p, 265.0 + 20 * p)
    autumn = np.where(winter, _sig(doy, 305.0, 10.0) * 0.25, 0.0)
    green = _sig(doy, up, 9.0) * (1.0 - _sig(doy, harvest, 5.0)) + autumn
    return np.clip(green, 0.0, 1.0), doy > harvest


def object_spectra(
    doy: float, code: np.ndarray, phase: np.ndarray, variant: np.ndarray, south: bool
) -> np.ndarray:
    """Reflectance (n, 10) of every object on day of year `doy`.

    Args:
        doy: Day of year.
        code: FLAIR code (1..19) of each object.
        phase: Per-object timing draw in 0..1.
        variant: Per-object draw in 0..1 (within-class variation).
        south: Whether the domain is in the south.

    Returns:
        float32 (n, 10) BOA reflectance (0..1) in FLAIR's band order.
    """
    E = ENDMEMBERS
    n = code.size
    out = np.zeros((n, len(BANDS)), np.float32)

    def mix(mask: np.ndarray, a: np.ndarray, b: np.ndarray, w: np.ndarray | float) -> None:
        w = np.broadcast_to(np.asarray(w, np.float32), (n,))[mask][:, None]
        out[mask] = a * (1 - w) + b * w

    one = np.ones(n, np.float32)
    lo = leaf_on(doy, phase)
    herb = grassland(doy, phase, south)
    g_crop, harvested = crop(doy, phase)
    winter = doy < 90 or doy > 320
    weights: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | float]] = {
        1: (E["roof"], E["roof"], one),
        2: (E["urban"], E["veg"], 0.35 * herb),
        3: (E["urban"], E["urban"], one),
        4: (E["soil"], E["soil"], one),
        5: (E["water"], E["water"], one),
        6: (E["conifer"], E["conifer"], one),
        7: (E["dry"], E["veg"], 0.15 + 0.85 * lo),
        8: (E["dry"], E["veg"], 0.40 + 0.35 * lo),
        9: (E["soil"], E["veg"], 0.12 + 0.45 * lo),
        10: (E["dry"], E["veg"], herb),
        13: (E["pool"], E["pool"], one),
        14: (E["soil"], E["snow"], one if winter else 0 * one),
        15: (E["soil"], E["veg"], 0.15 + 0.25 * lo),
        16: (E["conifer"], E["veg"], 0.45 * lo),
        17: (E["dry"], E["veg"], 0.30 + 0.45 * lo),
        18: (E["glass"], E["glass"], one),
        19: (E["urban"], E["soil"], 0.5 * one),
    }
    for c, (a, b, w) in weights.items():
        mask = code == c
        if mask.any():
            mix(mask, a, b, w)
    for c in (11, 12):  # crops: soil before, stubble after harvest, green in season
        mask = code == c
        if mask.any():
            bare = np.where(harvested[mask, None], E["dry"], E["soil"])
            g = g_crop[mask, None]
            out[mask] = bare * (1 - g) + E["veg"] * g
    return out * (0.9 + 0.2 * variant[:, None]).astype(np.float32)
