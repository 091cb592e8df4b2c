"""Sentinel-1 VV/VH series from a STAC catalogue of calibrated COGs (static catalog or API).

Planetary Computer's ``sentinel-1-rtc`` (γ0 radiometrically terrain-corrected, linear power,
float32 COGs in UTM, assets ``vv``/``vh``, ``raster:bands`` nodata -32768, hrefs that need a
SAS token) is the reference; any catalogue of calibrated Sentinel-1 COGs works with its asset
keys and coefficient configured. What each item says is read, never guessed:

* orbit direction from ``sat:orbit_state``, relative orbit from ``sat:relative_orbit``,
  polarisations from ``sar:polarizations``; an item without both VV and VH, or without an
  orbit state, is skipped with one line naming it;
* the coefficient is the configured one (``sigma0``/``gamma0``); where ``coefficient_property``
  names an item property declaring it per item, an item that declares the other coefficient
  is skipped with one line (a series never mixes σ0 and γ0);
* nodata from the asset's ``raster:bands`` or the file; the two disagreeing skips the item
  with one line. Declared ``scale``/``offset`` are applied and recorded.

Pixels are warped to the zone's 10 m EPSG:2154 grid with a rasterio WarpedVRT (bilinear on
linear power, nodata honoured), then converted to dB when ``units: dB`` (by us, 10·log10).
Several items of one date and orbit over a grid (consecutive slices) are mosaicked in id
order, first valid pixel wins; the record lists every item that contributed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
import shapely
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from shapely.geometry import box, shape

from flair_pipeline.errors import InputError
from flair_pipeline.progress import Progress, each
from flair_pipeline.redaction import redact
from flair_pipeline.sentinel1.provider import (
    ORBITS,
    Coefficient,
    Orbit,
    S1Series,
    Sentinel1Provider,
    Units,
    ZoneResult,
    to_db,
    to_linear,
)
from flair_pipeline.sentinel2.provider import CRS, Grid
from flair_pipeline.sentinel2.stac_hrefs import Hrefs
from flair_pipeline.sentinel2.stac_net import gdal_env, stac_api_io, static_stac_io

RESAMPLING = "bilinear"


@dataclass
class _Item:
    item: pystac.Item
    date: dt.date
    orbit: str
    footprint: Any
    problem: str = ""


class StacS1Provider(Sentinel1Provider):
    """Sentinel-1 series from a static STAC catalog (path or URL) or a STAC API.

    Args:
        catalog: a static STAC catalog (path or URL), or None with `api_url`.
        api_url: a STAC API, or None with `catalog`.
        collection: the collection id.
        assets: the asset keys of VV and VH, in that order.
        coefficient: what the catalogue serves (``gamma0`` for ``sentinel-1-rtc``).
        source_units: the units of the catalogue's pixels (``linear`` for ``sentinel-1-rtc``).
        units: the units wanted in the series (``dB`` converted by us, 10·log10).
        coefficient_property: an item property declaring the coefficient per item, or None.
        border_noise_masked: what the catalogue says about GRD border noise (recorded).
        hrefs: how asset hrefs are resolved (Planetary Computer SAS signing, S3).
        retries: retries of every HTTP request (STAC and COG).
        backoff_s: back-off factor of those retries, s.
        connect_timeout_s: connect timeout, s.
        read_timeout_s: read timeout, s.

    Raises:
        InputError: neither or both of `catalog` and `api_url`; not two asset keys.
    """

    name = "stac"

    def __init__(
        self,
        catalog: str | Path | None = None,
        api_url: str | None = None,
        collection: str = "sentinel-1-rtc",
        assets: Sequence[str] = ("vv", "vh"),
        coefficient: Coefficient = "gamma0",
        source_units: Units = "linear",
        units: Units = "linear",
        coefficient_property: str | None = None,
        border_noise_masked: bool | None = True,
        hrefs: Hrefs | None = None,
        retries: int = 3,
        backoff_s: float = 1.0,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        if (catalog is None) == (api_url is None):
            raise InputError("StacS1Provider needs exactly one of catalog= or api_url=")
        if len(assets) != 2:
            raise InputError(f"sentinel1.source.assets: {list(assets)}: give the VV and VH keys")
        self.catalog = str(catalog) if catalog is not None else None
        self.api_url = api_url
        self.collection = collection
        self.assets = (assets[0], assets[1])
        self.coefficient, self.source_units, self.units = coefficient, source_units, units
        self.coefficient_property = coefficient_property
        self.border_noise_masked = border_noise_masked
        self.retries, self.backoff_s = retries, backoff_s
        self.timeouts = (connect_timeout_s, read_timeout_s)
        self.hrefs = hrefs or Hrefs(retries=retries, backoff_s=backoff_s, timeouts=self.timeouts)
        self._static: list[pystac.Item] | None = None

    def fetch_each(
        self,
        grids: list[Grid],
        start: dt.date,
        end: dt.date,
        orbits: tuple[Orbit, ...] = ORBITS,
        *,
        progress: Progress | None = None,
    ) -> list[ZoneResult]:
        """Per grid and orbit direction, the series or the InputError naming them.

        Args:
            grids: The 10 m EPSG:2154 grids (super-areas) to fill.
            start: First date searched (inclusive).
            end: Last date searched (inclusive).
            orbits: The orbit directions wanted.
            progress: Where to count the items read, or None.

        Returns:
            Per grid, a dict orbit -> :class:`S1Series` (float32 T×2×H×W, VV VH, NaN without
            measurement) or the :class:`InputError` naming grid and orbit without a date.

        Raises:
            InputError: `end` before `start`; the catalog or API cannot be read or searched.
        """
        if end < start:
            raise InputError(f"Sentinel-1 time range is empty: start {start} is after end {end}")
        to_wgs = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
        feet = [box(*to_wgs.transform_bounds(*g.bounds)) for g in grids]
        items = [self._classify(i) for i in self._items(feet, start, end)]
        items = [i for i in items if start <= i.date <= end]
        items.sort(key=lambda i: (i.date, i.item.id))
        out: list[ZoneResult] = []
        work = [
            (g, orbit, [i for i in items if _for(i, orbit) and i.footprint.intersects(f)])
            for g, f in enumerate(feet)
            for orbit in orbits
        ]
        results: dict[tuple[int, str], S1Series | InputError] = {}
        env = {
            **gdal_env(self.retries, self.backoff_s, *self.timeouts),
            **self.hrefs.gdal_options(),
        }
        label = f"Sentinel-1 {start.year}"
        with rasterio.Env(**env):
            for g, orbit, found in each(progress, label, work, "zone-orbits", len(work)):
                results[(g, orbit)] = self._series(grids[g], orbit, found, start, end)
        for g in range(len(grids)):
            out.append({o: results[(g, o)] for o in orbits})
        return out

    # -- what an item says ---------------------------------------------------------------
    def _classify(self, item: pystac.Item) -> _Item:
        props = item.properties
        when = item.datetime or pystac.utils.str_to_datetime(props.get("start_datetime", ""))
        orbit = str(props.get("sat:orbit_state", "")).lower()
        foot = shape(item.geometry) if item.geometry else box(*(item.bbox or (0, 0, 0, 0)))
        rec = _Item(item, when.date(), orbit, foot)
        pols = {str(p).upper() for p in props.get("sar:polarizations", [])}
        if not {"VV", "VH"} <= pols:
            rec.problem = (
                f"polarisations {sorted(pols) or 'not declared'} (sar:polarizations): "
                "VV and VH both needed"
            )
        elif orbit not in ORBITS:
            rec.problem = (
                f"sat:orbit_state {props.get('sat:orbit_state')!r}: not ascending/descending"
            )
        elif self.coefficient_property and self.coefficient_property in props:
            said = _coefficient(props[self.coefficient_property])
            if said != self.coefficient:
                rec.problem = (
                    f"{self.coefficient_property}={props[self.coefficient_property]!r} ({said}) "
                    f"but the series keeps {self.coefficient} (sentinel1.source.coefficient): "
                    "σ0 and γ0 are never mixed in one series"
                )
        return rec

    def _nodata(self, item: pystac.Item, key: str, src: Any) -> tuple[float | None, str]:
        bands = item.assets[key].extra_fields.get("raster:bands") or [{}]
        declared = bands[0].get("nodata")
        if declared is not None and src.nodata is not None and not _same(declared, src.nodata):
            return None, (
                f"asset {key!r}: raster:bands nodata {declared} but the file says {src.nodata}; "
                "fix the catalogue (neither is overridden)"
            )
        return (declared if declared is not None else src.nodata), ""

    # -- pixels ---------------------------------------------------------------------------
    def _series(
        self,
        grid: Grid,
        orbit: str,
        items: list[_Item],
        start: dt.date,
        end: dt.date,
    ) -> S1Series | InputError:
        skipped = [(i.item.id, i.problem) for i in items if i.problem]
        days: dict[dt.date, tuple[np.ndarray, list[pystac.Item], list[dict[str, Any]]]] = {}
        for it in (i for i in items if not i.problem):
            got = self._read(it.item, grid)
            if isinstance(got, str):
                skipped.append((it.item.id, got))
                continue
            pixels, info = got
            if not np.isfinite(pixels).all(axis=0).any():
                skipped.append((it.item.id, "no valid pixel over the grid"))
                continue
            if it.date not in days:
                days[it.date] = (pixels, [it.item], [info])
                continue
            acc, used, infos = days[it.date]
            hole = ~np.isfinite(acc).all(axis=0) & np.isfinite(pixels).all(axis=0)
            acc[:, hole] = pixels[:, hole]
            used.append(it.item)
            infos.append(info)
        if not days:
            why = f"; skipped: {'; '.join(f'{p}: {w}' for p, w in skipped)}" if skipped else ""
            return InputError(
                f"grid {grid.bounds}: no {orbit} Sentinel-1 item of collection "
                f"{self.collection!r} of {self._source()} with VV and VH over it, {start}..{end}"
                f"{why}"
            )
        dates = sorted(days)
        data = np.stack([days[d][0] for d in dates]).astype(np.float32)
        if self.units != self.source_units:  # the only conversion between the two units
            data = to_db(data) if self.units == "dB" else to_linear(data)
        records = [self._record(d, orbit, days[d][1], days[d][2]) for d in dates]
        return S1Series(grid, orbit, data, dates, records, skipped)  # type: ignore[arg-type]

    def _read(self, item: pystac.Item, grid: Grid) -> tuple[np.ndarray, dict[str, Any]] | str:
        out = np.full((2, grid.height, grid.width), np.nan, np.float32)
        info: dict[str, Any] = {}
        for b, key in enumerate(self.assets):
            if key not in item.assets:
                return f"asset {key!r} missing (sentinel1.source.assets)"
            if not self.hrefs.readable(item, key):
                return (
                    f"asset {key!r} not readable (s3:// href without sentinel1.source.s3_endpoint)"
                )
            href = self.hrefs.href(item, key)
            try:
                with rasterio.open(href) as src:
                    nodata, why = self._nodata(item, key, src)
                    if why:
                        return why
                    with WarpedVRT(
                        src,
                        crs=CRS,
                        transform=grid.transform,
                        width=grid.width,
                        height=grid.height,
                        resampling=Resampling[RESAMPLING],
                        src_nodata=nodata,
                        nodata=nodata,
                        dtype="float32",
                    ) as vrt:
                        band = vrt.read(1, masked=True)
                    scale, offset = src.scales[0], src.offsets[0]
            except (rasterio.errors.RasterioError, OSError) as exc:
                return redact(f"asset {key!r} unreadable ({href}): {exc}")
            meta = item.assets[key].extra_fields.get("raster:bands") or [{}]
            scale = float(meta[0].get("scale", scale))
            offset = float(meta[0].get("offset", offset))
            vals = band.filled(np.nan).astype(np.float32) * scale + offset
            if nodata is not None and not np.isnan(nodata):
                vals[band.filled(nodata) == nodata] = np.nan
            out[b] = vals
            info[key] = {"nodata": nodata, "scale": scale, "offset": offset}
        return out, info

    def _record(
        self, day: dt.date, orbit: str, used: list[pystac.Item], infos: list[dict[str, Any]]
    ) -> dict[str, Any]:
        first = used[0].properties
        return {
            "date": day.isoformat(),
            "provider": f"stac {self._source()}",
            "product": ", ".join(i.id for i in used),
            "collection": self.collection,
            "coefficient": self.coefficient,
            "units": self.units,
            "converted": (
                "none"
                if self.units == self.source_units
                else "10*log10 of linear power, by flair_pipeline"
                if self.units == "dB"
                else "10**(dB/10), by flair_pipeline"
            ),
            "orbit_state": orbit,
            "relative_orbit": first.get("sat:relative_orbit"),
            "polarizations": first.get("sar:polarizations"),
            "nodata": infos[0][self.assets[0]]["nodata"],
            "scale_offset": [infos[0][self.assets[0]]["scale"], infos[0][self.assets[0]]["offset"]],
            "border_noise_masked": self.border_noise_masked,
            "resampling": f"{RESAMPLING} (rasterio WarpedVRT) to 10 m EPSG:2154",
        }

    # -- catalogue ------------------------------------------------------------------------
    def _source(self) -> str:
        if self.api_url or not self.catalog or "://" in self.catalog:
            return str(self.api_url or self.catalog)
        path, cwd = Path(self.catalog).resolve(), Path.cwd().resolve()
        return path.relative_to(cwd).as_posix() if path.is_relative_to(cwd) else self.catalog

    def _items(self, feet: list[Any], start: dt.date, end: dt.date) -> list[pystac.Item]:
        if self.catalog is not None:
            if self._static is None:
                self._static = self._load_catalog(self.catalog)
            return self._static
        import requests
        from pystac_client import Client
        from pystac_client.exceptions import APIError

        bbox = list(shapely.union_all(feet).bounds) if feet else None
        io = stac_api_io(self.retries, self.backoff_s, *self.timeouts)
        try:
            client = Client.open(str(self.api_url), stac_io=io, timeout=self.timeouts)
            found = client.search(
                collections=[self.collection],
                bbox=bbox,
                datetime=f"{start.isoformat()}/{end.isoformat()}",
                limit=100,
            )
            return list(found.items())
        except (APIError, requests.RequestException, OSError, ValueError) as exc:
            raise InputError(
                f"STAC API {self.api_url}: Sentinel-1 search failed ({str(exc)[:200]}); "
                f"retried {self.retries} times (sentinel1.source.max_retries)"
            ) from exc

    def _load_catalog(self, href: str) -> list[pystac.Item]:
        if "://" not in href and not Path(href).is_file():
            raise InputError(f"STAC catalog {href}: file not found (sentinel1.source.catalog)")
        remote = "://" in href
        try:
            io = static_stac_io(self.retries, self.backoff_s, *self.timeouts) if remote else None
            cat = pystac.Catalog.from_file(href, stac_io=io)
            child = cat.get_child(self.collection)
            items = list((child or cat).get_items(recursive=True))
        except Exception as exc:  # network, HTTP and JSON failures all look alike here
            raise InputError(
                f"STAC catalog {href}: not a readable STAC catalog ({str(exc)[:200]})"
            ) from exc
        return [i for i in items if i.collection_id in (None, self.collection)]


def _for(item: _Item, orbit: str) -> bool:
    """Whether `item` belongs to `orbit`'s series.

    Returns:
        True for an item of that direction, and for one without a known direction (shown
        as a skipped line in every direction's series).
    """
    return item.orbit == orbit or (bool(item.problem) and item.orbit not in ORBITS)


def _coefficient(value: Any) -> str:
    text = str(value).lower()
    if "sigma" in text or "σ" in text:
        return "sigma0"
    if "gamma" in text or "γ" in text:
        return "gamma0"
    return text


def _same(a: float, b: float) -> bool:
    return bool((np.isnan(a) and np.isnan(b)) or a == b)
