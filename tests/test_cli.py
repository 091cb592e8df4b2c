"""The real console script, run as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO


def _cli() -> list[str]:
    exe = shutil.which("flair-pipeline", path=str(Path(sys.executable).parent))
    assert exe, "console script flair-pipeline not installed"
    return [exe]


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_cli(), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_synth_prints_summary(tmp_path: Path) -> None:
    r = run("synth", "--out", str(tmp_path / "raw"), "--scenario", "tiny", "--seed", "2")
    assert r.returncode == 0, r.stderr
    assert "Synthetic world 'tiny' (seed 2)" in r.stdout
    for d in ("D033_2021", "D004_2021", "D036_2020"):
        assert d in r.stdout
        assert (tmp_path / "raw" / "domains" / d / "labels.gpkg").is_file()
    assert "agricultural land" in r.stdout and "S2 dates" in r.stdout


def test_config_shows_overrides() -> None:
    r = run("config", "--set", "sampling.patch_size=128")
    assert r.returncode == 0, r.stderr
    assert "patch_size: 128" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("synth", "--scenario", "huge"), "synth.scenario"),
        (("synth", "--set", "synth.seed=-1"), "synth.seed"),
        (("synth", "--set", "sampling.nope=1"), "sampling.nope: unknown key"),
        (("config", "--config", "missing.yaml"), "missing.yaml: config file not found"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    r = run(*args, "--set", f"paths.raw={tmp_path / 'raw'}", cwd=REPO)
    assert r.returncode != 0
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "raw").exists()


def test_unwritable_out(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("")
    r = run("synth", "--scenario", "tiny", "--out", str(f / "raw"))
    assert r.returncode == 1 and "cannot write" in r.stderr and "Traceback" not in r.stderr


def test_invalid_params_file(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text("synth:\n  scenario: tiny\n  seed: abc\n")
    r = run("synth", "--config", str(p), "--out", str(tmp_path / "raw"))
    assert r.returncode == 1
    assert f"{p}" in r.stderr and "synth.seed" in r.stderr
    assert not (tmp_path / "raw").exists()
