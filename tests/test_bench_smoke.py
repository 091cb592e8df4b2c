"""Smoke runs of the benchmarks that rotted unseen (issue 28): tiny inputs, the line parsed.

`bench/loader.py` and `bench/compression.py` crashed on main with ``AttributeError: 'str'
object has no attribute 'fields'`` (``build_label_masks`` called positionally after a
refactor shifted its arguments: the compression landed in ``mapping``). Each runs here as a
user runs it, on the tiny world, and its figures line must parse.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _bench(script: str, *args: str) -> str:
    run = subprocess.run(
        [sys.executable, script, *args],
        cwd=REPO / "bench",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, f"bench/{script} failed:\n{run.stderr[-3000:]}"
    return run.stdout


def test_compression_bench_prints_every_codec(tiny_world) -> None:
    out = _bench("compression.py", "--raw", str(tiny_world.out), "--domains", "1")
    rows = re.findall(
        r"^(none|deflate|zstd|lzw)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M
    )
    assert [r[0] for r in rows] == ["none", "deflate", "zstd", "lzw"], out
    # uncompressed IMG of 5 bands x 512 x 512 uint8 = 1280 KiB: the bytes figure is real
    assert int(rows[0][1]) == pytest.approx(1280, abs=2)


def test_loader_bench_prints_its_ratio(tiny_world) -> None:
    out = _bench("loader.py", "--raw", str(tiny_world.out), "--domains", "1", "--epochs", "1")
    m = re.search(
        r"^loader: packed (\d+) img/s/core, geotiff (\d+) img/s/core, ratio ([\d.]+)x$", out, re.M
    )
    assert m, out
    packed, tiff, ratio = int(m[1]), int(m[2]), float(m[3])
    assert packed > 0 and tiff > 0
    assert ratio == pytest.approx(packed / tiff, rel=0.1)
