"""bench/gpu.sh --dry-run: every step of the H200 run works on the CPU at toy sizes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_sh_dry_run_writes_every_section(tmp_path: Path) -> None:
    results = tmp_path / "out" / "gpu_results.txt"
    env = {**os.environ, "PYTHON": sys.executable}
    run = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu.sh"), "--dry-run", "--out", str(results)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    text = results.read_text()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    for section in ("unet_train", "utt_train", "packed_feed", "predict", "gpu_tests"):
        assert re.search(rf"^-- {section}: exit 0 in \d+ s$", text, re.M), section
    assert len(re.findall(r"fp32 +[\d.]+ images/s", text)) == 2  # U-Net and U-T&T
    fed = re.search(r"gpu_feed: .* fed ([\d.]+) img/s, model alone ([\d.]+) img/s", text)
    assert fed and float(fed.group(1)) > 0 and float(fed.group(2)) > 0
    assert "patches/s" in text
    assert text.rstrip().endswith("# done: all sections passed")


def test_gpu_sh_refuses_an_unknown_argument(tmp_path: Path) -> None:
    run = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu.sh"), "--fast"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2 and "unknown argument --fast" in run.stderr
