"""docs/architecture.md's package layout stays true: every module it lists exists, and every
module of the package is listed (issue 16)."""

from __future__ import annotations

import re

from .conftest import REPO


def _listed() -> set[str]:
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## Package layout", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(flair_pipeline/[^`]+\.py)` \|", section, re.M))


def test_every_listed_module_exists_and_every_module_is_listed() -> None:
    listed = _listed()
    actual = {p.relative_to(REPO).as_posix() for p in (REPO / "flair_pipeline").rglob("*.py")}
    assert listed, "no module found in the layout table"
    assert not listed - actual, f"listed but missing: {sorted(listed - actual)}"
    assert not actual - listed, f"not listed in docs/architecture.md: {sorted(actual - listed)}"
