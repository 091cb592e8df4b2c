"""Build the Sentinel-2 provider a ``sentinel2.source`` config names.

Each provider config (:class:`~flair_pipeline.config.StacSource`,
:class:`~flair_pipeline.config.SentinelHubSource`, members of the discriminated union
:data:`~flair_pipeline.config.Sentinel2Source`) has one builder here, found by the config's
type; callers get the :class:`~flair_pipeline.sentinel2.provider.Sentinel2Provider` ABC and
never probe which provider it is. The builders live here, not as a ``build()`` method of
the config models, because ``config.py`` sits below the Sentinel-2 layer (import layers,
pyproject): a method there would import every provider's client into every stage's code.

Adding a provider: its config model in ``config.py`` (its own ``provider`` literal, added
to :data:`~flair_pipeline.config.Sentinel2Source`), its
:class:`~flair_pipeline.sentinel2.provider.Sentinel2Provider` subclass, and one builder
registered in :data:`BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from flair_pipeline.config import SentinelHubSource, StacSource
from flair_pipeline.errors import ConfigError
from flair_pipeline.sentinel2.provider import Sentinel2Provider


class Credentials(Protocol):
    """An OAuth client (the Dagster resource ``SentinelHubCredentials`` is one)."""

    @property
    def client_id(self) -> str:
        """The OAuth client id."""

    @property
    def client_secret(self) -> str:
        """The OAuth client secret (never shown)."""


def _stac(
    source: StacSource, default_catalog: Path, credentials: Credentials | None
) -> Sentinel2Provider:
    """A :class:`~flair_pipeline.sentinel2.stac.StacProvider` (credentials unused).

    Returns:
        The provider over ``source.api_url``, else ``source.catalog``, else `default_catalog`.
    """
    del credentials
    from flair_pipeline.sentinel2.stac import StacProvider
    from flair_pipeline.sentinel2.stac_hrefs import Hrefs

    api_url = source.api_url or None
    catalog = None if api_url else (source.catalog or str(default_catalog))
    return StacProvider(
        catalog=catalog,
        api_url=api_url,
        collection=source.collections,
        max_cloud_cover=source.max_cloud_cover,
        retries=source.max_retries,
        backoff_s=source.retry_backoff_s,
        connect_timeout_s=source.connect_timeout_s,
        read_timeout_s=source.read_timeout_s,
        scl_masks=source.scl_masks,
        hrefs=Hrefs.from_source(source),
    )


def _sentinelhub(
    source: SentinelHubSource, default_catalog: Path, credentials: Credentials | None
) -> Sentinel2Provider:
    """A :class:`~flair_pipeline.sentinel2.sentinelhub.SentinelHubProvider`.

    Returns:
        The provider with `credentials`' OAuth client (empty strings without credentials).
    """
    del default_catalog
    from flair_pipeline.sentinel2.sentinelhub import SentinelHubProvider, SentinelHubSettings

    settings = SentinelHubSettings(
        client_id=getattr(credentials, "client_id", "") or "",
        client_secret=getattr(credentials, "client_secret", "") or "",
        sh_base_url=source.base_url,
        sh_token_url=source.token_url,
        cache_folder=source.cache,
        max_retries=source.max_retries,
    )
    return SentinelHubProvider(settings)


#: The builder of each provider config type.
BUILDERS: dict[type, Callable[[Any, Path, Credentials | None], Sentinel2Provider]] = {
    StacSource: _stac,
    SentinelHubSource: _sentinelhub,
}


def build_provider(
    source: StacSource | SentinelHubSource,
    default_catalog: Path,
    credentials: Credentials | None = None,
) -> Sentinel2Provider:
    """The provider `source` configures (``sentinel2.source`` of params.yaml).

    Args:
        source: the provider config; its relative paths already resolved
            (:func:`flair_pipeline.config.load_config` does it).
        default_catalog: the STAC catalog when `source` names none
            (``<paths.raw>/sentinel2/catalog.json``).
        credentials: the Sentinel Hub OAuth client (``client_id``, ``client_secret``), from
            the environment through a Dagster resource, never from params.yaml.

    Returns:
        The provider, typed by the ABC.

    Raises:
        ConfigError: `source` is of a type no builder knows, or its settings are unusable
            (empty Sentinel Hub credentials, bad S3 endpoint).
    """
    builder = BUILDERS.get(type(source))
    if builder is None:
        raise ConfigError(
            f"sentinel2.source.provider {source.provider!r}: no builder registered in "
            "flair_pipeline/sentinel2/factory.py"
        )
    return builder(source, default_catalog, credentials)
