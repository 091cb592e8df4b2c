"""Do two rasters share one pixel grid? Shape, geotransform and CRS, with FLAIR's tolerances."""

from __future__ import annotations

import rasterio

from flair_pipeline.geo.crs import normalize_crs

#: Real FLAIR transforms carry ~1e-8 m of float noise; a centimetre is a real shift.
ORIGIN_ATOL = 0.01
PIXEL_RTOL = 1e-6


def grid_problem(a: rasterio.DatasetReader, b: rasterio.DatasetReader) -> str | None:
    """Why raster `b` is not on raster `a`'s pixel grid (shape, transform, CRS), or None.

    Args:
        a: The reference raster, open.
        b: The raster checked against it, open.

    Returns:
        One phrase naming the first difference (shape in px, transform beyond
        ``PIXEL_RTOL`` of a pixel, origin beyond ``ORIGIN_ATOL`` map units, CRS), or None
        when `b` shares `a`'s grid.
    """
    if (a.height, a.width) != (b.height, b.width):
        return f"shape {b.height}x{b.width} differs from {a.height}x{a.width}"
    ta, tb = a.transform, b.transform
    scale = max(abs(ta.a), abs(ta.e))
    if any(abs(getattr(ta, k) - getattr(tb, k)) > PIXEL_RTOL * scale for k in "abde"):
        return f"transform {tuple(tb)[:6]} differs from {tuple(ta)[:6]}"
    if abs(ta.c - tb.c) > ORIGIN_ATOL or abs(ta.f - tb.f) > ORIGIN_ATOL:
        return f"origin ({tb.c}, {tb.f}) differs from ({ta.c}, {ta.f})"
    if normalize_crs(a.crs) != normalize_crs(b.crs):
        return f"CRS {b.crs} differs from {a.crs}"
    return None
