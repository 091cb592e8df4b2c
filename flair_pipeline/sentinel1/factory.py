"""Build the Sentinel-1 provider a ``sentinel1.source`` config names.

One builder per provider config type (:class:`~flair_pipeline.config.S1StacSource`,
:class:`~flair_pipeline.config.S1SentinelHubSource`), as
:mod:`flair_pipeline.sentinel2.factory` does for Sentinel-2; callers get the
:class:`~flair_pipeline.sentinel1.provider.Sentinel1Provider` ABC. The series' units
(``sentinel1.units``) are given here, since they are a setting of the series, not of the
catalogue.
"""

from __future__ import annotations

from pathlib import Path

from flair_pipeline.config import S1SentinelHubSource, S1StacSource, Sentinel1Config
from flair_pipeline.errors import ConfigError
from flair_pipeline.sentinel1.provider import Sentinel1Provider
from flair_pipeline.sentinel2.factory import Credentials


def build_s1_provider(
    cfg: Sentinel1Config,
    default_catalog: Path,
    credentials: Credentials | None = None,
) -> Sentinel1Provider:
    """The provider ``cfg.source`` configures, writing series in ``cfg.units``.

    Args:
        cfg: the ``sentinel1`` section, relative paths already resolved
            (:func:`flair_pipeline.config.load_config` does it).
        default_catalog: the STAC catalog when the source names none
            (``<paths.raw>/sentinel1/catalog.json``).
        credentials: the Sentinel Hub OAuth client, from the environment, never params.yaml.

    Returns:
        The provider, typed by the ABC.

    Raises:
        ConfigError: a source type no builder knows, or unusable settings (empty Sentinel
            Hub credentials, unknown signing mode, bad S3 endpoint).
    """
    source = cfg.source
    if isinstance(source, S1StacSource):
        from flair_pipeline.sentinel1.stac import StacS1Provider
        from flair_pipeline.sentinel2.stac_hrefs import Hrefs

        timeouts = (source.connect_timeout_s, source.read_timeout_s)
        api_url = source.api_url or None
        return StacS1Provider(
            catalog=None if api_url else (source.catalog or str(default_catalog)),
            api_url=api_url,
            collection=source.collection,
            assets=source.assets,
            coefficient=source.coefficient,
            source_units=source.source_units,
            units=cfg.units,
            coefficient_property=source.coefficient_property,
            border_noise_masked=source.border_noise_masked,
            hrefs=Hrefs.from_source(source),
            retries=source.max_retries,
            backoff_s=source.retry_backoff_s,
            connect_timeout_s=timeouts[0],
            read_timeout_s=timeouts[1],
        )
    if isinstance(source, S1SentinelHubSource):
        try:
            from flair_pipeline.sentinel1.sentinelhub import SentinelHubS1Provider
        except ImportError as exc:  # pragma: no cover - the module ships with the package
            raise ConfigError(f"sentinel1.source.provider sentinelhub: {exc}") from exc
        return SentinelHubS1Provider.from_config(source, cfg.units, credentials)
    raise ConfigError(f"sentinel1.source: no builder for {type(source).__name__}")
