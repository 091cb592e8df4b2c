"""Import guard for `bench/gpu.sh --dry-run`: only what the device machine will have.

Python imports ``sitecustomize`` at start-up from the path; `bench/gpu.sh --dry-run` puts
this folder first on ``PYTHONPATH``, so every Python process of the dry run (the benchmarks,
the pytest of the GPU tests, the processes they start) refuses any top-level package that is
neither in the standard library, nor the project's own code (this checkout), nor a
distribution of the device image (`device_packages.txt`) or of the wheels gpu.sh carries
(``WHEELS`` in `bench/gpu.sh`), or required by an image distribution as installed here
(:func:`with_requirements`). A refused import raises ``ModuleNotFoundError`` naming the
module, its distribution and what to do, as the device would fail, but here on the CPU.
A ``try: import x / except ImportError`` fallback takes its branch, as it would there.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import re
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STDLIB = {Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib")}


def normalise(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503): ``Foo_bar.baz`` → ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def device_packages(path: Path = HERE / "device_packages.txt") -> set[str]:
    """The distributions of the device image, normalised (one a line, ``#`` comments)."""
    lines = (s.split("#", 1)[0].strip() for s in path.read_text().splitlines())
    return {normalise(s) for s in lines if s}


def carried_wheels(gpu_sh: Path = HERE.parent / "gpu.sh") -> set[str]:
    """The distributions bench/gpu.sh carries as wheels (its ``WHEELS="…"`` list), normalised."""
    m = re.search(r'^WHEELS="([^"]*)"', gpu_sh.read_text(), re.M)
    if m is None:
        raise RuntimeError(f'{gpu_sh}: no WHEELS="…" list found; the guard needs it')
    return {normalise(s) for s in m[1].split()}


def with_requirements(dists: set[str]) -> set[str]:
    """`dists` and, transitively, what their installed versions require (no extras).

    The device image installs each of its distributions with its requirements, which may
    differ by version from this machine's (a newer ``huggingface-hub`` needs ``httpx2``): a
    requirement of an image distribution, as installed here, counts as on the device. The
    carried wheels are installed without their requirements (``--no-deps``), so theirs are
    not added: they must be carried or on the image by name.
    """
    from packaging.requirements import Requirement

    out, todo = set(dists), list(dists)
    while todo:
        try:
            requires = importlib.metadata.requires(todo.pop()) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # on the image, not installed here
        for line in requires:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            name = normalise(req.name)
            if name not in out:
                out.add(name)
                todo.append(name)
    return out


class DeviceGuard(importlib.abc.MetaPathFinder):
    """A finder that refuses top-level imports the device would not have."""

    def __init__(self, allowed: set[str]) -> None:
        """Allow the standard library, this checkout and the `allowed` distributions."""
        self.allowed = allowed
        self.owners = importlib.metadata.packages_distributions()
        self.refused: list[str] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """None (let the other finders find it) when allowed; else ModuleNotFoundError."""
        if "." in fullname or fullname in sys.stdlib_module_names:
            return None
        dists = self.owners.get(fullname, [])
        if any(normalise(d) in self.allowed for d in dists):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname)
        if spec is None:
            return None  # not installed at all: the usual error
        origin = Path(spec.origin or next(iter(spec.submodule_search_locations or []), "/"))
        if "site-packages" not in origin.parts and any(
            origin.is_relative_to(root) for root in (REPO, *STDLIB)
        ):
            return None  # the project's own code (flair_pipeline, tests, bench), the stdlib
        self.refused.append(fullname)
        raise ModuleNotFoundError(
            f"device guard: import of {fullname!r} (distribution "
            f"{', '.join(dists) or 'unknown'}) refused: it is neither on the device image "
            f"(bench/device_guard/device_packages.txt) nor in the wheels bench/gpu.sh carries "
            "(WHEELS); import it lazily where the GPU run does not need it, or carry its wheel",
            name=fullname,
        )


def install() -> DeviceGuard:
    """Put a :class:`DeviceGuard` first on ``sys.meta_path`` (once); return it."""
    for finder in sys.meta_path:
        if isinstance(finder, DeviceGuard):
            return finder
    guard = DeviceGuard(with_requirements(device_packages()) | carried_wheels())
    sys.meta_path.insert(0, guard)
    return guard


install()
