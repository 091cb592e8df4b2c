"""A stage's code dependencies for dvc.yaml, computed from the imports of its code.

A hand-kept list of the modules each stage runs goes stale as soon as a module imports a
new one (the list once missed ``nomenclature.py``, which every mask, the training and the
metric use: a change there reran nothing). Instead, dvc.yaml's code dependencies of a
stage are the **import closure** of the modules that define its work: the module of each
asset it materializes (or the module a command stage calls), every ``flair_pipeline``
module those import, directly or not, at module level or inside a function (grimp reads
every ``import`` statement; imports under ``if TYPE_CHECKING:`` are left out, they never
run), the ``__init__.py`` of every package on the way (Python runs them on import), and the
data files (templates, schemas, evalscripts) that live in those packages.

The front doors (``cli.py``, ``orchestration/``) are not code dependencies: they parse
arguments and call the stage's code; what a stage computes is in the closure above.

A package all of whose modules are in the closure is listed as its folder (shorter
dvc.yaml; DVC hashes the folder, ``.dvcignore`` leaves bytecode out); otherwise each file.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import grimp

PACKAGE = "flair_pipeline"
#: The repository root: dvc.yaml's paths are relative to it.
REPO_ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, exclude_type_checking_imports=True, cache_dir=None)


def _module_file(module: str) -> Path:
    """The source file of a module of the package (a package's ``__init__.py``).

    Args:
        module: Dotted module name, e.g. ``flair_pipeline.io``.

    Returns:
        The ``.py`` path under the repository root (it may not exist).
    """
    rel = Path(*module.split("."))
    pkg = REPO_ROOT / rel / "__init__.py"
    return pkg if pkg.is_file() else (REPO_ROOT / rel).with_suffix(".py")


def import_closure(roots: Iterable[str]) -> set[str]:
    """Every package module that importing `roots` runs, the roots included.

    Args:
        roots: dotted module names inside ``flair_pipeline``.

    Returns:
        Dotted module names: the roots, what they import directly or transitively, and the
        parent packages of each (their ``__init__`` runs first).

    Raises:
        ValueError: a root is not a module of the package.
    """
    graph = _graph()
    modules = graph.modules
    out: set[str] = set()
    for root in roots:
        if root not in modules:
            raise ValueError(f"{root}: not a module of {PACKAGE}")
        out.add(root)
        out |= graph.find_upstream_modules(root)
    for m in list(out):
        parts = m.split(".")
        out |= {".".join(parts[:i]) for i in range(1, len(parts))}
    return {m for m in out if m == PACKAGE or m.startswith(PACKAGE + ".")}


def _package_dirs() -> dict[Path, list[Path]]:
    """Each package folder -> its Python modules and data files (not sub-packages').

    Returns:
        Package folder (holding an ``__init__.py``) -> its files, sorted by path.
    """
    base = REPO_ROOT / PACKAGE
    owned: dict[Path, list[Path]] = {}
    for path in sorted(base.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        folder = path.parent
        while not (folder / "__init__.py").is_file():
            folder = folder.parent
        owned.setdefault(folder, []).append(path)
    return owned


def code_dependencies(roots: Iterable[str]) -> list[str]:
    """dvc.yaml code dependencies of a stage whose work is defined in `roots`.

    Args:
        roots: dotted names of the modules defining the stage's work (asset modules, the
            module a command stage calls).

    Returns:
        Repository-relative paths (POSIX), sorted: a package folder where every file the
        package owns (modules and data files, not sub-packages) is needed, and so are all
        its sub-packages; else the individual files (each needed module plus the data files
        of its package).

    Raises:
        ValueError: a root is not a module of the package.
    """
    needed_files = {_module_file(m).resolve() for m in import_closure(roots)}
    owned = _package_dirs()
    keep: set[Path] = set()
    for files in owned.values():
        modules = [f for f in files if f.suffix == ".py"]
        if any(f.resolve() in needed_files for f in modules):
            keep |= {f for f in files if f.suffix != ".py" or f.resolve() in needed_files}
    complete = {folder: all(f in keep for f in files) for folder, files in owned.items()}

    def whole(folder: Path) -> bool:
        return all(ok for sub, ok in complete.items() if sub == folder or folder in sub.parents)

    out: set[str] = set()
    for path in keep:
        top = None
        folder = path.parent
        while not (folder / "__init__.py").is_file():
            folder = folder.parent
        # the highest enclosing package folder that is needed whole
        cur = folder
        while (cur / "__init__.py").is_file() and REPO_ROOT in cur.parents:
            if whole(cur):
                top = cur
            cur = cur.parent
        out.add((top or path).relative_to(REPO_ROOT).as_posix())
    return sorted(out)
