"""One answer to "is this Lambert-93?", used by every reader of the project.

Lambert-93 (EPSG:2154, RGF93 v1 / Lambert-93) reaches the project written four ways:

- with its EPSG code (GeoTIFFs written by GDAL from ``EPSG:2154``);
- as FLAIR's ``LOCAL_CS["RGF93 v1 / Lambert-93"]`` on the real MSK files (an engineering
  CRS: no projection at all, but the same coordinates);
- as an ESRI ``.prj`` (``PROJCS["RGF_1993_Lambert_93", …]``), as shapefiles carry it;
- as a WKT without any authority code, e.g. the Géoplateforme WMS extracts of BD ORTHO
  (``PROJCS["EPSG:2154", GEOGCS["unknown", … SPHEROID["unretrievable - using WGS84"…``):
  ``to_epsg()`` is None there although the coordinates are Lambert-93.

The last two are recognised by their projection: Lambert Conformal Conic 2SP with
IGN's published parameters (lat_0 46.5°, lon_0 3°, standard parallels 49° and 44°,
false easting 700 000 m, false northing 6 600 000 m; IGN, "Lambert-93", geodesie.ign.fr)
in metres, on an ellipsoid of semi-major axis 6 378 137 m and inverse flattening
298.257222101 (GRS 80) ± 2e-6, so WGS 84's 298.257223563 passes (the two differ by
0.1 mm in the semi-minor axis, nothing on a 0.2 m grid).
"""

from __future__ import annotations

import re
from typing import Any

from pyproj import CRS as ProjCRS
from pyproj.exceptions import CRSError
from rasterio.crs import CRS

LAMBERT93 = CRS.from_epsg(2154)

_LOCAL = re.compile(r'^\s*(LOCAL_CS|ENGCRS|ENGINEERINGCRS)\["RGF93( v1)? / Lambert-93"')
#: EPSG parameter codes of Lambert Conic Conformal (2SP) (method 9802) -> Lambert-93 value.
_L93_PARAMETERS = {8821: 46.5, 8822: 3.0, 8823: 49.0, 8824: 44.0, 8826: 700000.0, 8827: 6600000.0}
_LCC_2SP = 9802


def _as_rasterio(crs: Any) -> CRS:
    return crs if isinstance(crs, CRS) else CRS.from_user_input(crs)


def _lcc_is_lambert93(wkt: str) -> bool:
    """Whether a WKT without an EPSG code has Lambert-93's projection and ellipsoid.

    Args:
        wkt: A CRS as WKT.

    Returns:
        True for a projected Lambert conic conformal (2SP) CRS with Lambert-93's parameters,
        metre axes and the GRS80 ellipsoid; False otherwise or when pyproj cannot parse it.
    """
    try:
        pj = ProjCRS.from_wkt(wkt)
    except CRSError:
        return False
    conv = pj.coordinate_operation
    if not pj.is_projected or conv is None or pj.ellipsoid is None:
        return False
    method = conv.to_json_dict().get("method", {})
    code = method.get("id", {}).get("code")
    name = str(method.get("name", "")).lower().replace("_", " ")
    if code != _LCC_2SP and "lambert conic conformal" not in name:
        return False
    values: dict[int, float] = {}
    for p in conv.params:
        if p.code and p.code.isdigit() and isinstance(p.value, int | float):
            values[int(p.code)] = p.value
    if any(abs(values.get(k, float("nan")) - v) > 1e-7 for k, v in _L93_PARAMETERS.items()):
        return False
    axis_units = {a.unit_name.lower() for a in pj.axis_info}
    if not axis_units <= {"metre", "meter"}:
        return False
    ell = pj.ellipsoid
    return (
        abs(ell.semi_major_metre - 6378137.0) < 1e-3
        and abs(ell.inverse_flattening - 298.257222101) < 2e-6
    )


def is_lambert93(crs: Any) -> bool:
    """Whether `crs` (anything rasterio or pyproj accepts) is Lambert-93 in one of its forms.

    Args:
        crs: EPSG code, WKT, PROJ string, rasterio or pyproj CRS, or None.

    Returns:
        True for EPSG:2154, for the local/engineering CRS named ``RGF93 / Lambert-93``
        that GDAL writes for FLAIR's files, and for a Lambert conic conformal WKT with
        Lambert-93's parameters; False for None or an unreadable CRS.
    """
    if crs is None:
        return False
    try:
        crs = _as_rasterio(crs)
    except Exception:
        return False
    if crs.to_epsg() == 2154:
        return True
    wkt = crs.to_wkt()
    return bool(_LOCAL.match(wkt)) or _lcc_is_lambert93(wkt)


def normalize_crs(crs: Any) -> CRS | None:
    """`crs` as a rasterio CRS, with every form of Lambert-93 turned into EPSG:2154.

    Without this, a real FLAIR MSK and its IMG partner (same grid) or a BD ORTHO extract
    and a DSM would look like two CRSs and trigger a pointless, lossy reprojection.

    Args:
        crs: Anything rasterio or pyproj accepts, or None.

    Returns:
        EPSG:2154 for any form of Lambert-93, the CRS as rasterio reads it otherwise, None
        for None.
    """
    if crs is None:
        return None
    if is_lambert93(crs):
        return LAMBERT93
    return _as_rasterio(crs)


def same_crs(a: Any, b: Any) -> bool:
    """Whether two CRSs are equal once every form of Lambert-93 is normalised.

    Args:
        a: A CRS in any form :func:`normalize_crs` accepts.
        b: Another one.

    Returns:
        Whether both normalise to the same rasterio CRS.
    """
    return normalize_crs(a) == normalize_crs(b)
