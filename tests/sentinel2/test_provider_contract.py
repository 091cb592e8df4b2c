"""The Sentinel-2 provider contract (issue 16): an abstract base class whose subclasses
implement ``fetch_each``; ``fetch`` and the cost accounting come from the base."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from flair_pipeline.errors import InputError
from flair_pipeline.sentinel2.provider import Grid, Sentinel2Provider, TimeSeries
from flair_pipeline.sentinel2.sentinelhub import SentinelHubProvider
from flair_pipeline.sentinel2.stac import StacProvider

GRIDS = [Grid(0.0, 100.0, 2, 3), Grid(50.0, 100.0, 1, 1)]
DAY = dt.date(2021, 6, 1)


class _Fixed(Sentinel2Provider):
    """Answers a series for the first grid and an error for the second."""

    name = "fixed"

    def fetch_each(self, grids, start, end):
        g = grids[0]
        ok = TimeSeries(
            g,
            np.full((1, 10, g.height, g.width), 7, np.uint16),
            np.zeros((1, 2, g.height, g.width), np.uint8),
            [DAY],
            ["P"],
        )
        return [ok, *(InputError(f"grid {i}: nothing") for i in range(1, len(grids)))]


def test_fetch_each_is_required() -> None:
    class Incomplete(Sentinel2Provider):
        name = "incomplete"

    with pytest.raises(TypeError, match="fetch_each"):
        Incomplete()  # type: ignore[abstract]


def test_fetch_comes_from_the_base_and_raises_the_first_error() -> None:
    prov = _Fixed()
    (s,) = prov.fetch(GRIDS[:1], DAY, DAY)
    assert s.data.shape == (1, 10, 3, 2) and int(s.data.max()) == 7
    with pytest.raises(InputError, match="grid 1: nothing"):
        prov.fetch(GRIDS, DAY, DAY)
    assert prov.processing_units == 0.0


def test_both_providers_are_providers() -> None:
    assert issubclass(StacProvider, Sentinel2Provider)
    assert issubclass(SentinelHubProvider, Sentinel2Provider)
    assert StacProvider(catalog="unused.json").processing_units == 0.0
    # the per-class fetch copies are gone: one implementation, the base's
    assert StacProvider.fetch is Sentinel2Provider.fetch is SentinelHubProvider.fetch
