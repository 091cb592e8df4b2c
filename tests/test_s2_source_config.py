"""Sentinel-2 provider settings as a discriminated union, and the upgrade of flat keys.

``sentinel2.source`` is one model per provider, chosen by ``provider``; the flat keys of
before (``sentinel2.provider``, ``catalog``, ``sh_base_url``…) still load, with one line.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml

from flair_pipeline.config import SentinelHubSource, StacSource, load_config
from flair_pipeline.errors import ConfigError
from flair_pipeline.sentinel2.factory import build_provider
from flair_pipeline.sentinel2.provider import Sentinel2Provider
from flair_pipeline.sentinel2.sentinelhub import SentinelHubProvider
from flair_pipeline.sentinel2.stac import StacProvider

from .conftest import REPO

#: the ``sentinel2`` section of params.yaml as users wrote it before session 8 (flat)
OLD_FLAT = """
sentinel2:
  provider: stac
  catalog: null  # default: <paths.raw>/sentinel2/catalog.json
  api_url: null
  collection: sentinel-2-c1-l2a
  sh_base_url: https://sh.dataspace.copernicus.eu
  sh_token_url: https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token
  sh_cache: data/cache/sentinelhub
  max_retries: 3
  max_cloud_cover: null
  connect_timeout_s: 10.0
  read_timeout_s: 60.0
  retry_backoff_s: 1.0
  scl_masks: false
  href_signing: none
  pc_sas_url: https://planetarycomputer.microsoft.com/api/sas/v1/token
  s3_endpoint: null
  window: 40
  max_size: 110
  cloud_threshold: 60
  cloud_max_fraction: 0.5
  filter_clouds: true
  monthly_average: true
"""


def _params_with(tmp_path: Path, section: str) -> Path:
    """The repo's params.yaml with its ``sentinel2`` section replaced by `section`."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["sentinel2"] = yaml.safe_load(section)["sentinel2"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_old_flat_params_load_as_the_new_with_one_line(tmp_path: Path) -> None:
    old = _params_with(tmp_path, OLD_FLAT)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cfg = load_config(old)
    lines = [w for w in seen if issubclass(w.category, FutureWarning)]
    assert len(lines) == 1, [str(w.message) for w in seen]
    text = str(lines[0].message)
    assert "\n" not in text and str(old) in text and "sentinel2.source" in text
    assert "dropped (not used by stac): sh_base_url, sh_token_url, sh_cache" in text
    # the same configuration as the repo's params.yaml (written with the new keys)
    new = tmp_path / "new"
    new.mkdir()
    (new / "params.yaml").write_text((REPO / "params.yaml").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new keys load without any line
        expected = load_config(new / "params.yaml")
    assert cfg.sentinel2 == expected.sentinel2
    assert cfg.sentinel2.source == StacSource(
        provider="stac", catalog=None, collection="sentinel-2-c1-l2a", max_retries=3
    )


def test_old_flat_sentinelhub_keys_are_renamed(tmp_path: Path) -> None:
    old = _params_with(
        tmp_path,
        "sentinel2:\n  provider: sentinelhub\n  sh_base_url: https://services.sentinel-hub.com\n"
        "  sh_cache: cache/sh\n  max_retries: 5\n  collection: other\n  window: 30\n",
    )
    with pytest.warns(FutureWarning, match=r"dropped \(not used by sentinelhub\): collection"):
        cfg = load_config(old)
    assert cfg.sentinel2.window == 30
    assert cfg.sentinel2.source == SentinelHubSource(
        base_url="https://services.sentinel-hub.com",
        cache=str(tmp_path / "cache/sh"),  # a file setting: against the config's folder
        max_retries=5,
    )


def test_a_flat_override_over_new_params_is_upgraded_too() -> None:
    with pytest.warns(FutureWarning, match="--set sentinel2.catalog=c.json"):
        cfg = load_config(REPO / "params.yaml", ["sentinel2.catalog=c.json"])
    assert cfg.sentinel2.source == StacSource(catalog=str(REPO / "c.json"))


def test_the_discriminator_refuses_an_unknown_provider_and_foreign_keys() -> None:
    with pytest.raises(ConfigError, match=r"sentinel2\.source"):
        load_config(None, ["sentinel2.source.provider=landsat"])
    with pytest.raises(ConfigError, match=r"sentinel2\.source\.sentinelhub\.api_url: unknown key"):
        load_config(None, ["sentinel2.source={provider: sentinelhub, api_url: x}"])


def test_each_config_builds_its_provider(tmp_path: Path) -> None:
    catalog = tmp_path / "raw" / "sentinel2" / "catalog.json"
    stac = build_provider(StacSource(collection="a, b"), catalog)
    assert isinstance(stac, StacProvider) and isinstance(stac, Sentinel2Provider)
    assert (stac.catalog, stac.api_url, stac.collections) == (str(catalog), None, ["a", "b"])
    api = build_provider(StacSource(api_url="https://x.test/v1", catalog="ignored"), catalog)
    assert (api.catalog, api.api_url) == (None, "https://x.test/v1")

    class Client:
        client_id, client_secret = "id", "secret"

    sh = build_provider(
        SentinelHubSource(base_url="https://sh.test", cache=None), catalog, Client()
    )
    assert isinstance(sh, SentinelHubProvider)
    assert (sh.settings.sh_base_url, sh.settings.cache_folder) == ("https://sh.test", None)
    with pytest.raises(ConfigError, match="SH_CLIENT_ID"):
        build_provider(SentinelHubSource(), catalog)  # no credentials: one line, the variables
