"""Build the configured Sentinel-2 provider (stac by default, or sentinelhub)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flair_pipeline.config import Sentinel2Config
from flair_pipeline.sentinel2.provider import Sentinel2Provider

if TYPE_CHECKING:  # imported where used: each provider pulls in its own client library
    pass


def make_provider(
    cfg: Sentinel2Config,
    resolve: Callable[[str], Path],
    default_catalog: Path,
    credentials: Any = None,
) -> Sentinel2Provider:
    """The provider named by ``sentinel2.provider``; `resolve` maps config paths to files.

    `credentials` (for sentinelhub) has ``client_id`` and ``client_secret``; it comes from
    the environment through a Dagster resource, never from params.yaml.

    Args:
        cfg: The ``sentinel2`` section of the config.
        resolve: Maps a path of the config (catalog, cache) to a file.
        default_catalog: The local STAC catalog used when none is configured (the synthetic
            world's).
        credentials: Object with ``client_id`` and ``client_secret`` (sentinelhub only).

    Returns:
        A :class:`StacProvider` or a :class:`SentinelHubProvider`, not yet connected.
    """
    if cfg.provider == "stac":
        from flair_pipeline.sentinel2.stac import StacProvider
        from flair_pipeline.sentinel2.stac_hrefs import Hrefs

        api_url = cfg.api_url or None
        catalog = None if api_url else str(resolve(cfg.catalog) if cfg.catalog else default_catalog)
        return StacProvider(
            catalog=catalog,
            api_url=api_url,
            collection=[c.strip() for c in cfg.collection.split(",") if c.strip()],
            max_cloud_cover=cfg.max_cloud_cover,
            retries=cfg.max_retries,
            backoff_s=cfg.retry_backoff_s,
            connect_timeout_s=cfg.connect_timeout_s,
            read_timeout_s=cfg.read_timeout_s,
            scl_masks=cfg.scl_masks,
            hrefs=Hrefs(
                signing=cfg.href_signing,
                sas_url=cfg.pc_sas_url,
                s3_endpoint=cfg.s3_endpoint,
                retries=cfg.max_retries,
                backoff_s=cfg.retry_backoff_s,
                timeouts=(cfg.connect_timeout_s, cfg.read_timeout_s),
            ),
        )
    from flair_pipeline.sentinel2.sentinelhub import SentinelHubProvider, SentinelHubSettings

    settings = SentinelHubSettings(
        client_id=getattr(credentials, "client_id", "") or "",
        client_secret=getattr(credentials, "client_secret", "") or "",
        sh_base_url=cfg.sh_base_url,
        sh_token_url=cfg.sh_token_url,
        cache_folder=str(resolve(cfg.sh_cache)) if cfg.sh_cache else None,
        max_retries=cfg.max_retries,
    )
    return SentinelHubProvider(settings)
