"""`flair-pipeline pack` shows its progress (issue 26, item 4): with stderr not a terminal,
a line every 5 % of the patches packed and a last one at N/N, N the patches in the pack."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

LINE = re.compile(r"^pack (\S+): (\d+)/(\d+) \((\d+) %\), [\d.]+ patches/s, ")


def test_pack_prints_progress_lines_counting_the_patches_packed(
    tiny_dataset, tmp_path: Path
) -> None:
    dataset, _ = tiny_dataset
    copy = tmp_path / "dataset"
    shutil.copytree(dataset, copy, symlinks=True)
    shutil.rmtree(copy / "packed", ignore_errors=True)
    exe = Path(sys.executable).parent / "flair-pipeline"
    r = subprocess.run(
        [str(exe), "pack", str(copy), "--out", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    # independent count: the rows of each split's image array
    packed = sum(np.load(f, mmap_mode="r").shape[0] for f in (tmp_path / "p").glob("*/img.npy"))
    lines = [m for s in r.stderr.splitlines() if (m := LINE.match(s))]
    assert lines and packed > 0
    assert {m[1] for m in lines} == {"p"} and {int(m[3]) for m in lines} == {packed}
    done = [int(m[2]) for m in lines]
    assert done == sorted(set(done)) and done[-1] == packed
    assert [int(m[4]) for m in lines][-1] == 100 and "done in" in lines[-1].string
