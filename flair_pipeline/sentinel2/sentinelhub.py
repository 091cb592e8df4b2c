"""Sentinel-2 L2A series from the Sentinel Hub Process API (Copernicus Data Space by default).

One request per super-area: ``evalscripts/flair_l2a.js`` uses ORBIT mosaicking, so one answer
(a TAR: data.tif, masks.tif, userdata.json) holds every acquisition of the range; the processing
units (PU) each request cost are recorded. Failure policy (a run never hangs, never leaks):

- 5xx / connection errors: sentinelhub retries ``max_retries`` times, sleeping ``retry_sleep_s``
  then ×3. 429: sentinelhub loops *forever* unless ``SHConfig.max_retries`` is set; we set it,
  so a grid gives up after ``max_retries + 1`` 429s (waiting ``Retry-After``, milliseconds as
  Sentinel Hub sends it, else ``retry_sleep_s``). The loops nest: ≤ (max_retries + 1)² requests.
- 401/403 or a refused token: :class:`SentinelHubCredentialsError`, raised (it concerns every
  grid); other failures: an :class:`InputError` naming the grid.
- requests-oauthlib logs the token request body (client secret included) at DEBUG: a log filter
  masks the secret, our messages are masked too, and errors are raised outside ``except`` so no
  library exception (which may hold the request) rides along in ``__context__``.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import logging
import os
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import quote, quote_plus

import numpy as np
import requests
import sentinelhub as sh
from oauthlib.oauth2 import OAuth2Error
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile
from sentinelhub.decoding import decode_sentinelhub_err_msg

from flair_pipeline import redaction
from flair_pipeline.errors import ConfigError, InputError
from flair_pipeline.progress import Progress, each
from flair_pipeline.sentinel2.provider import BANDS, MASKS, Grid, Sentinel2Provider, TimeSeries

CDSE_BASE_URL = "https://sh.dataspace.copernicus.eu"
_CDSE_ID = "https://identity.dataspace.copernicus.eu/auth/realms/CDSE"
CDSE_TOKEN_URL = f"{_CDSE_ID}/protocol/openid-connect/token"
ENV_ID, ENV_SECRET = "SH_CLIENT_ID", "SH_CLIENT_SECRET"
PU_HEADER = "x-processingunits-spent"
MAX_SIDE = 2500  # Process API limit on output width/height, px
_FAILURES = (sh.DownloadFailedException, requests.RequestException, OAuth2Error)
_SHOWN_LOGGERS = (  # loggers that may print request bodies or server answers
    "requests_oauthlib.oauth2_session",
    "oauthlib.oauth2.rfc6749",
    "urllib3.connectionpool",
    "sentinelhub.download.handlers",
    "sentinelhub.download.client",
    "sentinelhub.download.sentinelhub_client",
    "sentinelhub.download.session",
    __name__,
)
log = logging.getLogger(__name__)


class SentinelHubCredentialsError(InputError):
    """Sentinel Hub refused the account (bad or revoked credentials, no access): every grid fails."""


@dataclass(frozen=True)
class SentinelHubSettings:
    """Everything needed to talk to one Sentinel Hub deployment; the secret is never shown."""

    client_id: str
    client_secret: str = field(repr=False)
    sh_base_url: str = CDSE_BASE_URL
    sh_token_url: str = CDSE_TOKEN_URL
    cache_folder: str | None = None  # responses kept per request hash: re-runs cost no PU
    max_retries: int = 3  # retries after the first attempt, for 5xx/connection and for 429
    retry_sleep_s: float = 5.0  # first wait after a 5xx (then ×3), and 429 wait w/o Retry-After
    timeout_s: float = 120.0  # per HTTP request

    def __post_init__(self) -> None:
        if not (self.client_id and self.client_secret):
            raise ConfigError(f"Sentinel Hub credentials are empty: set {ENV_ID} and {ENV_SECRET}")
        if self.max_retries < 0 or self.retry_sleep_s < 0 or self.timeout_s <= 0:
            got = f"{self.max_retries}, {self.retry_sleep_s}, {self.timeout_s}"
            raise ConfigError(
                f"Sentinel Hub: need max_retries, retry_sleep_s >= 0, timeout_s > 0; got {got}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kw: Any) -> SentinelHubSettings:
        """Credentials from SH_CLIENT_ID / SH_CLIENT_SECRET (or `environ`); other fields from `kw`.

        Args:
            environ: The variables to read; None: the process environment.
            **kw: The other fields (URLs, cache folder, retries, timeout).

        Returns:
            The validated settings.

        Raises:
            ConfigError: A credential variable is unset or empty, or a retry or timeout
                value in `kw` is out of range.
        """
        env = os.environ if environ is None else environ
        missing = ", ".join(name for name in (ENV_ID, ENV_SECRET) if not env.get(name))
        if missing:
            raise ConfigError(
                f"Sentinel Hub needs OAuth client credentials: environment variable(s) {missing} not "
                f"set (create an OAuth client in the Sentinel Hub / Copernicus Data Space dashboard)"
            )
        return cls(env[ENV_ID], env[ENV_SECRET], **kw)

    def sh_config(self) -> sh.SHConfig:
        """The sentinelhub config; `use_defaults` keeps ~/.config/sentinelhub out of the picture.

        Returns:
            An ``sh.SHConfig`` with these credentials and URLs, ``max_retries + 1`` download
            attempts (which also bounds the 429 loop), the retry sleep and the timeout.
        """
        attempts = self.max_retries + 1
        return sh.SHConfig(
            use_defaults=True,
            sh_client_id=self.client_id,
            sh_client_secret=self.client_secret,
            sh_base_url=self.sh_base_url.rstrip("/"),
            sh_token_url=self.sh_token_url,
            max_download_attempts=attempts,
            download_sleep_time=self.retry_sleep_s,
            download_timeout_seconds=self.timeout_s,
            max_retries=attempts,  # bounds the 429 loop (None, the default, loops forever)
        )


class _Redactor(logging.Filter):
    """Masks registered secrets (raw and URL-encoded, as in a form body) in log records."""

    def __init__(self) -> None:
        super().__init__()
        self._needles: set[str] = set()

    def add(self, secret: str) -> None:
        self._needles |= {s for s in (secret, quote(secret, safe=""), quote_plus(secret)) if s}
        redaction.add_secret(secret)

    def redact(self, text: str) -> str:
        for needle in sorted(self._needles, key=len, reverse=True):
            text = text.replace(needle, "***")
        return redaction.redact(text)  # bearer tokens, token fields, signed URLs

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if (masked := self.redact(message)) != message:
            record.msg, record.args = masked, None
        return True


_REDACTOR = _Redactor()


@functools.cache
def evalscript() -> str:
    """The evalscript, shipped as package data next to this module.

    Returns:
        The text of ``evalscripts/flair_l2a.js`` (read once, then cached).
    """
    path = resources.files(__package__) / "evalscripts" / "flair_l2a.js"
    return path.read_text(encoding="utf-8")


def l2a_collection(base_url: str) -> sh.DataCollection:
    """SENTINEL2_L2A bound to `base_url`: requests go where the collection says, not the config.

    Args:
        base_url: The Sentinel Hub deployment's base URL.

    Returns:
        :func:`bound_collection` of SENTINEL2_L2A.
    """
    return bound_collection(sh.DataCollection.SENTINEL2_L2A, base_url)


def bound_collection(default: sh.DataCollection, base_url: str) -> sh.DataCollection:
    """`default` bound to `base_url` (also used by the Sentinel-1 provider).

    Args:
        default: A sentinelhub data collection (SENTINEL2_L2A, SENTINEL1_IW…).
        base_url: The Sentinel Hub deployment's base URL.

    Returns:
        `default` itself when its service URL is `base_url`, else a collection derived from
        it with that service URL.
    """
    base = base_url.rstrip("/")
    if default.service_url == base:
        return default
    name = f"{default.name}_AT_" + re.sub(r"[^A-Za-z0-9]+", "_", base).strip("_").upper()
    try:
        return default.define_from(name, service_url=base)
    except ValueError:  # this definition is already registered under another name
        return sh.DataCollection(default.value.derive(service_url=base))


@dataclass(frozen=True)
class RequestRecord:
    """One Process API request: which grid, what it cost, whether the cache answered."""

    grid: Grid
    pu_spent: float
    from_cache: bool


class SentinelHubProvider(Sentinel2Provider):
    """L2A series from Sentinel Hub, one Process API request per grid (super-area)."""

    name = "sentinelhub"

    def __init__(self, settings: SentinelHubSettings) -> None:
        redaction.install()  # every handler of the process masks secrets and tokens
        _REDACTOR.add(settings.client_secret)
        for name in _SHOWN_LOGGERS:
            if _REDACTOR not in (logger := logging.getLogger(name)).filters:
                logger.addFilter(_REDACTOR)
        self.settings = settings
        self._config = settings.sh_config()
        self._collection = l2a_collection(settings.sh_base_url)
        self._session: sh.SentinelHubSession | None = None
        self.requests: list[RequestRecord] = []

    @property
    def pu_spent(self) -> float:
        """Processing units spent by this provider's requests (cache hits cost 0)."""
        return float(sum(r.pu_spent for r in self.requests))

    @property
    def processing_units(self) -> float:
        """Sentinel Hub processing units spent so far (:attr:`pu_spent`)."""
        return self.pu_spent

    @property
    def pu_per_request(self) -> list[float]:
        """Processing units each Process API request of this provider cost, in order."""
        return [r.pu_spent for r in self.requests]

    def fetch_each(
        self,
        grids: list[Grid],
        start: dt.date,
        end: dt.date,
        *,
        progress: Progress | None = None,
    ) -> list[TimeSeries | InputError]:
        """One result per grid: its series, or the InputError saying why it has none.

        Account-wide failures (credentials, access) raise SentinelHubCredentialsError instead.
        `progress` counts the grids (one Process API request each).

        Args:
            grids: The 10 m EPSG:2154 grids (super-areas), one request each.
            start: First date requested (inclusive).
            end: Last date requested (inclusive).
            progress: Where to count the grids requested, or None.

        Returns:
            Per grid, in order: its date-sorted :class:`TimeSeries` (data uint16
            reflectance × 10000, T×10×H×W; masks uint8 SNW/CLD %, T×2×H×W), or the
            :class:`InputError` naming the grid (size out of range, no acquisition,
            unexpected answer, request failed).

        Raises:
            InputError: `end` is before `start`, or the OAuth token cannot be obtained.
            SentinelHubCredentialsError: The credentials are rejected or the account has no
                access (HTTP 401/403): every grid would fail.
        """
        if end < start:
            raise InputError(f"Sentinel-2 time range is empty: start {start} is after end {end}")
        label = f"Sentinel-2 {start.year}"
        return [self._fetch_one(g, start, end) for g in each(progress, label, grids, "zones")]

    def _fetch_one(self, grid: Grid, start: dt.date, end: dt.date) -> TimeSeries | InputError:
        label = f"grid left={grid.left:.0f} top={grid.top:.0f} ({grid.width}×{grid.height} px)"
        if not 1 <= min(grid.width, grid.height) <= max(grid.width, grid.height) <= MAX_SIDE:
            return InputError(f"{label}: size outside the Process API's 1..{MAX_SIDE} px")
        request = self._request(grid, start, end).download_list[0]
        response_path = request.get_storage_paths()[1]
        cached = response_path is not None and os.path.exists(response_path)
        error: InputError | None = None
        try:
            try:
                response = self._download(request, cached=cached)
                result = _parse(response.content, grid)
            except _BadResponse:
                if not cached:
                    raise
                log.warning("%s: cached response unreadable, downloading it again", label)
                cached = False
                response = self._download(request, cached=False)
                result = _parse(response.content, grid)
        except _BadResponse as exc:
            error = InputError(_REDACTOR.redact(f"{label}: unexpected Sentinel Hub answer: {exc}"))
        except _FAILURES as exc:
            error = self._classify(exc, label)
        if isinstance(error, SentinelHubCredentialsError):
            raise error
        if error is not None:
            return error
        pu = 0.0 if cached else _pu(response.headers)
        self.requests.append(RequestRecord(grid, pu, cached))
        log.info("%s: %d dates, %.3f PU%s", label, len(result.dates), pu, " (cache)" * cached)
        if not result.dates:
            return InputError(f"{label}: no Sentinel-2 L2A acquisition between {start} and {end}")
        return result

    def _request(self, grid: Grid, start: dt.date, end: dt.date) -> sh.SentinelHubRequest:
        data = sh.SentinelHubRequest.input_data(
            self._collection,
            time_interval=(start, end),  # dates: 00:00:00 .. 23:59:59 UTC, end included
            upsampling=sh.ResamplingType.NEAREST,
            other_args={"processing": {"harmonizeValues": True}},  # DN = reflectance × 10000
        )
        output = sh.SentinelHubRequest.output_response
        return sh.SentinelHubRequest(
            evalscript=evalscript(),
            input_data=[data],
            responses=[output(n, sh.MimeType.TIFF) for n in ("data", "masks")]
            + [output("userdata", sh.MimeType.JSON)],
            bbox=sh.BBox(grid.bounds, crs=sh.CRS(2154)),
            size=(grid.width, grid.height),
            data_folder=self.settings.cache_folder,
            config=self._config,
        )

    def _download(self, request: sh.DownloadRequest, *, cached: bool) -> Any:
        """One request, with our own session: a cache hit needs no token; a miss (re)downloads.

        Returns:
            sentinelhub's undecoded download response (``content`` the TAR, ``headers``).
        """
        client = sh.SentinelHubDownloadClient(
            session=None if cached else self._ensure_session(),
            default_retry_time=self.settings.retry_sleep_s,  # 429 without Retry-After
            redownload=not cached,
            config=self._config,
        )
        return client.download([request], max_threads=1, decode_data=False)[0]

    def _ensure_session(self) -> sh.SentinelHubSession:
        """One OAuth session per provider (not sentinelhub's process-wide session cache).

        Returns:
            The provider's session, created on first use (its token registered for
            redaction).

        Raises:
            InputError: The token request failed (:meth:`_classify`; a
                :class:`SentinelHubCredentialsError` when the credentials are rejected).
        """
        if self._session is None:
            error: InputError | None = None
            try:
                self._session = sh.SentinelHubSession(config=self._config)
                _REDACTOR.add(self._session.token["access_token"])  # issue 15: token leaked
            except _FAILURES as exc:
                error = self._classify(exc, f"token URL {self.settings.sh_token_url}", token=True)
            if error is not None:
                raise error
        return self._session  # type: ignore[return-value]

    def _classify(self, exc: Exception, label: str, *, token: bool = False) -> InputError:
        """A clear, secret-free error for a failed exchange with Sentinel Hub.

        Returns:
            A :class:`SentinelHubCredentialsError` for rejected credentials (OAuth error,
            HTTP 401, or 400/403 at the token URL) or refused access (HTTP 403); else an
            :class:`InputError` naming `label` and the status, rate limit or connection
            failure with the attempts made. Secrets are redacted.
        """
        response = getattr(getattr(exc, "request_exception", exc), "response", None)
        status = getattr(response, "status_code", None)
        said = decode_sentinelhub_err_msg(response)[:300] if response is not None else ""
        tries = self.settings.max_retries + 1
        oauth = exc.error if isinstance(exc, OAuth2Error) else None
        if oauth == "insecure_transport":
            return InputError(f"{label}: the OAuth token URL must use https")
        if oauth or status == 401 or (token and status in (400, 403)):
            why = _REDACTOR.redact(oauth or f"HTTP {status}")
            return SentinelHubCredentialsError(
                f"Sentinel Hub rejected the credentials ({label}: {why}): check {ENV_ID} and "
                f"{ENV_SECRET} (issued for {self.settings.sh_token_url})"
            )
        if status == 403:
            return SentinelHubCredentialsError(
                _REDACTOR.redact(
                    f"{label}: Sentinel Hub refused access (HTTP 403: {said}); check that the account "
                    f"of {ENV_ID} has processing units left and access to Sentinel-2 L2A"
                )
            )
        if isinstance(exc, sh.exceptions.OutOfRequestsException):
            why = f"HTTP 429 (rate limit) {tries} times in a row; retry later or raise max_retries"
        elif status is not None:
            why = f"HTTP {status}{f' ({tries} attempts)' * (status >= 500)}: {said or 'no message'}"
        else:
            why = f"{type(exc).__name__} reaching {self.settings.sh_base_url} ({tries} attempts)"
        return InputError(_REDACTOR.redact(f"{label}: Sentinel Hub request failed: {why}"))


class _BadResponse(Exception):
    """A response whose content does not match what the evalscript promises."""


def _pu(headers: Mapping[str, Any]) -> float:
    value = str(next((v for k, v in headers.items() if k.lower() == PU_HEADER), ""))
    return float(value) if re.fullmatch(r"\d+(\.\d*)?([eE][-+]?\d+)?", value) else 0.0


def _parse(content: bytes, grid: Grid) -> TimeSeries:
    """The TAR (data.tif, masks.tif, userdata.json) → a date-sorted TimeSeries.

    Returns:
        The series on `grid`: data uint16 (T, 10, H, W), masks uint8 (T, 2, H, W), dates and
        product names, sorted by (date, product).

    Raises:
        _BadResponse: `content` is not the TAR the evalscript promises (a member missing,
            unreadable, or of another shape or dtype; bad ``userdata.json``).
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(content)) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
        orbits = json.loads(files["userdata.json"])["orbits"]
        dates = [_orbit_date(o) for o in orbits]
    except (tarfile.TarError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _BadResponse(f"{type(exc).__name__}: {exc}") from None
    products = [_product(o, d) for o, d in zip(orbits, dates, strict=True)]
    t, h, w = len(orbits), grid.height, grid.width
    data = _read_tiff(files, "data.tif", len(BANDS) * max(t, 1), h, w, np.uint16)
    masks = _read_tiff(files, "masks.tif", len(MASKS) * max(t, 1), h, w, np.uint8)
    order = sorted(range(t), key=lambda i: (dates[i], products[i]))
    return TimeSeries(
        grid=grid,
        data=np.ascontiguousarray(data[: len(BANDS) * t].reshape(t, len(BANDS), h, w)[order]),
        masks=np.ascontiguousarray(masks[: len(MASKS) * t].reshape(t, len(MASKS), h, w)[order]),
        dates=[dates[i] for i in order],
        products=[products[i] for i in order],
    )


def _read_tiff(files: dict[str, bytes], name: str, bands: int, h: int, w: int, dtype: type) -> Any:
    """A (bands, h, w) array of `dtype` from the TAR member `name`, or _BadResponse.

    Returns:
        The member's pixels, shape (bands, h, w), dtype `dtype`.

    Raises:
        _BadResponse: The member is missing, not a readable raster, or of another shape or
            dtype.
    """
    try:
        with MemoryFile(files[name]) as mem, mem.open() as src:
            arr = src.read()
    except (KeyError, RasterioError) as exc:
        raise _BadResponse(f"{name}: {type(exc).__name__}: {exc}") from None
    if arr.shape != (bands, h, w) or arr.dtype != dtype:
        want = f"({bands}, {h}, {w}) {np.dtype(dtype)}"
        raise _BadResponse(f"{name} is {arr.shape} {arr.dtype}, expected {want}")
    return arr


def _orbit_date(orbit: dict[str, Any]) -> dt.date:
    stamp = orbit.get("dateFrom") or (orbit.get("tiles") or [{}])[0].get("date")
    return dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).date()


def _product(orbit: dict[str, Any], date: dt.date) -> str:
    """The product name of an acquisition: productId, else the .SAFE in dataPath, else shId.

    Returns:
        The smallest (sorted first) tile name found, or ``S2_MSIL2A_<yyyymmdd>`` of `date`
        when no tile names one.
    """
    names = []
    for tile in orbit.get("tiles") or []:
        safe = [p[:-5] for p in str(tile.get("dataPath") or "").split("/") if p.endswith(".SAFE")]
        if name := tile.get("productId") or (safe[0] if safe else None) or tile.get("shId"):
            names.append(str(name))
    return sorted(names)[0] if names else f"S2_MSIL2A_{date:%Y%m%d}"
