"""Bounded network behaviour for STAC APIs and remote COGs: one retry contract for both.

* Retried: HTTP 429 (waiting ``Retry-After`` when the server sends it), 500, 502, 503, 504,
  connection errors and read timeouts; at most ``retries`` times per request, with
  exponential back-off (urllib3: none before the first retry, then ``backoff_s × 2^(n-1)``
  before retry n; GDAL: ``backoff_s`` doubled at each retry, at least 10 ms).
* Never retried: any other 4xx (400, 401, 403, 404…): asking again cannot help.
* Every request has a connect and a read timeout, so a stalled server costs at most
  ``(retries + 1) × read_timeout_s`` plus the back-off, never a hung Dagster run.

Remote static catalogs are read through a pystac StacIO on a requests session carrying
the same Retry and timeouts (:func:`static_stac_io`). STAC API requests go through
pystac-client's :class:`~pystac_client.stac_api_io.StacApiIO` whose requests session mounts a
urllib3 :class:`~urllib3.util.retry.Retry`; each page of a search is one request retried on
its own, so pagination resumes at the failed page instead of restarting at page one. COG
reads use GDAL's own ``GDAL_HTTP_*`` options (``GDAL_HTTP_RETRY_CODES`` lists the same
statuses; GDAL does not retry other 4xx either).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from urllib3.util.retry import Retry

RETRY_STATUS = (429, 500, 502, 503, 504)


def retry_policy(retries: int, backoff_s: float) -> Retry:
    """urllib3 Retry of this module's contract (POST included: a STAC search is a read)."""
    return Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        backoff_factor=backoff_s,
        status_forcelist=RETRY_STATUS,
        allowed_methods=frozenset({"GET", "HEAD", "POST"}),
        respect_retry_after_header=True,
        raise_on_status=True,
    )


def stac_api_io(retries: int, backoff_s: float, connect_s: float, read_s: float) -> Any:
    """A StacApiIO with the retry policy and (connect, read) timeouts in seconds."""
    from pystac_client.stac_api_io import StacApiIO

    return StacApiIO(timeout=(connect_s, read_s), max_retries=retry_policy(retries, backoff_s))


def gdal_env(retries: int, backoff_s: float, connect_s: float, read_s: float) -> dict[str, str]:
    """GDAL configuration for remote COGs with the same contract.

    ``GDAL_HTTP_TIMEOUT`` bounds a whole request (GDAL has no separate read timeout), so it
    is set to connect + read; ``GDAL_HTTP_LOW_SPEED_TIME`` aborts a transfer stalled for
    `read_s` seconds.
    """
    return {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.jp2",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "GDAL_HTTP_MULTIPLEX": "YES",
        "GDAL_HTTP_MAX_RETRY": str(retries),
        # GDAL does not retry at all with a delay of 0: keep a floor of 10 ms
        "GDAL_HTTP_RETRY_DELAY": f"{max(backoff_s, 0.01):g}",
        "GDAL_HTTP_RETRY_CODES": ",".join(map(str, RETRY_STATUS)),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, round(connect_s))),
        "GDAL_HTTP_TIMEOUT": str(max(1, round(connect_s + read_s))),
        "GDAL_HTTP_LOW_SPEED_TIME": str(max(1, round(read_s))),
        "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
        "AWS_NO_SIGN_REQUEST": os.environ.get("AWS_NO_SIGN_REQUEST", "YES"),
    }


def session(retries: int, backoff_s: float) -> Any:
    """A requests session whose http(s) adapters carry the retry policy."""
    import requests
    from requests.adapters import HTTPAdapter

    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry_policy(retries, backoff_s))
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def static_stac_io(retries: int, backoff_s: float, connect_s: float, read_s: float) -> Any:
    """A pystac StacIO reading static catalogs over HTTP(S) with the same contract.

    HTTP errors raise :class:`requests.HTTPError` (``status_code`` on the exception)."""
    import requests
    from pystac.stac_io import DefaultStacIO

    http = session(retries, backoff_s)

    class _BoundedStacIO(DefaultStacIO):
        def read_text_from_href(self, href: str) -> str:
            if "://" not in href or href.startswith("file://"):
                return super().read_text_from_href(href)
            resp = http.get(href, timeout=(connect_s, read_s))
            if not resp.ok:
                err = requests.HTTPError(f"HTTP {resp.status_code} for {href}")
                err.status_code = resp.status_code  # type: ignore[attr-defined]
                raise err
            return resp.text

    return _BoundedStacIO()


class _ThreadRecords(logging.Handler):
    """Keeps the WARNING+ records that the calling thread makes (GDAL's, via rasterio)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def gdal_messages() -> Iterator[list[str]]:
    """The GDAL warnings and errors this thread raises inside the block, in order.

    GDAL reports each HTTP retry as a warning ("HTTP error code: 0 - <url>. Retrying again
    in 0.5 secs") and, when a range read stalls, often ends with a misleading "not
    recognized as being in a supported file format": these records let the caller say
    what happened and how many tries it took. Yields the list, filled as records come.
    """
    handler = _ThreadRecords()
    logger = logging.getLogger("rasterio._env")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def http_failure(messages: list[str]) -> str:
    """What GDAL's `messages` (:func:`gdal_messages`) say about an HTTP failure, in words:
    the tries made and the last HTTP status or curl error; '' when they say nothing."""
    retried = [m for m in messages if "Retrying again" in m]
    errors = [m for m in messages if "HTTP error code" in m or "CURL error" in m]
    if not errors:
        return ""
    last = errors[-1].split(" - ", 1)[0].removeprefix("CPLE_AppDefined in ").strip()
    code = last.removeprefix("HTTP error code: ")
    why = "no answer (connection stalled or timed out)" if code == "0" else last
    return f"{why}, {len(retried) + 1} tries"
