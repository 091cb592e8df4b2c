"""The ``sentinel1`` section of the config: defaults, provider choice, validation."""

from __future__ import annotations

import datetime as dt

import pytest

from flair_pipeline.config import S1SentinelHubSource, S1StacSource, config_from_dict
from flair_pipeline.errors import ConfigError


def test_defaults_are_the_offline_stac_archive_both_orbits_in_db() -> None:
    s1 = config_from_dict({}).sentinel1
    assert isinstance(s1.source, S1StacSource) and s1.source.catalog is None
    assert (s1.source.collection, s1.source.assets) == ("sentinel-1-rtc", ("vv", "vh"))
    assert s1.orbits == ("ascending", "descending") and s1.units == "dB"


def test_a_source_without_provider_is_stac_and_sentinelhub_defaults_to_sigma0() -> None:
    s1 = config_from_dict({"sentinel1": {"source": {"collection": "my-s1"}}}).sentinel1
    assert isinstance(s1.source, S1StacSource) and s1.source.collection == "my-s1"
    sh = config_from_dict({"sentinel1": {"source": {"provider": "sentinelhub"}}}).sentinel1
    assert isinstance(sh.source, S1SentinelHubSource) and sh.source.coefficient == "sigma0"


@pytest.mark.parametrize(
    "section",
    [
        {"orbits": ["ascending", "ascending"]},
        {"orbits": []},
        {"orbits": ["north"]},
        {"units": "db"},
        {"start": dt.date(2021, 6, 1), "end": dt.date(2021, 1, 1)},
        {"source": {"coefficient": "beta0"}},
        {"source": {"assets": ["vv"]}},
    ],
)
def test_bad_settings_are_refused(section: dict) -> None:
    with pytest.raises(ConfigError, match="sentinel1"):
        config_from_dict({"sentinel1": section})
