"""Run `make mutation` and print its score: killed / total, per module.

``--run N`` first runs ``mutmut run --max-children N`` on the mutants named in
pyproject's ``[tool.flair_mutation] mutants`` (fnmatch globs over mutmut's names; stac.py is
restricted to its windowing, offset and mosaic functions) under ``nice``, and prints its wall
time. Then the score is read from ``mutmut results --all true`` (one ``<mutant>: <status>``
line each), counting only the mutants in that scope.

"Detected" counts mutants a test failed on plus those that timed out or crashed the run, as
mutmut does; "test failed" counts only the first. A survivor named in pyproject's
``[tool.flair_mutation] equivalent`` was reviewed and found equivalent (the reason is in
docs/testing.md): it is counted apart, never as detected. Every other survivor is listed as
"not reviewed": kill it with a test or review it. A mutant's number changes when its
function changes, so an edited function's reviewed names fall out of the list by themselves.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

DETECTED = {"killed", "timeout", "segfault", "suspicious"}
NOT_RUN = "not checked"  # mutmut's word for a mutant of the scope that no run has tried yet


def scope(pyproject: Path = Path("pyproject.toml")) -> tuple[list[str], set[str]]:
    """The mutant-name globs and the reviewed equivalent mutants of ``[tool.flair_mutation]``.

    Args:
        pyproject: the project's pyproject.toml.

    Returns:
        (``mutants`` globs as written, ``equivalent`` names; empty if absent).

    Raises:
        KeyError: if the table or its ``mutants`` key is missing.
    """
    table = tomllib.loads(pyproject.read_text("utf-8"))["tool"]["flair_mutation"]
    return table["mutants"], set(table.get("equivalent", []))


def tally(
    results: str, globs: list[str], equivalent: set[str]
) -> tuple[dict[str, collections.Counter], list[str], list[str]]:
    """Count ``mutmut results --all true`` lines (``<mutant>: <status>``) of the scope.

    Args:
        results: mutmut's output.
        globs: the scope's mutant-name globs.
        equivalent: survivors reviewed as equivalent.

    Returns:
        (per module: count by status, a reviewed survivor's status being "equivalent";
        survivors not reviewed, as ``"<mutant>: <status>"``; reviewed names that are not
        survivors of this run: stale, to be taken out of the list).
    """
    per: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    unreviewed, seen = [], set()
    for line in results.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name or not in_scope(name, globs):
            continue
        if status not in DETECTED and status != NOT_RUN:
            if name in equivalent:
                seen.add(name)
                status = "equivalent"
            else:
                unreviewed.append(f"{name}: {status}")
        per[module_of(name)][status] += 1
    return per, unreviewed, sorted(equivalent - seen)


def in_scope(name: str, globs: list[str]) -> bool:
    """Whether mutant `name` matches one of `globs` (fnmatch, as mutmut matches names)."""
    return any(fnmatch.fnmatch(name, g) for g in globs)


def module_of(name: str) -> str:
    """``pkg.mod`` of a mutmut mutant name ``pkg.mod.x_func__mutmut_3`` / ``pkg.mod.xǁCǁm__mutmut_3``."""
    return name.split(".x_")[0].split(".xǁ")[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=int, metavar="N", help="first run mutmut with N children")
    ap.add_argument(
        "--only",
        nargs="+",
        metavar="GLOB",
        help="run only these mutants (a part of the scope; the score covers it all)",
    )
    args = ap.parse_args(argv)
    mutmut = Path(sys.executable).parent / "mutmut"
    globs, equivalent = scope()
    if args.run:
        t0 = time.monotonic()
        # one thread per child: the machine is shared, and torch/BLAS pools are not fork-safe
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        subprocess.run(
            ["nice", str(mutmut), "run", "--max-children", str(args.run), *(args.only or globs)],
            check=False,
            env=env,
        )
        print(f"\nmutmut run wall time: {time.monotonic() - t0:.0f} s ({args.run} children)")
    out = subprocess.run(
        [str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    per, unreviewed, stale = tally(out, globs, equivalent)
    if not per:
        print("no mutants found: run `make mutation` first", file=sys.stderr)
        return 1
    total: collections.Counter = collections.Counter()
    for module, c in sorted(per.items()):
        n, k = sum(c.values()), sum(c[s] for s in DETECTED)
        total.update(c)
        strict = c["killed"]
        tried = n - c[NOT_RUN]
        of_tried = f"{100 * k / tried:5.1f} % of {tried} tried" if tried else "none tried"
        eq = c["equivalent"]
        print(
            f"{module:40s} {k:4d}/{n:<4d} detected {100 * k / n:5.1f} %, "
            f"test failed {100 * strict / n:5.1f} % ({of_tried}), "
            f"+ {eq} equivalent = {100 * (k + eq) / n:5.1f} %  {dict(c)}"
        )
    n, k = sum(total.values()), sum(total[s] for s in DETECTED)
    strict = total["killed"]
    print(
        f"{'TOTAL':40s} {k:4d}/{n:<4d} detected {100 * k / n:5.1f} %, "
        f"test failed {100 * strict / n:5.1f} %, equivalent (reviewed) {total['equivalent']}"
    )
    if total[NOT_RUN]:
        print(f"{total[NOT_RUN]} mutants of the scope not tried yet: score incomplete")
    if stale:
        print(f"\n{len(stale)} reviewed names no longer survive (take them out of the list):")
        print("\n".join(stale))
    print(f"\n{len(unreviewed)} survivors not reviewed (`mutmut show <name>` for the diff):")
    print("\n".join(unreviewed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
