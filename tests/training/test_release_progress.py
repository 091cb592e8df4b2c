"""`export-flair` and `import-flair` show their progress (issue 26, item 4): with stderr not
a terminal, a line every 5 % and a last one at N/N, N the patches exported (counted on disk),
then checked by the import of that export; nothing under --quiet."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

LINE = re.compile(
    r"^(?P<cmd>export-flair|import-flair) patches: (?P<done>\d+)/(?P<total>\d+) "
    r"\((?P<pct>\d+) %\), [\d.]+ patches/s, (ETA \S+ \S+|done in \S+ \S+)$"
)
EXE = Path(sys.executable).parent / "flair-pipeline"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, timeout=600
    )  # stderr a pipe: lines, not a bar
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _counts(stderr: str, cmd: str) -> list[tuple[int, int, int]]:
    return [
        (int(m["done"]), int(m["total"]), int(m["pct"]))
        for s in stderr.splitlines()
        if (m := LINE.match(s)) and m["cmd"] == cmd
    ]


def _check(counts: list[tuple[int, int, int]], n: int) -> None:
    assert counts, "no progress line"
    assert {t for _, t, _ in counts} == {n}
    done = [d for d, _, _ in counts]
    assert done == sorted(set(done)) and done[-1] == n  # rising, ending at N/N
    assert [p for _, _, p in counts] == [100 * d // n for d in done]
    assert len(counts) <= 21  # one a 5 % step at most, and the last


def test_export_and_import_print_progress_counting_the_patches(
    tiny_dataset, tmp_path: Path
) -> None:
    dataset, params = tiny_dataset
    out = tmp_path / "FLAIR2"
    exp = _run("export-flair", "--out", str(out), "--data", str(dataset), "--config", str(params))
    exported = len(list(out.rglob("IMG_*.tif")))  # independent count: the files on disk
    assert exported > 0
    counts = _counts(exp.stderr, "export-flair")
    _check(counts, exported)
    assert "done in" in [s for s in exp.stderr.splitlines() if LINE.match(s)][-1]

    imp = _run("import-flair", str(out), "--out", str(tmp_path / "manifest.csv"))
    _check(_counts(imp.stderr, "import-flair"), exported)

    quiet = _run(
        "--quiet",
        "export-flair",
        "--out",
        str(tmp_path / "quiet"),
        "--data",
        str(dataset),
        "--config",
        str(params),
    )
    assert _counts(quiet.stderr, "export-flair") == []
    assert len(list((tmp_path / "quiet").rglob("IMG_*.tif"))) == exported
