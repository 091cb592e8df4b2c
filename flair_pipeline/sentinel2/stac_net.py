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
import re
import threading
from collections.abc import Iterator
from typing import Any

from urllib3.util.retry import Retry

RETRY_STATUS = (429, 500, 502, 503, 504)


def retry_policy(retries: int, backoff_s: float) -> Retry:
    """urllib3 Retry of this module's contract (POST included: a STAC search is a read).

    Args:
        retries: Retries on connection errors, read errors and 429/5xx answers.
        backoff_s: Backoff factor, seconds (doubling per retry).

    Returns:
        The urllib3 Retry.
    """
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
    """A StacApiIO with the retry policy and (connect, read) timeouts in seconds.

    Args:
        retries: Retries, see :func:`retry_policy`.
        backoff_s: Backoff factor, seconds.
        connect_s: Connect timeout, seconds.
        read_s: Read timeout, seconds.

    Returns:
        A ``pystac_client`` StacApiIO.
    """
    from pystac_client.stac_api_io import StacApiIO

    return StacApiIO(timeout=(connect_s, read_s), max_retries=retry_policy(retries, backoff_s))


def gdal_env(retries: int, backoff_s: float, connect_s: float, read_s: float) -> dict[str, str]:
    """GDAL configuration for remote COGs with the same contract.

    ``GDAL_HTTP_TIMEOUT`` bounds a whole request (GDAL has no separate read timeout), so it
    is set to connect + read; ``GDAL_HTTP_LOW_SPEED_TIME`` aborts a transfer stalled for
    `read_s` seconds.

    Args:
        retries: ``GDAL_HTTP_MAX_RETRY``.
        backoff_s: ``GDAL_HTTP_RETRY_DELAY``, seconds.
        connect_s: ``GDAL_HTTP_CONNECTTIMEOUT``, seconds.
        read_s: Stall limit, seconds.

    Returns:
        GDAL configuration options, as strings.
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
        # GDAL's debug lines of /vsicurl/ only: the one place a failed range read is named
        # (read by gdal_messages(), dropped before any handler of the process)
        "CPL_DEBUG": "VSICURL",
    }


def session(retries: int, backoff_s: float) -> Any:
    """A requests session whose http(s) adapters carry the retry policy.

    Args:
        retries: Retries, see :func:`retry_policy`.
        backoff_s: Backoff factor, seconds.

    Returns:
        A ``requests.Session``.
    """
    import requests
    from requests.adapters import HTTPAdapter

    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry_policy(retries, backoff_s))
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def static_stac_io(retries: int, backoff_s: float, connect_s: float, read_s: float) -> Any:
    """A pystac StacIO reading static catalogs over HTTP(S) with the same contract.

    HTTP errors raise :class:`requests.HTTPError` (``status_code`` on the exception).

    Args:
        retries: Retries, see :func:`retry_policy`.
        backoff_s: Backoff factor, seconds.
        connect_s: Connect timeout, seconds.
        read_s: Read timeout, seconds.

    Returns:
        A ``pystac.StacIO`` (local paths and ``file://`` read as pystac does).
    """
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
            text: str = resp.text
            return text

    return _BoundedStacIO()


_CAPTURE_LOCK = threading.Lock()
_SINKS: dict[int, list[list[str]]] = {}  # thread id -> its open gdal_messages() lists
_STATE: dict[str, int] = {"open": 0, "level": logging.NOTSET, "floor": logging.WARNING}


class _Capture(logging.Filter):
    """On logger ``rasterio._env``: hands each record to its thread's open lists.

    It then lets through only what the logger would have let through before the capture
    lowered its level (GDAL's debug lines never reach the process's handlers because of it).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for sink in _SINKS.get(record.thread or 0, ()):
            sink.append(record.getMessage())
        return record.levelno >= _STATE["floor"]


_FILTER = _Capture()


@contextlib.contextmanager
def gdal_messages() -> Iterator[list[str]]:
    """The GDAL messages this thread causes inside the block, in order.

    Errors, warnings and ``VSICURL`` debug lines (see :func:`gdal_env`'s ``CPL_DEBUG``).

    GDAL reports each HTTP retry as a warning ("HTTP error code: 0 - <url>. Retrying again
    in 0.5 secs") and each failed range read in a ``VSICURL`` debug line ("DownloadRegion(…):
    response_code=0, msg=Operation timed out…"), then often ends with a misleading "not
    recognized as being in a supported file format": these lines let the caller say what
    happened and how many tries it took. Yields the list, filled as records come; while any
    thread captures, logger ``rasterio._env`` is at DEBUG and a filter drops, after
    capture, whatever its previous level would have dropped.

    Yields:
        The list of this thread's messages, filled while the block runs.
    """
    logger = logging.getLogger("rasterio._env")
    messages: list[str] = []
    me = threading.get_ident()
    with _CAPTURE_LOCK:
        if _STATE["open"] == 0:
            _STATE["level"], _STATE["floor"] = logger.level, logger.getEffectiveLevel()
            logger.setLevel(logging.DEBUG)
            logger.addFilter(_FILTER)
        _STATE["open"] += 1
        _SINKS.setdefault(me, []).append(messages)
    try:
        yield messages
    finally:
        with _CAPTURE_LOCK:
            _SINKS[me].remove(messages)
            if not _SINKS[me]:
                del _SINKS[me]
            _STATE["open"] -= 1
            if _STATE["open"] == 0:
                logger.removeFilter(_FILTER)
                logger.setLevel(_STATE["level"])


def http_failure(messages: list[str]) -> str:
    """What GDAL's `messages` (:func:`gdal_messages`) say about an HTTP failure, in words.

    Args:
        messages: GDAL's lines captured during a failed read.

    Returns:
        The last HTTP status or curl error and the tries made; '' when they say nothing.
    """
    retried = sum("Retrying again" in m for m in messages)
    why = ""
    for m in messages:
        found = re.search(r"response_code=(\d+), msg=(.+)$", m)
        if found:
            why = f"HTTP {found[1]}" if found[1] != "0" else f"no answer ({found[2].strip()})"
        elif "HTTP error code: " in m:
            code = m.split("HTTP error code: ", 1)[1].split(" ", 1)[0]
            why = f"HTTP {code}" if code != "0" else "no answer (connection stalled or timed out)"
    return f"{why}, {retried + 1} tries" if why else ""
