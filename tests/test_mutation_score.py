"""scripts/mutation_score.py: what counts as killed, equivalent, unreviewed or stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.conftest import REPO


def _script():
    spec = importlib.util.spec_from_file_location(
        "mutation_score", REPO / "scripts" / "mutation_score.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RESULTS = """\
    pkg.a.x_f__mutmut_1: killed
    pkg.a.x_f__mutmut_2: survived
    pkg.a.x_f__mutmut_3: timeout
    pkg.a.xǁCǁm__mutmut_1: survived
    pkg.a.xǁCǁm__mutmut_2: no tests
    pkg.b.x_g__mutmut_1: not checked
    pkg.b.x_g__mutmut_2: killed
    pkg.c.x_h__mutmut_1: survived
"""


def test_tally_by_module_with_reviewed_equivalents() -> None:
    m = _script()
    globs = ["pkg.a.*", "pkg.b.*"]  # pkg.c is outside the scope
    per, unreviewed, stale = m.tally(RESULTS, globs, {"pkg.a.x_f__mutmut_2", "pkg.a.x_f__mutmut_9"})
    assert dict(per["pkg.a"]) == {
        "killed": 1,
        "equivalent": 1,
        "timeout": 1,
        "survived": 1,
        "no tests": 1,
    }
    assert dict(per["pkg.b"]) == {"not checked": 1, "killed": 1}
    assert set(per) == {"pkg.a", "pkg.b"}
    assert unreviewed == ["pkg.a.xǁCǁm__mutmut_1: survived", "pkg.a.xǁCǁm__mutmut_2: no tests"]
    assert stale == ["pkg.a.x_f__mutmut_9"]  # reviewed once, no longer a survivor


def test_the_scope_and_equivalents_are_read_from_pyproject(tmp_path: Path) -> None:
    m = _script()
    (tmp_path / "p.toml").write_text(
        '[tool.flair_mutation]\nmutants = ["a.*"]\nequivalent = ["a.x_f__mutmut_2"]\n'
    )
    assert m.scope(tmp_path / "p.toml") == (["a.*"], {"a.x_f__mutmut_2"})
    globs, equivalent = m.scope(REPO / "pyproject.toml")
    assert "flair_pipeline.metrics.*" in globs
    assert all(m.in_scope(e, globs) for e in equivalent)  # each reviewed name is in scope
    assert m.module_of("flair_pipeline.sentinel2.stac.xǁStacProviderǁ_nearest__mutmut_3") == (
        "flair_pipeline.sentinel2.stac"
    )
