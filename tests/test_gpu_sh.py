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
    fed = re.search(
        r"gpu_feed: .* fed ([\d.]+) img/s, model alone ([\d.]+) img/s, fed/alone ([\d.]+) "
        r"\(timed ([\d.]+) s and ([\d.]+) s\)",
        text,
    )
    assert fed and float(fed.group(1)) > 0 and float(fed.group(2)) > 0
    # the ratio of the two rates, within their printed rounding (0.05 img/s each, 0.005)
    f, a = float(fed.group(1)), float(fed.group(2))
    low, high = (f - 0.05) / (a + 0.05), (f + 0.05) / max(a - 0.05, 1e-9)
    assert low - 0.005 <= float(fed.group(3)) <= high + 0.005, fed.group(0)
    loader = re.search(r"loader .* images/s with 0 workers .*4 patches, 2.0 batches a worker", text)
    assert loader, "the loader line names its batches a worker (4 patches / batch 2)"
    windows = re.search(
        r"predict_map \(overlap 0.25, blended, streamed\): (\d+) windows in [\d.]+ s = "
        r"([\d.]+) patches/s",
        text,
    )
    # by hand: 192 px at 64 px windows, stride 48: starts 0, 48, 96, 128 -> 4 x 4 windows
    assert windows and int(windows.group(1)) == 16 and float(windows.group(2)) > 0
    # under the device guard (no dagster there): the Dagster-built GPU test is not run
    assert "test_bf16_channels_last_on_gpu NOT run: dagster is not importable" in text
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


def _sizes() -> dict[str, dict[str, str]]:
    """`bench/gpu.sh --sizes`: each script of the real run and its options."""
    run = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu.sh"), "--sizes"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    out = {}
    for line in run.stdout.splitlines():
        script, *args = line.split()
        opts: dict[str, str] = {}
        for i, a in enumerate(args):
            if a.startswith("--"):
                nxt = args[i + 1] if i + 1 < len(args) else ""
                opts[a] = "" if nxt.startswith("--") else nxt
        out[script] = opts
    return out


def test_the_real_run_reaches_steady_state_at_the_issues_sizes() -> None:
    """Issue 28 §6: several batches an epoch for each of 16 loader workers, feed windows of
    many seconds, a prediction of at least 16,384² px (the real run, not the dry one)."""
    sizes = _sizes()
    tt, feed, pred = sizes["train_throughput"], sizes["gpu_feed"], sizes["predict"]
    workers, batch = int(tt["--workers"]), int(tt["--batch-size"])
    assert workers == 16 and batch == 32
    # by hand: 2048 patches / 32 a batch = 64 batches an epoch = 4 for each of 16 workers
    batches_per_worker = int(tt["--loader-patches"]) / batch / workers
    assert batches_per_worker >= 4, tt
    assert float(feed["--seconds"]) >= 10 and int(feed["--workers"]) == 16, feed
    assert int(pred["--size"]) >= 16_384 and int(pred["--patch"]) == 512, pred
    # 16,384² px at 512 px windows, overlap 0.25 (stride 384): 43² windows, not 121
    stride = 512 - 512 // 4
    assert (-(-(int(pred["--size"]) - 512) // stride) + 1) ** 2 >= 1_800


def _guarded(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` with only the device's packages and gpu.sh's wheels importable."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'bench' / 'device_guard'}{os.pathsep}{REPO}",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_code_gpu_sh_runs_imports_with_the_device_packages_only() -> None:
    """The three benchmarks and the GPU tests (conftest included) import under the guard."""
    gpu_sh = (REPO / "bench" / "gpu.sh").read_text()
    scripts = sorted(set(re.findall(r"bench/(\w+\.py)", gpu_sh)))
    tests = re.search(r'^GPU_TESTS="([^"]+)"', gpu_sh, re.M)
    assert scripts == ["gpu_feed.py", "predict.py", "train_throughput.py"] and tests
    code = (
        "import runpy, sys\n"
        "sys.path.insert(0, 'bench')\n"
        f"for s in {scripts!r}:\n"
        "    runpy.run_path(f'bench/{s}', run_name='guarded')\n"
        "import pytest\n"
        "sys.exit(pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', "
        f"*{tests[1].split()!r}]))\n"
    )
    run = _guarded(code)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"{len(tests[1].split())} tests collected" in run.stdout


def test_the_guard_refuses_what_the_device_lacks() -> None:
    """pyogrio, pystac and dagster are neither on the device nor carried: refused, named."""
    for name in ("pyogrio", "pystac", "dagster"):
        run = _guarded(f"import {name}")
        assert run.returncode == 1
        assert f"device guard: import of {name!r}" in run.stderr, run.stderr[-2000:]
    # a carried wheel (rasterio) and a package of the image (torch) pass
    assert _guarded("import rasterio, torch, yaml").returncode == 0
