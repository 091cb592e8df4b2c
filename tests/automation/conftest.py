"""One built git + DVC repo per test session, shared by tests/automation/test_dvc*.py."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.automation.dvc_repo import dvc, git, init_repo, require_dvc


@pytest.fixture(scope="session")
def dvc_repo() -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """The repo after its first `dvc repro`, with dvc.lock committed; and that repro's output.

    In its own temporary folder rather than pytest's tmp_path: pytest deletes older
    sessions' folders when new sessions start. Tests that change it put it back.
    """
    require_dvc()
    with tempfile.TemporaryDirectory(prefix="flair-dvc-") as tmp:
        repo = Path(tmp) / "repo"
        init_repo(repo)
        first = dvc(repo, "repro")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "dvc repro")
        yield repo, first
