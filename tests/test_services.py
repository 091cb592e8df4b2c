"""A missing service skips locally and fails under FLAIR_REQUIRE_SERVICES (set by .ci/run)."""

from __future__ import annotations

import pytest

from tests.services import REQUIRE_ENV, unavailable


def test_missing_service_skips_without_the_variable(monkeypatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium missing"):
        unavailable("chromium missing")
    monkeypatch.setenv(REQUIRE_ENV, "0")
    with pytest.raises(pytest.skip.Exception):
        unavailable("chromium missing")


def test_missing_service_fails_in_ci(monkeypatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=r"initdb missing .*FLAIR_REQUIRE_SERVICES"):
        unavailable("initdb missing")


def test_ci_script_requires_the_services() -> None:
    from tests.conftest import REPO

    script = (REPO / ".ci" / "run").read_text()
    assert "export FLAIR_REQUIRE_SERVICES=1" in script
    assert script.index("export FLAIR_REQUIRE_SERVICES=1") < script.index("make test")
