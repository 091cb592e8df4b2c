"""Coverage of candidate patches read at reduced resolution: which cells need a full read.

``sampling.coverage_read`` (:class:`~flair_pipeline.config.SamplingConfig`):

- ``full``: every candidate the tiles' footprints do not settle is read at full resolution
  (:meth:`~flair_pipeline.dataset.mosaic.Mosaic.read_products`); its ``valid_fraction``
  is exact.
- ``overview``: it is read at 1/``coverage_decimation`` first
  (:meth:`~flair_pipeline.dataset.mosaic.Mosaic.read_coverage`, GDAL's JPEG 2000
  resolution levels or overviews: a few percent of a full read's cost). With ``n``
  coarse pixels a side and the tolerance ``t`` (``sampling.max_nodata_fraction``), the
  coarse nodata share ``s`` decides: ``s <= t`` keeps the candidate, ``s > t + m``
  rejects it (``nodata``, or ``ortho product <name> missing`` when one product alone
  lacks it), where the margin ``m = (2n - 1) / n²`` is one coarse row plus one coarse
  column of the cell (a nodata edge or corner may be misplaced by one coarse pixel);
  a cell in between (a nodata edge through it) is read at full resolution as in
  ``full``. A kept cell's ``valid_fraction`` is then an estimate (the grid's
  ``coverage_decimation`` column says which: the decimation for an estimate, 1 for an
  exact share), and the exact check runs in the IMG step on the patches kept
  (:func:`exact_check`): one whose exact nodata share exceeds the tolerance (scattered
  nodata pixels the coarse read cannot see) is skipped and named, never written.
- ``auto``: ``overview`` when some ortho product has more than
  :data:`AUTO_OVERVIEW_TILES` tiles (a département's delivery is thousands of 1 km
  dalles), else ``full`` (the demo's and the tests' mosaics have a handful, so their
  grids keep their bytes); the choice is a decision line of the grid step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flair_pipeline.config import SamplingConfig
from flair_pipeline.dataset.mosaic import Mosaic

#: ``auto`` reads coverage at reduced resolution when a product has more tiles than this:
#: 100 dalles of 1 km is 100 km²; the project's small worlds have 4 to 25 tiles a product.
AUTO_OVERVIEW_TILES = 100


@dataclass(frozen=True)
class CoverageMode:
    """How a domain's candidates are read: the mode resolved and the line saying why."""

    overview: bool
    decimation: int
    line: str | None  # a decision line, None for an explicit `full`

    @property
    def name(self) -> str:
        """``overview`` or ``full``."""
        return "overview" if self.overview else "full"


def coverage_mode(mosaic: Mosaic, cfg: SamplingConfig) -> CoverageMode:
    """Resolve ``sampling.coverage_read`` for `mosaic`.

    Args:
        mosaic: The domain's ortho mosaic (its products' tile counts).
        cfg: The ``sampling`` section.

    Returns:
        The mode; its line says how the coverage is read (and, for ``auto``, why).
    """
    d = cfg.coverage_decimation
    how = (
        f"candidates' pixel coverage read at 1/{d} resolution (sampling.coverage_read "
        f"overview); cells a nodata edge crosses read at full resolution, valid_fraction an "
        "estimate elsewhere (grid column coverage_decimation), the exact check on the kept "
        "patches in the IMG step"
    )
    if cfg.coverage_read == "full":
        return CoverageMode(False, d, None)
    if cfg.coverage_read == "overview":
        return CoverageMode(True, d, how)
    most, count = largest_product(mosaic)
    if count > AUTO_OVERVIEW_TILES:
        return CoverageMode(
            True,
            d,
            f"{how}; sampling.coverage_read auto: ortho product {most} has {count} "
            f"tiles (> {AUTO_OVERVIEW_TILES})",
        )
    return CoverageMode(
        False,
        d,
        f"candidates' pixel coverage read at full resolution (sampling.coverage_read auto: "
        f"at most {count} tiles a product, <= {AUTO_OVERVIEW_TILES})",
    )


def largest_product(mosaic: Mosaic) -> tuple[str, int]:
    """The ortho product with the most tiles, and their count (a département's: thousands).

    Args:
        mosaic: The domain's ortho mosaic.

    Returns:
        (product name, its tile count; the first such product in the mosaic's order).
    """
    counts = {n: len(ts) for n, ts in mosaic.vrt.product_tiles.items()}
    most = max(counts, key=lambda n: counts[n])
    return most, counts[most]


def coarse_margin(coarse_side: int) -> float:
    """The share of one coarse row plus one coarse column of a cell ``n`` coarse pixels a side.

    Args:
        coarse_side: ``n``, coarse pixels along a side of the cell.

    Returns:
        ``(2n - 1) / n²``.
    """
    n = coarse_side
    return (2 * n - 1) / (n * n)


def coarse_verdict(
    coverage: dict[str, np.ndarray], tolerance: float
) -> tuple[float, str | None] | None:
    """Decide a candidate from its coarse coverage, or None when it needs a full read.

    Args:
        coverage: Product name -> bool coarse mask of its data
            (:meth:`~flair_pipeline.dataset.mosaic.Mosaic.read_coverage`).
        tolerance: ``sampling.max_nodata_fraction``.

    Returns:
        (the estimated valid fraction, the one product lacking the cell or None), or None
        when a share lies within the margin above the tolerance (a nodata edge through
        the cell: read it at full resolution).
    """
    masks = list(coverage.values())
    both = np.logical_and.reduce(masks)
    clear = tolerance + coarse_margin(max(both.shape))  # above it: rejected at sight
    share = 1.0 - float(both.mean())
    if share <= tolerance:
        return 1.0 - share, None
    if share <= clear:
        return None
    shares = {n: 1.0 - float(m.mean()) for n, m in coverage.items()}
    if any(tolerance < s <= clear for s in shares.values()):
        return None  # which product lacks it is not clear at this resolution
    short = [n for n, s in shares.items() if s > tolerance]
    lacking = short[0] if short and len(short) < len(shares) else None
    return 1.0 - share, lacking


def exact_check(
    valid: np.ndarray, *, tolerance: float, estimate: float | None, decimation: int
) -> str | None:
    """The line naming a kept patch whose exact nodata share exceeds the tolerance, or None.

    Same definition and comparison as the grid step's full read (the AND of every
    product's coverage, :meth:`~flair_pipeline.dataset.mosaic.Mosaic.read`), so a patch
    a full read kept passes again.

    Args:
        valid: bool (H, W): where every product has data, at full resolution.
        tolerance: ``sampling.max_nodata_fraction``.
        estimate: The grid's ``valid_fraction`` of the patch.
        decimation: The grid's ``coverage_decimation`` of the patch (1: exact, no coarse read).

    Returns:
        None when the patch is within the tolerance, else the reason it is skipped.
    """
    fraction = float(np.asarray(valid).mean())
    if not (1.0 - fraction) > tolerance:
        return None
    how = (
        f"the coarse check at 1/{decimation} estimated {100 * (1.0 - estimate):.2f} %"
        if decimation > 1 and estimate is not None
        else f"the grid step's check found {100 * (1.0 - (estimate or 0.0)):.2f} %"
    )
    return (
        f"exact nodata share {100 * (1.0 - fraction):.2f} % over the tolerance "
        f"{100 * tolerance:g} % (sampling.max_nodata_fraction; {how}): patch skipped, "
        "never written"
    )
