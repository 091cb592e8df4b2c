"""Missing system services (Chromium, a PostgreSQL server): skip locally, fail in CI.

Tests never install system packages. ``.ci/run`` installs and starts-checks the services,
then sets ``FLAIR_REQUIRE_SERVICES=1``, under which a test that cannot find or start its
service fails with the same reason instead of skipping: CI is never green by skipping.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_ENV = "FLAIR_REQUIRE_SERVICES"


def required() -> bool:
    """Whether missing services must fail the test (set by ``.ci/run``)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def unavailable(reason: str) -> NoReturn:
    """Skip with `reason`, or fail with it when services are required."""
    if required():
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set: .ci/run must provide it)")
    pytest.skip(reason)
