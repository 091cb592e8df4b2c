"""C-band backscatter of synthetic objects through one year (class and crop phenology).

The table gives, per FLAIR code, VV and VH backscatter in dB (γ0, terrain-flattened, which
on the flat synthetic world equals σ0 up to the incidence-angle term) in the two states
the class moves between during a year (``bare``/off-season and ``full``/in season). The
values are typical C-band levels at 30-45° incidence as the Sentinel-1 literature reports
them, rounded; they are this project's reading, not measurements:

- water is the darkest surface (specular reflection: VV about -20 dB, VH below -25 dB),
  brightened by wind on some dates;
- buildings and greenhouses are the brightest in VV (double bounce, -3 to -5 dB) with a
  comparatively low VH (cross-polarisation comes from volume scattering);
- forests have a high, stable VH (about -12 to -14 dB, volume scattering in the canopy),
  deciduous a little lower when leafless;
- bare soil and plowed land follow soil moisture (wetter in winter, after rain);
- crops: VH rises with biomass through the season and drops at harvest (Veloso et al.
  2017, *Remote Sensing of Environment* 199, on wheat, rapeseed, maize, sunflower,
  soybean in south-west France). Winter cereals green up from March and are harvested in
  July, and their VV *drops* while VH rises (vertical stems attenuate VV); rapeseed is
  already high in winter; maize, sunflower, soy, beet and potato are bare until May and
  peak in July-August; alfalfa is cut about every 40 days from May.

Crops follow the RPG declaration of each parcel (``synthetic/rpg.py``), so that a model
can read the crop type from the series; undeclared agricultural land gets a crop of the
same list from its own draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: FLAIR code -> (VV bare, VV full, VH bare, VH full) dB; the season weight (0..1) picks.
CLASS_DB: dict[int, tuple[float, float, float, float]] = {
    1: (-4.0, -4.0, -12.0, -12.0),  # building: double bounce
    2: (-10.0, -9.0, -18.0, -16.5),  # pervious surface: gardens, gravel
    3: (-14.0, -14.0, -22.0, -22.0),  # impervious: smooth asphalt
    4: (-11.0, -11.0, -19.0, -19.0),  # bare soil: moisture-driven (see SOIL_CODES)
    5: (-20.0, -20.0, -27.0, -27.0),  # water: specular, wind-brightened per date
    6: (-7.5, -7.5, -12.5, -12.5),  # coniferous: stable volume
    7: (-8.5, -7.5, -15.0, -13.0),  # deciduous: leaf on / off
    8: (-9.0, -8.5, -16.0, -14.5),  # brushwood
    9: (-10.0, -9.0, -17.5, -15.5),  # vineyard: rows, summer foliage
    10: (-11.0, -10.0, -19.0, -16.5),  # herbaceous vegetation: grass
    11: (-11.0, -11.0, -19.0, -19.0),  # agricultural land: bare; crops take CROPS
    12: (-11.0, -11.0, -19.0, -19.0),  # plowed land: bare; crops take CROPS
    13: (-19.0, -19.0, -26.0, -26.0),  # swimming pool: as water
    14: (-15.0, -15.0, -24.0, -24.0),  # snow: wet snow absorbs
    15: (-10.0, -9.5, -17.5, -16.5),  # clear-cut: stumps and regrowth
    16: (-8.5, -7.5, -14.5, -13.0),  # mixed
    17: (-9.5, -8.5, -16.5, -14.5),  # ligneous
    18: (-5.0, -5.0, -13.0, -13.0),  # greenhouse: metal frames
    19: (-10.0, -10.0, -18.0, -18.0),  # other
}
#: Codes whose backscatter follows soil moisture (dB added: up to SOIL_WET_DB).
SOIL_CODES = (4, 11, 12, 15)
SOIL_WET_DB = 2.5


@dataclass(frozen=True)
class CropCalendar:
    """One crop's year: when its biomass rises, peaks and is harvested, and its dB levels."""

    up: float  # day of year at half growth
    harvest: float  # day of year of harvest
    autumn: float  # weight already reached in autumn/winter (winter crops), 0..1
    vv_full: float  # VV at full biomass, dB (bare soil: -11)
    vh_full: float  # VH at full biomass, dB (bare soil: -19)
    cut_every: float = 0.0  # days between cuts (alfalfa), 0: none


#: RPG CODE_CULTU -> calendar (synthetic/rpg.py's codes). VV_bare -11 dB, VH_bare -19 dB.
CROPS: dict[str, CropCalendar] = {
    "BTH": CropCalendar(95, 190, 0.2, -13.0, -15.0),  # winter wheat: VV drops at heading
    "ORH": CropCalendar(85, 180, 0.2, -12.5, -15.5),  # winter barley
    "TTH": CropCalendar(95, 195, 0.2, -13.0, -15.0),  # triticale
    "CZH": CropCalendar(75, 185, 0.6, -8.0, -13.0),  # rapeseed: high from autumn
    "MIS": CropCalendar(170, 280, 0.0, -7.5, -13.0),  # maize
    "TRN": CropCalendar(160, 255, 0.0, -8.5, -14.0),  # sunflower
    "SOJ": CropCalendar(175, 270, 0.0, -9.5, -15.0),  # soy
    "LUZ": CropCalendar(100, 300, 0.5, -9.0, -15.0, 40.0),  # alfalfa, cut every ~40 days
    "BTN": CropCalendar(150, 290, 0.0, -8.0, -14.0),  # beetroot
    "PTC": CropCalendar(145, 240, 0.0, -9.0, -15.0),  # potatoes
}
CROP_CODES = tuple(sorted(CROPS))
BARE_VV, BARE_VH = -11.0, -19.0


def _sig(x: float, centre: np.ndarray | float, width: float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-(x - centre) / width)))


def crop_weight(doy: float, cal: CropCalendar, shift: np.ndarray) -> np.ndarray:
    """Biomass weight 0..1 of parcels of one crop on `doy` (0 bare or stubble, 1 peak).

    Args:
        doy: Day of year.
        cal: The crop's calendar.
        shift: Per-parcel shift of its dates, days.

    Returns:
        float64 weights, one per parcel.
    """
    grow = _sig(doy, cal.up + shift, 10.0)
    w = cal.autumn + (1.0 - cal.autumn) * grow
    if cal.cut_every:
        since = np.maximum(doy - (cal.up + 40.0 + shift), 0.0)
        w = np.where(since > 0, 0.45 + 0.55 * ((since % cal.cut_every) / cal.cut_every), w)
    after = _sig(doy, cal.harvest + shift, 3.0)
    autumn = cal.autumn * _sig(doy, 300.0 + shift, 10.0)  # next season's sowing
    out: np.ndarray = np.clip(w * (1.0 - after) + autumn * after, 0.0, 1.0)
    return out


def _season(doy: float, phase: np.ndarray) -> np.ndarray:
    """Growing-season weight of natural vegetation: 0 in winter, 1 from May to September.

    Args:
        doy: Day of year.
        phase: Per-object timing draw in 0..1.

    Returns:
        Weights 0..1, one per object.
    """
    shift = (phase - 0.5) * 20.0
    out: np.ndarray = _sig(doy, 110.0 + shift, 8.0) * (1.0 - _sig(doy, 295.0 + shift, 10.0))
    return out


def object_db(
    doy: float,
    code: np.ndarray,
    phase: np.ndarray,
    crop: np.ndarray,
    wet_db: float,
    wind_db: float,
) -> tuple[np.ndarray, np.ndarray]:
    """VV and VH backscatter (dB) of every object on day of year `doy`.

    Args:
        doy: Day of year.
        code: FLAIR code (1..19) of each object.
        phase: Per-object timing draw in 0..1 (shifts its dates by up to ±10 days).
        crop: Per-object index into ``CROP_CODES`` (-1 for non-crops).
        wet_db: Soil-moisture term of the date, dB (added to soils and bare crops).
        wind_db: Wind-roughness term of the date, dB (added to water).

    Returns:
        (VV, VH) float64 dB, one value per object.
    """
    n = code.size
    vv = np.full(n, -10.0)
    vh = np.full(n, -18.0)
    season = _season(doy, phase)
    for c, (vv0, vv1, vh0, vh1) in CLASS_DB.items():
        m = code == c
        if m.any():
            vv[m] = vv0 + (vv1 - vv0) * season[m]
            vh[m] = vh0 + (vh1 - vh0) * season[m]
    shift = (phase - 0.5) * 20.0
    bare = np.zeros(n)
    for k, name in enumerate(CROP_CODES):
        m = crop == k
        if m.any():
            cal = CROPS[name]
            w = crop_weight(doy, cal, shift[m])
            vv[m] = BARE_VV + (cal.vv_full - BARE_VV) * w
            vh[m] = BARE_VH + (cal.vh_full - BARE_VH) * w
            bare[m] = 1.0 - w
    soil = np.isin(code, SOIL_CODES) & (crop < 0)
    bare[soil] = 1.0
    vv += wet_db * bare
    vh += wet_db * bare
    water = np.isin(code, (5, 13))
    vv[water] += wind_db
    vh[water] += 0.6 * wind_db
    return vv, vh


def to_linear(db: np.ndarray) -> np.ndarray:
    """Convert backscatter in dB to linear power.

    Args:
        db: Backscatter in dB.

    Returns:
        10 ** (db / 10).
    """
    out: np.ndarray = np.power(10.0, np.asarray(db) / 10.0)
    return out
