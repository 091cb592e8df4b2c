"""Print the score of the last `mutmut run` (make mutation): killed / total, per module.

Reads ``mutmut results --all true`` (one ``<mutant>: <status>`` line each). "Detected"
counts mutants a test failed on plus those that timed out or crashed the run, as mutmut
does; "test failed" counts only the first, because on a loaded machine (and with torch in a
forked worker) a timeout need not mean the mutant was caught (docs/testing.md). Survivors are
listed for review.
"""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

DETECTED = {"killed", "timeout", "segfault", "suspicious"}


def main() -> int:
    mutmut = Path(sys.executable).parent / "mutmut"
    out = subprocess.run([str(mutmut), "results", "--all", "true"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    per: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    survivors = []
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name:
            continue
        module = name.split(".x_")[0].split(".xǁ")[0]
        per[module][status] += 1
        if status not in DETECTED:
            survivors.append(f"{name}: {status}")
    if not per:
        print("no mutants found: run `make mutation` first", file=sys.stderr)
        return 1
    total = collections.Counter()
    for module, c in sorted(per.items()):
        n, k = sum(c.values()), sum(c[s] for s in DETECTED)
        total.update(c)
        strict = c["killed"]
        print(f"{module:40s} {k:4d}/{n:<4d} detected {100 * k / n:5.1f} %, "
              f"test failed {100 * strict / n:5.1f} %  {dict(c)}")  # fmt: skip
    n, k = sum(total.values()), sum(total[s] for s in DETECTED)
    strict = total["killed"]
    print(f"{'TOTAL':40s} {k:4d}/{n:<4d} detected {100 * k / n:5.1f} %, "
          f"test failed {100 * strict / n:5.1f} %")  # fmt: skip
    print(f"\n{len(survivors)} not killed (`mutmut show <name>` for the diff):")
    print("\n".join(survivors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
