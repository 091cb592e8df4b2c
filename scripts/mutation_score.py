"""Print the score of the last `mutmut run` (make mutation): killed / total, per module.

Reads ``mutmut results --all true`` (one ``<mutant>: <status>`` line each). Killed counts
mutants a test failed on, plus those that timed out or crashed the test run (a mutant that
makes the code hang is detected); survivors are listed for review in docs/testing.md.
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
        print(f"{module:45s} {k:4d}/{n:<4d} killed {100 * k / n:5.1f} %  {dict(c)}")
    n, k = sum(total.values()), sum(total[s] for s in DETECTED)
    print(f"{'TOTAL':45s} {k:4d}/{n:<4d} killed {100 * k / n:5.1f} %")
    print(f"\n{len(survivors)} not killed (`mutmut show <name>` for the diff):")
    print("\n".join(survivors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
