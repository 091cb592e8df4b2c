"""From an asset href to a path GDAL can open: anonymous, signed, or through S3 credentials.

Three catalogues, three answers (docs/sentinel2.md, "Catalogues"):

* **Earth Search**: anonymous HTTPS COGs; the href is opened as it is. ``s3://`` hrefs
  (requester-pays JP2) are unreadable without credentials and count as absent.
* **Planetary Computer** (``href_signing: planetary-computer``): the blob-storage COGs need
  a shared access signature (SAS). A token is asked once per collection from PC's token
  endpoint (``GET <pc_sas_url>/<collection>``, answer ``{"msft:expiry": …, "token": …}``)
  and appended to every http(s) href as its query string; it is asked again when it has
  less than a minute left. The request goes through the same bounded requests session as
  the STAC API (:func:`~flair_pipeline.sentinel2.stac_net.session`: urllib3 Retry on
  429/5xx, connect and read timeouts): the ``planetary-computer`` package was not used
  because its token request has no timeout. An optional subscription key is read from
  ``PC_SDK_SUBSCRIPTION_KEY`` (the variable PC's own SDK reads) and sent as
  ``Ocp-Apim-Subscription-Key``.
* **CDSE** (``s3_endpoint``): assets are JPEG 2000 files inside the SAFE, with
  ``s3://eodata/…`` hrefs (``auth:refs: ["s3"]``). Their ``alternate.https`` hrefs point to
  the zipper service and need an OIDC bearer token (``auth:refs: ["oidc"]``), so they are
  not used; ``s3://bucket/key`` is opened as GDAL's ``/vsis3/bucket/key`` at the
  configured endpoint (``AWS_S3_ENDPOINT``, path-style addressing, HTTPS unless the
  endpoint says ``http://``) with the keys GDAL reads from ``AWS_ACCESS_KEY_ID`` and
  ``AWS_SECRET_ACCESS_KEY``.

Tokens, subscription keys and secret keys are registered with
:func:`flair_pipeline.redaction.add_secret` before any use, so that no log line, error
message or metadata written by the project carries them; signed hrefs exist only in
memory, at read time.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from typing import Any, Protocol
from urllib.parse import urlparse

import pystac

from flair_pipeline import redaction
from flair_pipeline.errors import ConfigError, InputError
from flair_pipeline.sentinel2.stac_net import session

SIGNING = ("none", "planetary-computer")
#: seconds of validity under which a cached SAS token is asked again
TOKEN_MARGIN_S = 60.0


def s3_hint() -> str:
    """The settings an ``s3://`` href needs, in words (for error lines).

    Returns:
        The settings and environment variables to set, as one phrase.
    """
    return (
        "set sentinel2.source.s3_endpoint (CDSE: https://eodata.dataspace.copernicus.eu) and "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment"
    )


class HrefSource(Protocol):
    """The config fields of a STAC source that say how its hrefs are read.

    Both ``sentinel2.source`` (``StacSource``) and ``sentinel1.source`` (``S1StacSource``)
    have them.
    """

    @property
    def href_signing(self) -> str: ...  # noqa: D102
    @property
    def pc_sas_url(self) -> str: ...  # noqa: D102
    @property
    def s3_endpoint(self) -> str | None: ...  # noqa: D102
    @property
    def max_retries(self) -> int: ...  # noqa: D102
    @property
    def retry_backoff_s(self) -> float: ...  # noqa: D102
    @property
    def connect_timeout_s(self) -> float: ...  # noqa: D102
    @property
    def read_timeout_s(self) -> float: ...  # noqa: D102


class Hrefs:
    """Resolves asset hrefs for one provider: which are readable, and what GDAL opens.

    Args:
        signing: ``"none"`` or ``"planetary-computer"`` (``sentinel2.source.href_signing``).
        sas_url: Planetary Computer token endpoint (``sentinel2.source.pc_sas_url``).
        s3_endpoint: S3 endpoint URL for ``s3://`` hrefs, or None (``sentinel2.source.s3_endpoint``).
        retries: retries of a token request (429, 5xx, connection errors, read timeouts).
        backoff_s: urllib3 back-off factor of those retries, s.
        timeouts: (connect, read) timeouts of a token request, s.

    Raises:
        ConfigError: an unknown `signing` mode, or an `s3_endpoint` without host.
    """

    def __init__(
        self,
        signing: str = "none",
        sas_url: str = "https://planetarycomputer.microsoft.com/api/sas/v1/token",
        s3_endpoint: str | None = None,
        retries: int = 3,
        backoff_s: float = 1.0,
        timeouts: tuple[float, float] = (10.0, 60.0),
    ) -> None:
        if signing not in SIGNING:
            raise ConfigError(f"sentinel2.source.href_signing: {signing!r} is not one of {SIGNING}")
        self.signing, self.sas_url = signing, sas_url.rstrip("/")
        self.retries, self.backoff_s, self.timeouts = retries, backoff_s, timeouts
        self.s3: tuple[str, bool] | None = None
        if s3_endpoint:
            url = urlparse(s3_endpoint if "://" in s3_endpoint else f"https://{s3_endpoint}")
            if not url.netloc:
                raise ConfigError(f"sentinel2.source.s3_endpoint: {s3_endpoint!r} has no host")
            # a path after the host is kept (GDAL appends /bucket/key to the endpoint)
            self.s3 = (url.netloc + url.path.rstrip("/"), url.scheme != "http")
        if signing != "none" or self.s3 is not None:
            redaction.install()  # every log record of the process is masked from now on
        self._tokens: dict[str, tuple[str, dt.datetime]] = {}
        self._lock = threading.Lock()
        self.token_requests = 0

    # -- which assets can be read ----------------------------------------------------
    @classmethod
    def from_source(cls, source: HrefSource) -> Hrefs:
        """The resolver a STAC source's config asks for.

        Args:
            source: ``sentinel2.source`` or ``sentinel1.source`` (STAC kind).

        Returns:
            Hrefs with its signing, SAS endpoint, S3 endpoint, retries and timeouts.

        Raises:
            ConfigError: an unknown signing mode, or an S3 endpoint without host.
        """
        return cls(
            signing=source.href_signing,
            sas_url=source.pc_sas_url,
            s3_endpoint=source.s3_endpoint,
            retries=source.max_retries,
            backoff_s=source.retry_backoff_s,
            timeouts=(source.connect_timeout_s, source.read_timeout_s),
        )

    def readable(self, item: pystac.Item, key: str) -> bool:
        """Whether asset `key` of `item` exists and can be opened with these settings.

        Args:
            item: A STAC item.
            key: One of its asset keys.

        Returns:
            False when the asset or its href is missing, or when the href is ``s3://`` and no
            endpoint is configured.
        """
        asset = item.assets.get(key)
        href = asset.get_absolute_href() if asset is not None else None
        if not href:
            return False
        return not href.startswith("s3://") or self.s3 is not None

    def gdal_options(self) -> dict[str, str]:
        """GDAL options for ``/vsis3/`` reads at the configured endpoint ({} without one).

        Returns:
            ``AWS_S3_ENDPOINT`` and the related GDAL options, or {}.

        Raises:
            InputError: an endpoint is configured but the S3 keys are not in the environment.
        """
        if self.s3 is None:
            return {}
        missing = [
            v for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(v)
        ]
        if missing:
            raise InputError(
                f"sentinel2.source.s3_endpoint is {self.s3[0]} but {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set in the environment: give the "
                "S3 keys of that service (CDSE: https://eodata-s3keysmanager.dataspace.copernicus.eu)"
            )
        redaction.add_secret(os.environ["AWS_SECRET_ACCESS_KEY"])
        host, https = self.s3
        return {
            "AWS_S3_ENDPOINT": host,
            "AWS_HTTPS": "YES" if https else "NO",
            "AWS_VIRTUAL_HOSTING": "FALSE",
            "AWS_NO_SIGN_REQUEST": "NO",
        }

    # -- what GDAL opens ---------------------------------------------------------------
    def href(self, item: pystac.Item, key: str) -> str:
        """The path GDAL opens for asset `key`.

        ``/vsis3/…`` for ``s3://``, the href with a SAS token for Planetary Computer, else
        the href itself.

        Returns:
            A path or URL GDAL can open.

        Raises:
            InputError: the SAS token endpoint failed (after its retries) or answered no token.
        """
        href = item.assets[key].get_absolute_href() or ""
        if href.startswith("s3://"):
            return "/vsis3/" + href.removeprefix("s3://")
        if self.signing == "planetary-computer" and href.startswith(("http://", "https://")):
            token = self.token(item.collection_id or "")
            return f"{href}{'&' if '?' in href else '?'}{token}"
        return href

    def token(self, collection: str) -> str:
        """A SAS token for `collection`, cached until a minute before its expiry.

        Args:
            collection: A Planetary Computer collection id.

        Returns:
            The SAS token (a URL query string).

        Raises:
            InputError: the endpoint failed (after its retries) or answered no token.
        """
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            cached = self._tokens.get(collection)
            if cached and (cached[1] - now).total_seconds() > TOKEN_MARGIN_S:
                return cached[0]
            token, expiry = self._ask(collection)
            self._tokens[collection] = (token, expiry)
            return token

    def _ask(self, collection: str) -> tuple[str, dt.datetime]:
        import requests

        url = f"{self.sas_url}/{collection}"
        key = os.environ.get("PC_SDK_SUBSCRIPTION_KEY")
        redaction.add_secret(key)
        headers = {"Ocp-Apim-Subscription-Key": key} if key else {}
        self.token_requests += 1
        try:
            resp = session(self.retries, self.backoff_s).get(
                url, headers=headers, timeout=self.timeouts
            )
            resp.raise_for_status()
            body: dict[str, Any] = resp.json()
        except (requests.RequestException, ValueError) as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            http = f"HTTP {status}, " if status else ""
            raise InputError(
                redaction.redact(
                    f"Planetary Computer SAS token endpoint {url}: failed ({http}"
                    f"{type(exc).__name__}); retried {self.retries} times on 429/5xx/connection "
                    "errors (sentinel2.source.pc_sas_url, sentinel2.source.max_retries)"
                )
            ) from exc
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise InputError(
                f"Planetary Computer SAS token endpoint {url}: the answer has no 'token'"
            )
        redaction.add_secret(token)
        redaction.add_secret(token.lstrip("?"))
        try:
            expiry = dt.datetime.fromisoformat(str(body.get("msft:expiry")).replace("Z", "+00:00"))
        except ValueError:
            expiry = dt.datetime.now(dt.UTC)  # unknown expiry: used for this read only
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=dt.UTC)
        return token.lstrip("?"), expiry
