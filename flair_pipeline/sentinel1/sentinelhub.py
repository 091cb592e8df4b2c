"""Sentinel-1 GRD IW series from the Sentinel Hub Process API (Copernicus Data Space by default).

One request per super-area and orbit direction on ``SENTINEL1_IW``: ``dataFilter.orbitDirection``
keeps ascending and descending apart; ``processing`` asks for the backscatter coefficient
(``backCoeff`` SIGMA0_ELLIPSOID, as FLAIR-HUB ships it, or GAMMA0_TERRAIN), ``orthorectify:
true`` on ``demInstance``. ``evalscripts/flair_s1.js`` uses ORBIT mosaicking, so one answer (a
TAR: data.tif FLOAT32 VV/VH per acquisition in linear power, NaN without data, and
userdata.json naming each acquisition) holds every date; dB, when asked, is computed here
(10·log10), never by the evalscript. The session, OAuth token, retries, cache, redaction and
error classification are the Sentinel-2 provider's (:mod:`flair_pipeline.sentinel2.sentinelhub`),
used as is, not copied.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import os
import tarfile
from importlib import resources
from typing import Any

import numpy as np
import sentinelhub as sh

from flair_pipeline.config import S1SentinelHubSource
from flair_pipeline.errors import ConfigError, InputError
from flair_pipeline.progress import Progress, each
from flair_pipeline.sentinel1.provider import (
    ORBITS,
    Coefficient,
    Orbit,
    S1Series,
    Sentinel1Provider,
    Units,
    ZoneResult,
    to_db,
)
from flair_pipeline.sentinel2.factory import Credentials
from flair_pipeline.sentinel2.provider import Grid
from flair_pipeline.sentinel2.sentinelhub import (
    _FAILURES,
    MAX_SIDE,
    RequestRecord,
    SentinelHubCredentialsError,
    SentinelHubProvider,
    SentinelHubSettings,
    _BadResponse,
    _orbit_date,
    _product,
    _pu,
    _read_tiff,
    bound_collection,
)

#: ``processing.backCoeff`` of each coefficient setting.
BACK_COEFF: dict[str, str] = {"sigma0": "SIGMA0_ELLIPSOID", "gamma0": "GAMMA0_TERRAIN"}


@functools.cache
def s1_evalscript() -> str:
    """The evalscript, shipped as package data next to this module.

    Returns:
        The text of ``evalscripts/flair_s1.js``.
    """
    return (resources.files(__package__) / "evalscripts" / "flair_s1.js").read_text("utf-8")


class SentinelHubS1Provider(Sentinel1Provider):
    """VV/VH series from Sentinel Hub, one Process API request per grid and orbit direction.

    Args:
        settings: The deployment, credentials, cache and retries (the Sentinel-2 provider's).
        coefficient: ``sigma0`` (SIGMA0_ELLIPSOID) or ``gamma0`` (GAMMA0_TERRAIN).
        units: ``linear`` or ``dB`` (10·log10, computed here).
        dem_instance: ``processing.demInstance`` of the orthorectification.
    """

    name = "sentinelhub"

    def __init__(
        self,
        settings: SentinelHubSettings,
        coefficient: Coefficient = "sigma0",
        units: Units = "linear",
        dem_instance: str = "COPERNICUS",
    ) -> None:
        self._sh = SentinelHubProvider(settings)  # session, token, retries, redaction
        self.settings = settings
        self.coefficient, self.units, self.dem_instance = coefficient, units, dem_instance
        self._collection = bound_collection(sh.DataCollection.SENTINEL1_IW, settings.sh_base_url)

    @classmethod
    def from_config(
        cls, source: S1SentinelHubSource, units: Units, credentials: Credentials | None
    ) -> SentinelHubS1Provider:
        """The provider a ``sentinel1.source`` of ``provider: sentinelhub`` configures.

        Args:
            source: The provider's settings.
            units: ``sentinel1.units``.
            credentials: The OAuth client, from the environment.

        Returns:
            The provider.

        Raises:
            ConfigError: Empty credentials.
        """
        if credentials is None:
            raise ConfigError("sentinel1.source.provider sentinelhub needs OAuth credentials")
        settings = SentinelHubSettings(
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
            sh_base_url=source.base_url,
            sh_token_url=source.token_url,
            cache_folder=source.cache,
            max_retries=source.max_retries,
        )
        return cls(settings, source.coefficient, units, source.dem_instance)

    @property
    def processing_units(self) -> float:
        """Sentinel Hub processing units spent so far (cache hits cost 0)."""
        return self._sh.pu_spent

    @property
    def requests(self) -> list[RequestRecord]:
        """Every Process API request made, in order."""
        return self._sh.requests

    def fetch_each(
        self,
        grids: list[Grid],
        start: dt.date,
        end: dt.date,
        orbits: tuple[Orbit, ...] = ORBITS,
        *,
        progress: Progress | None = None,
    ) -> list[ZoneResult]:
        """Per grid and orbit direction: its series, or the InputError saying why it has none.

        Args:
            grids: The 10 m EPSG:2154 grids, one request per grid and orbit.
            start: First date requested (inclusive).
            end: Last date requested (inclusive).
            orbits: The orbit directions wanted.
            progress: Where to count the requests, or None.

        Returns:
            Per grid, a dict orbit -> :class:`S1Series` (float32 T×2×H×W, VV VH) or the
            :class:`InputError` naming grid and orbit.

        Raises:
            InputError: `end` is before `start`, or the OAuth token cannot be obtained.
            SentinelHubCredentialsError: The credentials are rejected or access refused.
        """
        if end < start:
            raise InputError(f"Sentinel-1 time range is empty: start {start} is after end {end}")
        work = [(g, o) for g in range(len(grids)) for o in orbits]
        got: dict[tuple[int, str], S1Series | InputError] = {}
        for g, o in each(progress, f"Sentinel-1 {start.year}", work, "requests", len(work)):
            got[(g, o)] = self._fetch_one(grids[g], o, start, end)
        return [{o: got[(g, o)] for o in orbits} for g in range(len(grids))]

    def _fetch_one(
        self, grid: Grid, orbit: Orbit, start: dt.date, end: dt.date
    ) -> S1Series | InputError:
        label = (
            f"grid left={grid.left:.0f} top={grid.top:.0f} ({grid.width}×{grid.height} px), {orbit}"
        )
        if not 1 <= min(grid.width, grid.height) <= max(grid.width, grid.height) <= MAX_SIDE:
            return InputError(f"{label}: size outside the Process API's 1..{MAX_SIDE} px")
        request = self._request(grid, orbit, start, end).download_list[0]
        response_path = request.get_storage_paths()[1]
        cached = response_path is not None and os.path.exists(response_path)
        error: InputError | None = None
        try:
            response = self._sh._download(request, cached=cached)
            data, dates, products = _parse(response.content, grid)
        except _BadResponse as exc:
            error = InputError(f"{label}: unexpected Sentinel Hub answer: {exc}")
        except _FAILURES as exc:
            error = self._sh._classify(exc, label)
        if isinstance(error, SentinelHubCredentialsError):
            raise error
        if error is not None:
            return error
        pu = 0.0 if cached else _pu(response.headers)
        self._sh.requests.append(RequestRecord(grid, pu, cached))
        if not dates:
            return InputError(
                f"{label}: no Sentinel-1 IW VV+VH acquisition between {start} and {end}"
            )
        if self.units == "dB":
            data = to_db(data)
        records = [self._record(d, p, orbit) for d, p in zip(dates, products, strict=True)]
        return S1Series(grid, orbit, data, dates, records)

    def _request(
        self, grid: Grid, orbit: Orbit, start: dt.date, end: dt.date
    ) -> sh.SentinelHubRequest:
        data = sh.SentinelHubRequest.input_data(
            self._collection,
            time_interval=(start, end),
            other_args={
                "dataFilter": {"orbitDirection": orbit.upper()},
                "processing": {
                    "backCoeff": BACK_COEFF[self.coefficient],
                    "orthorectify": True,
                    "demInstance": self.dem_instance,
                },
            },
        )
        output = sh.SentinelHubRequest.output_response
        return sh.SentinelHubRequest(
            evalscript=s1_evalscript(),
            input_data=[data],
            responses=[output("data", sh.MimeType.TIFF), output("userdata", sh.MimeType.JSON)],
            bbox=sh.BBox(grid.bounds, crs=sh.CRS(2154)),
            size=(grid.width, grid.height),
            data_folder=self.settings.cache_folder,
            config=self._sh._config,
        )

    def _record(self, day: dt.date, product: str, orbit: str) -> dict[str, Any]:
        return {
            "date": day.isoformat(),
            "provider": f"sentinelhub {self.settings.sh_base_url}",
            "product": product,
            "collection": "SENTINEL1_IW",
            "coefficient": self.coefficient,
            "units": self.units,
            "converted": "10*log10 of linear power, by flair_pipeline"
            if self.units == "dB"
            else "none",
            "orbit_state": orbit,
            "relative_orbit": None,  # the Process API's userdata does not give it
            "polarizations": ["VV", "VH"],
            "nodata": "dataMask 0 -> NaN (evalscript)",
            "border_noise_masked": True,  # Sentinel Hub removes GRD border noise
            "resampling": "Process API default (nearest) to 10 m EPSG:2154; "
            f"backCoeff {BACK_COEFF[self.coefficient]}, orthorectify true, "
            f"demInstance {self.dem_instance}",
        }


def _parse(content: bytes, grid: Grid) -> tuple[np.ndarray, list[dt.date], list[str]]:
    """The TAR (data.tif, userdata.json) -> date-sorted (data, dates, products).

    Returns:
        data float32 (T, 2, H, W), dates and product names sorted by (date, product).

    Raises:
        _BadResponse: not the TAR the evalscript promises.
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(content)) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
        orbits = json.loads(files["userdata.json"])["orbits"]
        dates = [_orbit_date(o) for o in orbits]
    except (tarfile.TarError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _BadResponse(f"{type(exc).__name__}: {exc}") from None
    products = [
        _product(o, d) if o.get("tiles") else f"S1_IW_GRD_{d:%Y%m%d}"
        for o, d in zip(orbits, dates, strict=True)
    ]
    t, h, w = len(orbits), grid.height, grid.width
    data = _read_tiff(files, "data.tif", 2 * max(t, 1), h, w, np.float32)
    order = sorted(range(t), key=lambda i: (dates[i], products[i]))
    cube = np.ascontiguousarray(data[: 2 * t].reshape(t, 2, h, w)[order])
    return cube, [dates[i] for i in order], [products[i] for i in order]
