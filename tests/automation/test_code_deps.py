"""dvc.yaml's code dependencies are the import closure of each stage's code (issue 28).

The expected closure is computed here independently of grimp (a plain walk over every
``import`` statement of the package's source with :mod:`ast`), and the real DVC decides:
in a git + DVC repository holding a copy of the package and the committed dvc.yaml's
code dependencies, a byte appended to each module in turn must make ``dvc status`` name
exactly the stages that import that module.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from flair_pipeline.orchestration.artifacts import COMMAND_STAGES
from flair_pipeline.orchestration.code_deps import code_dependencies, import_closure
from tests.automation.dvc_repo import require_dvc
from tests.conftest import REPO

PKG = REPO / "flair_pipeline"


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str) -> set[str]:
    """The package modules one module's import statements name (any depth, not TYPE_CHECKING)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                src = ".".join([*base, *([node.module] if node.module else [])])
            else:
                src = node.module or ""
            found.add(src)
            found |= {f"{src}.{a.name}" for a in node.names}
    return {m for m in found if m in MODULES}


def _closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parents' __init__ run
        todo += sorted(_imports(m))
    return seen


def _asset_module(asset: str) -> str:
    """The module of flair_pipeline/defs/assets defining `def <asset>(` (found by text)."""
    hits = [
        p
        for p in (PKG / "defs" / "assets").glob("*.py")
        if re.search(rf"^def {asset}\(", p.read_text(), re.M)
        or re.search(rf"^{asset} = ", p.read_text(), re.M)
        or re.search(rf'name="{asset}"', p.read_text())
    ]
    if not hits:  # assets built by a factory: the module that names the asset's prefix
        prefix = asset.split("_")[0] + "_"
        hits = [p for p in (PKG / "defs" / "assets").glob("*.py") if f'f"{prefix}' in p.read_text()]
    assert len(hits) == 1, f"{asset}: defined in {hits}"
    return _module_name(hits[0])


def _stages() -> dict[str, dict]:
    out = {}
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        out[name] = stage.get("do", stage)
    return out


def _expected_modules() -> dict[str, set[str]]:
    """Stage -> every package module its code runs, computed without grimp."""
    expected = {}
    for name, body in _stages().items():
        if name in COMMAND_STAGES:
            roots = list(COMMAND_STAGES[name].roots)
        else:
            roots = [_asset_module(a) for a in re.findall(r"key:(\w+)", body["cmd"])]
        expected[name] = _closure(roots)
    return expected


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def test_every_module_a_stage_imports_is_a_dependency_of_that_stage() -> None:
    stages = _stages()
    for name, modules in _expected_modules().items():
        deps = stages[name].get("deps", [])
        missing = sorted(
            m for m in modules if not _covered(MODULES[m].relative_to(REPO).as_posix(), deps)
        )
        assert not missing, f"stage {name}: dvc.yaml misses imported modules {missing}"


def test_the_nomenclature_reaches_every_stage_that_uses_labels() -> None:
    # the 19 -> 13 merge: masks, training, the metric, maps (the fault that was reported)
    expected = _expected_modules()
    users = {s for s, mods in expected.items() if "flair_pipeline.nomenclature" in mods}
    assert {"dataset", "train_unet", "train_utt", "evaluate_unet", "demo_map"} <= users


def test_closure_matches_an_independent_walk() -> None:
    for root in ("flair_pipeline.demo", "flair_pipeline.defs.assets.dataset"):
        assert import_closure([root]) == _closure([root]), root


def test_an_unknown_root_is_refused() -> None:
    with pytest.raises(ValueError, match=r"flair_pipeline\.nope: not a module"):
        code_dependencies(["flair_pipeline.nope"])


_STATUS_LOOP = """
import json, sys
from pathlib import Path
from dvc.repo import Repo

root = Path(sys.argv[1])
out = {}
for rel in json.loads(sys.argv[2]):
    path = root / rel
    before = path.read_bytes()
    path.write_bytes(before + b"#")
    try:
        repo = Repo(str(root))
        status = repo.status()
        repo.close()
    finally:
        path.write_bytes(before)
    out[rel] = sorted(k.rpartition(":")[2].split("@")[0] for k in status)
print(json.dumps(out))
"""


def test_dvc_status_names_every_stage_that_imports_a_changed_module(tmp_path: Path) -> None:
    dvc = require_dvc()
    repo = tmp_path / "repo"
    shutil.copytree(PKG, repo / "flair_pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".dvcignore", repo / ".dvcignore")
    stages = {
        name: {"cmd": "true", "deps": [d for d in body.get("deps", []) if "$" not in d]}
        for name, body in _stages().items()
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "commit", "-f", "-q"]):
        subprocess.run(cmd, cwd=repo, check=True, capture_output=True)
    expected = _expected_modules()
    files = sorted(
        {MODULES[m].relative_to(REPO).as_posix() for mods in expected.values() for m in mods}
    )
    dvc_python = Path(dvc).resolve().parent / "python"
    run = subprocess.run(
        [str(dvc_python), "-c", _STATUS_LOOP, str(repo), json.dumps(files)],
        capture_output=True,
        text=True,
        check=True,
    )
    named = json.loads(run.stdout.strip().splitlines()[-1])
    for rel in files:
        module = _module_name(REPO / rel)
        want = sorted(s for s, mods in expected.items() if module in mods)
        assert named[rel] == want, f"{rel}: dvc status names {named[rel]}, its importers are {want}"
    assert len(files) > 80  # the package's modules, not a handful
