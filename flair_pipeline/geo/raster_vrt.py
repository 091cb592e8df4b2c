"""One reader for every raster input: tiles of one or more products as one GDAL VRT.

The dataset build (:class:`flair_pipeline.dataset.mosaic.Mosaic`) and prediction
(:func:`flair_pipeline.evaluation.raster_input.mosaic_vrt`) both see an ortho through the
VRT written here, so a format GDAL reads (GeoTIFF, JPEG 2000, VRT, any case of suffix)
works in both at once, and both refuse the same doubtful inputs with one line naming the
file, what was found and what to do:

- a tile GDAL cannot open (the build skips the patches it touches, prediction stops);
- a geotransform that is not north-up (rotation terms, or rows going up): resampling it
  would silently change the pixels — ``gdalwarp`` it first;
- a CRS that is not the expected one (Lambert-93 in any spelling, see
  :mod:`flair_pipeline.geo.crs`) or differs between tiles;
- a pixel size or pixel grid that differs between tiles, and, for the dataset build, a
  pixel size other than ``sampling.resolution`` (its IMG would cover another ground than
  its MSK) unless ``sampling.ortho_resampling`` names a method: the tile is then read
  through GDAL's warper onto that grid, and a decision line says so;
- a data type other than uint8 unless a rescale (``low, high`` → 0..255) is configured:
  reading uint16 as uint8 would keep the values modulo 256. Through a rescale the source's
  nodata stays no data: GDAL masks it on the source values, before scaling (the VRT band
  is Float32 with NaN there, :class:`~flair_pipeline.dataset.mosaic.Mosaic` rounds and
  clips), so it is never a scaled pixel value (65535 would otherwise become 255), and a
  valid value that scales to 0 is never taken for a nodata of 0;
- a band the mapping needs and the product does not have (e.g. NIR from a 3-band RVB:
  "add the IRC product").

Where the data is: a tile's nodata value, and its per-dataset mask (an internal or
``.msk`` mask band, an alpha band) just as much — the latter is carried in a second VRT
(``mask_xml``, GDAL's ``mask,<band>`` of each masked tile), so that the build counts
masked pixels as uncovered.

A band of the VRT may come from any product: BD ORTHO RVB gives R, G, B (bands 1, 2, 3)
and BD ORTHO IRC gives NIR (its band 1; IRC's order is NIR, R, G).

A tile is a local path or a location GDAL reads in place (``s3://…`` and ``https://…``
URLs become ``/vsis3/…`` and ``/vsicurl/…``, :func:`flair_pipeline.storage.gdal_path`):
such a tile stays a string (a :class:`~pathlib.Path` would collapse a URL's ``//``), its
folder is listed once with fsspec (:func:`raster_locations`), never by GDAL, and GDAL
fetches the headers and the blocks read only. Opens and reads of remote tiles run inside
:func:`flair_pipeline.storage.gdal_env` (the S3 endpoint, no folder listing: a ``.msk``
or ``.aux.xml`` sidecar next to a remote tile is not looked for).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile
from rasterio.shutil import copy as gdal_copy
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT

from flair_pipeline.errors import InputError
from flair_pipeline.geo.crs import is_lambert93, normalize_crs, same_crs
from flair_pipeline.storage import gdal_env, gdal_path, is_remote, is_url, remote_files

#: A tile's location: a local path, or a GDAL VSI path (``/vsis3/…``, ``/vsicurl/…``).
Location = Path | str

#: Suffixes of ortho tiles in a folder, compared case-insensitively (``*.TIF`` is a tile).
ORTHO_SUFFIXES = (".tif", ".tiff", ".jp2")
#: The four bands of an IMG's image part, in FLAIR's order.
ORTHO_BANDS = ("R", "G", "B", "NIR")
_RES_RTOL = 1e-6
_GRID_TOL = 1e-3  # pixels
_GDAL_TYPES = {
    "uint8": "Byte",
    "uint16": "UInt16",
    "int16": "Int16",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
}


def is_raster_name(name: str, suffixes: Sequence[str] = ORTHO_SUFFIXES) -> bool:
    """Whether a file name is a tile: a listed suffix in any case, not a hidden file.

    Args:
        name: A file name.
        suffixes: Accepted suffixes (lower case, with the dot).

    Returns:
        Whether it is read as a tile.
    """
    return not name.startswith(".") and name.lower().endswith(tuple(suffixes))


def raster_files(folder: Path, suffixes: Sequence[str] = ORTHO_SUFFIXES) -> list[Path]:
    """Tiles directly in `folder` (case-insensitive suffixes), sorted by name.

    Args:
        folder: A product's folder (not searched recursively).
        suffixes: Accepted suffixes.

    Returns:
        The tiles' paths.
    """
    return sorted(
        p for p in Path(folder).iterdir() if p.is_file() and is_raster_name(p.name, suffixes)
    )


def raster_locations(
    folder: Path | str, suffixes: Sequence[str] = ORTHO_SUFFIXES
) -> list[Location]:
    """Tiles directly in `folder`, a local folder or a URL (listed once, with fsspec).

    Args:
        folder: A product's folder: a local path, or an ``s3://`` / ``https://`` URL.
        suffixes: Accepted suffixes.

    Returns:
        Local paths (:func:`raster_files`), or for a URL the GDAL paths that read each
        tile in place (``/vsis3/…``, ``/vsicurl/…``), sorted by name.
    """
    if not is_url(folder):
        return list(raster_files(Path(folder), suffixes))
    base = str(folder).rstrip("/")
    names = [n for n, _, _ in remote_files(base) if is_raster_name(n, suffixes)]
    return [gdal_path(f"{base}/{n}") for n in names]


def location(path: Location) -> Location:
    """`path` as the build keeps it: a URL as its GDAL path, a local path absolute.

    Args:
        path: A local path, a URL or a GDAL VSI path.

    Returns:
        The GDAL VSI path (a string) of a remote tile, else the resolved local Path.
    """
    if is_remote(path):
        return gdal_path(str(path))
    return Path(path).resolve()


@dataclass(frozen=True)
class TileFacts:
    """What a tile's header says (no pixels read)."""

    path: Location
    crs: CRS | None
    transform: Affine
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    #: a per-dataset validity mask GDAL reports: "mask" (an internal mask band,
    #: GDAL_TIFF_INTERNAL_MASK, or a ``.msk`` file) or "alpha" (an alpha band); None when
    #: only a nodata value (or nothing) says where the data is
    mask: str | None = None
    alpha_band: int | None = None  # 1-based index of the band declared alpha, if any
    #: what the VRT reads for this tile: the file itself (None) or a resampled view of it
    source: str | None = None
    #: (width, height) of the file itself when ``source`` is a resampled view: its mask is
    #: read from the file, scaled onto the view's grid (nearest)
    native: tuple[int, int] | None = None

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the raster's CRS units, from its north-up geotransform."""
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    @property
    def filename(self) -> str:
        """The file the VRT reads: the tile, or its resampled view (``source``)."""
        return self.source if self.source is not None else str(self.path)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y), positive, in the CRS units (metres for Lambert-93)."""
        return (self.transform.a, -self.transform.e)


def inspect(path: Location, crs: str | None = None) -> TileFacts:
    """Header facts of a raster; `crs` stands in for a file that has none (ESRI .asc).

    Args:
        path: A raster file.
        crs: A CRS for a file without one, or None.

    Returns:
        Size, band count, dtypes, transform, bounds, resolution, CRS, nodata and mask flags.

    Raises:
        InputError: GDAL cannot open the file, naming it.
    """
    where = location(path)
    try:
        with gdal_env([where]), rasterio.open(where) as src:
            found = src.crs if src.crs else (CRS.from_user_input(crs) if crs else None)
            flags = src.mask_flag_enums[0]
            alpha = [i for i, c in enumerate(src.colorinterp, 1) if c == ColorInterp.alpha]
            mask = None
            if MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags:
                mask = "mask"  # an internal mask band or a .msk file
            elif alpha:  # GDAL masks by alpha in 2- and 4-band files only; any band here
                mask = "alpha"
            return TileFacts(
                where,
                found,
                src.transform,
                src.width,
                src.height,
                src.count,
                src.dtypes[0],
                src.nodata,
                mask,
                alpha[0] if alpha else None,
            )
    except (RasterioError, OSError) as exc:
        hint = (
            "; a URL must be readable by GDAL in place (HTTP range requests, or s3:// at "
            "AWS_ENDPOINT_URL with its keys)"
            if is_remote(path)
            else ""
        )
        raise InputError(f"{path}: cannot open as a raster ({exc}){hint}") from None


def check_north_up(t: TileFacts) -> None:
    """Refuse a rotated or flipped geotransform.

    Args:
        t: A tile's header facts.

    Raises:
        InputError: The pixels are not axis-aligned with rows going south, naming the
            file and how to warp it.
    """
    tr = t.transform
    if tr.b != 0 or tr.d != 0 or tr.a <= 0 or tr.e >= 0:
        raise InputError(
            f"{t.path}: geotransform {tuple(tr)[:6]} is not north-up (rotated or flipped); "
            "warp it to a north-up grid first (gdalwarp -t_srs EPSG:2154 -tr 0.2 0.2)"
        )


@dataclass(frozen=True)
class Product:
    """One delivered product: its tiles and which of its bands feed which output band.

    `bands` maps output band names (``R``, ``G``, ``B``, ``NIR``) to 1-based band indices
    in the product's files; `rescale` is ``(low, high)`` mapped linearly onto 0..255
    (values outside are clipped), required for anything but uint8.
    """

    name: str
    files: Sequence[Location]
    bands: Mapping[str, int]
    rescale: tuple[float, float] | None = None
    crs: str | None = None  # stands in for files without one (ESRI .asc); never overrides
    #: header facts already read of some of `files` (by their location: the GDAL path of a
    #: remote tile), used instead of opening them again: a URL raw root's tiles recorded
    #: by the sources step (:mod:`flair_pipeline.dataset.tile_record`)
    known: Mapping[str, TileFacts] = field(default_factory=dict, compare=False)


@dataclass
class RasterVRT:
    """Tiles of one or more products on one pixel grid, as VRT XML."""

    xml: str
    transform: Affine
    width: int
    height: int
    crs: CRS | None
    band_names: tuple[str, ...]
    tiles: list[TileFacts] = field(default_factory=list)
    broken: dict[Location, str] = field(default_factory=dict)  # unreadable tile -> reason
    nodata: tuple[float | None, ...] = ()  # per output band, in the source's values
    #: per output band: the product's rescale (the band is then Float32, NaN = nodata)
    scales: tuple[tuple[float, float] | None, ...] = ()
    decisions: list[str] = field(default_factory=list)  # one line per decision taken
    #: product name -> its 0-based output bands, and its readable tiles
    product_bands: dict[str, tuple[int, ...]] = field(default_factory=dict)
    product_tiles: dict[str, list[TileFacts]] = field(default_factory=dict)
    #: with `product_bands=True`: product name -> the 0-based VRT bands appended after the
    #: output bands, its files' other bands (IRC's R and G), for its nodata rule
    product_extra: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: a VRT of the tiles' per-dataset masks (mask band or alpha), one Byte band per output
    #: band on the same grid (0: masked; outside every masked tile: 0); "" when no tile has one
    mask_xml: str = ""
    #: the resampled views of tiles at another pixel size, kept open while the VRT is read
    views: list[MemoryFile] = field(default_factory=list)

    def close(self) -> None:
        """Release the in-memory resampled views (the VRT cannot be read afterwards)."""
        for mem in self.views:
            mem.close()
        self.views.clear()

    @property
    def res(self) -> float:
        """Pixel size of the VRT, in the CRS units (square pixels)."""
        return self.transform.a

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the raster's CRS units, from its north-up geotransform."""
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)


#: Headers of remote tiles opened at once. Opening a tile in place is one request whose
#: time is the store's latency (tens of ms on S3), not bandwidth: a département's 12,000
#: dalles opened one by one take minutes (bench/raw_in_place.py: 242 headers at 20 ms of
#: latency, 9.35 s one at a time, 3.38 s 16 at once, bounded by the test server's CPU).
#: S3 serves thousands of GETs a second per prefix, so 16 is far from its limits.
REMOTE_OPEN_THREADS = 16


def _inspect_or_error(path: Location, crs: str | None) -> TileFacts | InputError:
    """:func:`inspect`, its InputError returned rather than raised (for a thread pool).

    Args:
        path: A raster file.
        crs: A CRS for a file without one, or None.

    Returns:
        The tile's facts, or the error naming it.
    """
    try:
        return inspect(path, crs)
    except InputError as exc:
        return exc


def _gather(
    products: Sequence[Product], skip_unreadable: bool
) -> tuple[dict[str, list[TileFacts]], dict[Location, str]]:
    facts: dict[str, list[TileFacts]] = {}
    broken: dict[Location, str] = {}
    for prod in products:
        if not prod.files:
            raise InputError(f"ortho product {prod.name!r}: no tiles found")
        facts[prod.name] = []
        found: list[TileFacts | InputError | None] = [
            prod.known.get(str(location(p))) if prod.known else None for p in prod.files
        ]
        todo = [i for i, f in enumerate(found) if f is None]
        paths = [prod.files[i] for i in todo]
        crs = [prod.crs] * len(todo)
        if any(is_remote(p) for p in paths):  # latency-bound: headers opened at once
            with ThreadPoolExecutor(min(REMOTE_OPEN_THREADS, len(paths))) as pool:
                opened = list(pool.map(_inspect_or_error, paths, crs))
        else:
            opened = [_inspect_or_error(p, c) for p, c in zip(paths, crs, strict=True)]
        for i, one in zip(todo, opened, strict=True):
            found[i] = one
        for p, got in zip(prod.files, found, strict=True):
            if isinstance(got, TileFacts):
                facts[prod.name].append(got)
            elif not skip_unreadable:
                assert got is not None  # every unknown tile was opened above
                raise got
            else:
                broken[location(p)] = str(got)
        if not facts[prod.name]:
            raise InputError(
                f"ortho product {prod.name!r}: none of its {len(prod.files)} tiles could be "
                f"opened (first: {next(iter(broken.values()))})"
            )
    return facts, broken


def _check_product(
    prod: Product, tiles: list[TileFacts], ref: TileFacts, lambert93: bool, any_dtype: bool
) -> None:
    rx, ry = ref.res
    for t in tiles:
        check_north_up(t)
        if lambert93 and not is_lambert93(t.crs):
            raise InputError(
                f"{t.path}: ortho CRS is {t.crs.to_string() if t.crs else 'missing'}, expected "
                "EPSG:2154 (Lambert-93); reproject the tiles first (gdalwarp -t_srs EPSG:2154), "
                "resampling an ortho on the fly would silently change its pixels"
            )
        if not lambert93 and not same_crs(t.crs, ref.crs):
            raise InputError(f"{t.path}: tile CRS {t.crs} differs from {ref.path}'s {ref.crs}")
        x, y = t.res
        if abs(x - rx) > _RES_RTOL * rx or abs(y - ry) > _RES_RTOL * ry:
            raise InputError(
                f"{t.path}: pixel size {x:g} x {y:g} differs from {ref.path}'s {rx:g} x {ry:g}"
            )
        col = (t.bounds[0] - ref.bounds[0]) / rx
        row = (ref.bounds[3] - t.bounds[3]) / ry
        if abs(col - round(col)) > _GRID_TOL or abs(row - round(row)) > _GRID_TOL:
            raise InputError(
                f"{t.path}: tile is not on the pixel grid of {ref.path} (offset {col:g}, {row:g} px)"
            )
        if t.crs is None:
            raise InputError(
                f"{t.path}: no CRS in the file; give one for this input in domain.yaml "
                "(crs: EPSG:2154) or add a .prj / .aux.xml"
            )
        if t.dtype != "uint8" and prod.rescale is None and not any_dtype:
            raise InputError(
                f"{t.path}: pixels are {t.dtype}, expected uint8; convert to 8 bits "
                "(gdal_translate -ot Byte -scale LOW HIGH 0 255) or configure `rescale: "
                "[LOW, HIGH]` for this product (reading them as uint8 would keep values modulo 256)"
            )
        for name, band in prod.bands.items():
            if band > t.count:
                raise InputError(
                    f"{t.path}: {name} is mapped to band {band} but the file has {t.count} "
                    f"band(s); {_band_hint(name, t.count)}"
                )


def _band_hint(name: str, count: int) -> str:
    if name == "NIR" and count == 3:
        return (
            "a 3-band product (RVB) carries no NIR: add the IRC product (NIR = its band 1) "
            "in domain.yaml, or give a 4-band R,G,B,NIR ortho"
        )
    return "fix the band mapping of this product in domain.yaml"


def build_vrt(
    products: Sequence[Product],
    band_names: Sequence[str] = ORTHO_BANDS,
    *,
    lambert93: bool = True,
    skip_unreadable: bool = False,
    any_dtype: bool = False,
    resolution: float | None = None,
    resampling: str | None = None,
    product_bands: bool = False,
) -> RasterVRT:
    """A VRT whose bands `band_names` come from `products`, every tile checked first.

    `lambert93` requires every tile to be in Lambert-93 (the dataset build); otherwise the
    tiles must only agree with one another (prediction of any georeferenced ortho).
    Unreadable tiles raise InputError, or with `skip_unreadable` are left out and listed
    in ``broken``. `any_dtype` keeps the files' type (DSM/DTM heights in float32).

    `resolution` (the dataset's ``sampling.resolution``) is the pixel size every tile must
    have: a tile at another one is refused in one line naming it and its pixel size, or,
    with `resampling` (a GDAL resampling name: ``bilinear``, ``cubic``…), read through
    GDAL's warper onto the `resolution` grid (one decision line per product says so).
    A tile's per-dataset mask (an internal or ``.msk`` mask band, an alpha band that no
    output band is mapped to) is carried in ``mask_xml``; an alpha band that an output band
    is mapped to is read as data (one decision line per product says so).
    `product_bands` appends each product's unmapped bands (not alpha) after `band_names`
    (``product_extra``), so that a reader can tell a product's nodata on all its bands.

    Returns:
        The VRT XML with its grid (transform, size, CRS), band names, tiles' facts,
        unreadable tiles, per-band nodata and rescales, and the decision lines.

    Raises:
        InputError: each refusal listed in the module docstring, and a tile at another
            pixel size than `resolution` when `resampling` is None.
    """
    mapped = {n for p in products for n in p.bands}
    missing = [n for n in band_names if n not in mapped]
    if missing:
        hint = _band_hint(missing[0], 3) if missing == ["NIR"] else "map every band"
        raise InputError(
            f"ortho products {[p.name for p in products]} give no {', '.join(missing)} band; "
            + hint
        )
    facts, broken = _gather(products, skip_unreadable)
    views: list[MemoryFile] = []
    decisions: list[str] = []
    try:
        if resolution is not None:
            decisions += _to_resolution(products, facts, resolution, resampling, views)
        vrt = _assemble(products, band_names, facts, broken, lambert93, any_dtype, product_bands)
    except BaseException:
        for mem in views:
            mem.close()
        raise
    vrt.views = views
    vrt.decisions = [*_alpha_decisions(products, facts), *decisions, *vrt.decisions]
    return vrt


def _assemble(
    products: Sequence[Product],
    band_names: Sequence[str],
    facts: dict[str, list[TileFacts]],
    broken: dict[Location, str],
    lambert93: bool,
    any_dtype: bool,
    with_extra: bool = False,
) -> RasterVRT:
    ref = facts[products[0].name][0]
    for prod in products:
        _check_product(prod, facts[prod.name], ref, lambert93, any_dtype)
    every = [t for ts in facts.values() for t in ts]
    rx, ry = ref.res
    left = min(t.bounds[0] for t in every)
    top = max(t.bounds[3] for t in every)
    width = round((max(t.bounds[2] for t in every) - left) / rx)
    height = round((top - min(t.bounds[1] for t in every)) / ry)
    xml_bands, mask_bands, nodata, scales = [], [], [], []
    product_bands: dict[str, list[int]] = {p.name: [] for p in products}
    for i, name in enumerate(band_names, 1):
        prod = next(p for p in products if name in p.bands)
        product_bands[prod.name].append(i - 1)
        tiles = facts[prod.name]
        nodata.append(tiles[0].nodata)
        scales.append(prod.rescale)
        xml_bands.append(_band_xml(i, prod, prod.bands[name], tiles, left, top, rx, ry))
        masked = [t for t in tiles if uses_mask(prod, t)]
        mask_bands.append(_mask_band_xml(i, prod.bands[name], masked, left, top, rx, ry))
    extra: dict[str, list[int]] = {}
    for prod in products if with_extra else ():
        tiles = facts[prod.name]
        count = min(t.count for t in tiles)
        used = {*prod.bands.values(), *(t.alpha_band for t in tiles)}
        for band in (b for b in range(1, count + 1) if b not in used):
            i = len(xml_bands) + 1
            extra.setdefault(prod.name, []).append(i - 1)
            xml_bands.append(_band_xml(i, prod, band, tiles, left, top, rx, ry))
    crs = normalize_crs(ref.crs) if lambert93 else ref.crs
    srs = f"<SRS>{escape(crs.to_wkt())}</SRS>" if crs else ""
    transform = Affine(rx, 0.0, left, 0.0, -ry, top)
    head = (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{srs}'
        f"<GeoTransform>{left!r}, {rx!r}, 0, {top!r}, 0, {-ry!r}</GeoTransform>"
    )
    xml = f"{head}{''.join(xml_bands)}</VRTDataset>"
    any_mask = any(uses_mask(p, t) for p in products for t in facts[p.name])
    mask_xml = f"{head}{''.join(mask_bands)}</VRTDataset>" if any_mask else ""
    decisions = [rescale_decision(p, facts[p.name][0]) for p in products if p.rescale]
    return RasterVRT(
        xml,
        transform,
        width,
        height,
        crs,
        tuple(band_names),
        every,
        broken,
        tuple(nodata),
        tuple(scales),
        decisions,
        {k: tuple(v) for k, v in product_bands.items() if v},
        {p.name: facts[p.name] for p in products},
        mask_xml=mask_xml,
        product_extra={k: tuple(v) for k, v in extra.items()},
    )


def uses_mask(prod: Product, tile: TileFacts) -> bool:
    """Whether `tile`'s per-dataset mask says where `prod` has data.

    An internal or external mask band does; so does an alpha band, unless one of the
    product's output bands is mapped to it (a 4-band R, G, B, NIR GeoTIFF whose fourth band
    GDAL declares alpha: the mapping says it is NIR, and it is read as NIR).

    Args:
        prod: The product the tile belongs to.
        tile: The tile's header facts.

    Returns:
        Whether the tile's mask is read.
    """
    if tile.mask is None:
        return False
    return not (tile.mask == "alpha" and tile.alpha_band in prod.bands.values())


def _alpha_decisions(
    products: Sequence[Product], facts: Mapping[str, Sequence[TileFacts]]
) -> list[str]:
    """One line per product whose tiles declare alpha a band that it maps to an output band.

    Args:
        products: The products.
        facts: Their tiles' header facts, by product name.

    Returns:
        The decision lines.
    """
    out = []
    for prod in products:
        t = next(
            (t for t in facts.get(prod.name, ()) if t.mask == "alpha" and not uses_mask(prod, t)),
            None,
        )
        if t is not None:
            name = next(n for n, b in prod.bands.items() if b == t.alpha_band)
            out.append(
                f"ortho {prod.name}: band {t.alpha_band} of {t.path} is declared alpha but "
                f"mapped to {name}: read as {name}, not as a mask (the bands mapping wins)"
            )
    return out


def _same_res(res: tuple[float, float], target: float) -> bool:
    return all(abs(r - target) <= _RES_RTOL * target for r in res)


def _to_resolution(
    products: Sequence[Product],
    facts: dict[str, list[TileFacts]],
    resolution: float,
    resampling: str | None,
    views: list[MemoryFile],
) -> list[str]:
    """Refuse, or resample onto the `resolution` grid, the tiles at another pixel size.

    Replaces each such tile's facts in `facts` by those of its resampled view (a GDAL
    warped VRT held in memory, appended to `views`).

    Args:
        products: The products.
        facts: Their tiles' header facts by product name, modified in place.
        resolution: The pixel size required, metres.
        resampling: A GDAL resampling name, or None to refuse.
        views: Where the in-memory warped views are kept open.

    Returns:
        One decision line per resampled product.

    Raises:
        InputError: A tile at another pixel size when `resampling` is None, naming it.
    """
    off = [(p, t) for p in products for t in facts[p.name] if not _same_res(t.res, resolution)]
    if not off:
        return []
    if resampling is None:
        _, t = off[0]
        more = f" (and {len(off) - 1} other tile(s))" if len(off) > 1 else ""
        r = f"{resolution:g}"
        raise InputError(
            f"{t.path}: ortho pixel size {t.res[0]:g} x {t.res[1]:g} m{more}, but patches are "
            f"cut at sampling.resolution {r} m (its IMG would cover another ground than its "
            f"MSK); resample the tiles first (gdalwarp -tr {r} {r} -r cubic) or set "
            "sampling.ortho_resampling (e.g. bilinear) to resample them on the fly"
        )
    decisions = []
    for prod in products:
        mine = [t for p, t in off if p is prod]
        if not mine:
            continue
        for t in mine:
            check_north_up(t)
            view = _resampled(t, resolution, resampling, views)
            facts[prod.name][facts[prod.name].index(t)] = view
        sizes = sorted({f"{t.res[0]:g}" for t in mine})
        decisions.append(
            f"ortho {prod.name}: {len(mine)} tile(s) at {'/'.join(sizes)} m (first: "
            f"{mine[0].path}) resampled on the fly to sampling.resolution {resolution:g} m "
            f"({resampling}, GDAL warper, tile by tile)"
        )
    return decisions


def _resampled(
    tile: TileFacts, resolution: float, resampling: str, views: list[MemoryFile]
) -> TileFacts:
    """`tile` read through GDAL's warper on a `resolution` grid anchored at its corner.

    The view is a warped VRT serialised in memory; the tile's mask (or alpha) is read from
    the file itself (``native``).

    Args:
        tile: The tile's header facts.
        resolution: The target pixel size, metres.
        resampling: A GDAL resampling name.
        views: Where the in-memory view is kept open.

    Returns:
        The tile's facts on the new grid, ``source`` the in-memory view and ``native``
        the file's own (width, height).

    Raises:
        InputError: `resampling` is not a GDAL method.
    """
    try:
        method = Resampling[resampling]
    except KeyError:
        raise InputError(
            f"sampling.ortho_resampling {resampling!r}: not a GDAL resampling method"
        ) from None
    left, bottom, right, top = tile.bounds
    width, height = round((right - left) / resolution), round((top - bottom) / resolution)
    mem = MemoryFile(ext=".vrt")
    views.append(mem)
    with (
        gdal_env([tile.path]),
        rasterio.open(tile.path) as src,
        WarpedVRT(
            src,
            src_crs=tile.crs,
            crs=tile.crs,
            transform=from_origin(left, top, resolution, resolution),
            width=width,
            height=height,
            resampling=method,
        ) as view,
    ):
        gdal_copy(view, mem.name, driver="VRT")
    return replace(
        tile,
        transform=from_origin(left, top, resolution, resolution),
        width=width,
        height=height,
        source=mem.name,
        native=(tile.width, tile.height),
    )


def rescale_decision(prod: Product, tile: TileFacts) -> str:
    """The line recorded in the build's metadata for a rescaled product.

    Args:
        prod: a product with ``rescale`` set.
        tile: the header facts of one of its tiles (type and nodata).

    Returns:
        e.g. ``ortho sat16: uint16 rescaled linearly [0, 3000] -> 0..255 (clipped); its
        nodata 65535 is no data, found before scaling: …``.
    """
    assert prod.rescale is not None
    lo, hi = prod.rescale
    head = f"ortho {prod.name}: {tile.dtype} rescaled linearly [{lo:g}, {hi:g}] -> 0..255 (clipped)"
    if tile.nodata is None:
        return (
            f"{head}; its files declare no nodata, so every pixel is data (declare one with "
            "gdal_edit.py -a_nodata if the product has voids)"
        )
    return (
        f"{head}; its nodata {tile.nodata:g} is no data, found before scaling: uncovered for "
        "the sampler (sampling.max_nodata_fraction) and 0 in the IMG, never a scaled value"
    )


def _band_xml(
    i: int,
    prod: Product,
    band: int,
    tiles: list[TileFacts],
    left: float,
    top: float,
    rx: float,
    ry: float,
) -> str:
    # a rescaled band is Float32: NaN where the source holds its nodata (masked by GDAL on
    # the source values, before scaling); Mosaic.read rounds and clips it to uint8
    out_type = "Float32" if prod.rescale is not None else _GDAL_TYPES.get(tiles[0].dtype, "Byte")
    nodata = tiles[0].nodata
    sources = []
    for t in tiles:
        col, row = round((t.bounds[0] - left) / rx), round((top - t.bounds[3]) / ry)
        rects = (
            f'<SrcRect xOff="0" yOff="0" xSize="{t.width}" ySize="{t.height}"/>'
            f'<DstRect xOff="{col}" yOff="{row}" xSize="{t.width}" ySize="{t.height}"/>'
        )
        name = f'<SourceFilename relativeToVRT="0">{escape(t.filename)}</SourceFilename>'
        if prod.rescale is None:
            sources.append(
                f"<SimpleSource>{name}<SourceBand>{band}</SourceBand>{rects}</SimpleSource>"
            )
        else:
            lo, hi = prod.rescale
            ratio = 255.0 / (hi - lo)
            src_nd = f"<NODATA>{nodata!r}</NODATA>" if nodata is not None else ""
            sources.append(
                f"<ComplexSource>{name}<SourceBand>{band}</SourceBand>{rects}"
                f"<ScaleOffset>{-lo * ratio!r}</ScaleOffset><ScaleRatio>{ratio!r}</ScaleRatio>"
                f"{src_nd}</ComplexSource>"
            )
    if prod.rescale is not None:
        nd = "<NoDataValue>nan</NoDataValue>"
    else:
        nd = f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None else ""
    return f'<VRTRasterBand dataType="{out_type}" band="{i}">{nd}{"".join(sources)}</VRTRasterBand>'


def _mask_band_xml(
    i: int, band: int, tiles: list[TileFacts], left: float, top: float, rx: float, ry: float
) -> str:
    """Band `i` of the mask VRT: each masked tile's alpha band, or its mask of `band`.

    Args:
        i: The mask VRT's band number.
        band: The tiles' band whose mask is read.
        tiles: The product's tiles.
        left: The mosaic's left edge.
        top: The mosaic's top edge.
        rx: Pixel width.
        ry: Pixel height (positive).

    Returns:
        The ``VRTRasterBand`` XML.
    """
    sources = []
    for t in tiles:
        col, row = round((t.bounds[0] - left) / rx), round((top - t.bounds[3]) / ry)
        which = str(t.alpha_band) if t.mask == "alpha" else f"mask,{band}"
        w, h = t.native or (t.width, t.height)  # a resampled tile's mask: nearest
        sources.append(
            f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(str(t.path))}'
            f"</SourceFilename><SourceBand>{which}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
            f'<DstRect xOff="{col}" yOff="{row}" xSize="{t.width}" ySize="{t.height}"/>'
            "</SimpleSource>"
        )
    return f'<VRTRasterBand dataType="Byte" band="{i}">{"".join(sources)}</VRTRasterBand>'


def default_product(files: Sequence[Location], count: int | None = None) -> Product:
    """The project's raw layout: tiles whose bands 1..4 are R, G, B, NIR.

    Args:
        files: The tiles.
        count: Bands mapped (None: all four).

    Returns:
        The product ``ortho``.
    """
    return Product("ortho", list(files), {n: i for i, n in enumerate(ORTHO_BANDS[:count], 1)})


def sample_range(path: Path) -> tuple[float, float]:
    """(min, max) of a decimated read of band 1, for error messages.

    Args:
        path: A raster.

    Returns:
        The range of its decimated first band.
    """
    with rasterio.open(path) as src:
        a = src.read(1, out_shape=(min(src.height, 64), min(src.width, 64)))
    return float(np.min(a)), float(np.max(a))
