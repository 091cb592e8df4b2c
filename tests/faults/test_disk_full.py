"""A full disk while building a domain: the step fails naming the disk, nothing half-written.

Two ways to fill it: a real 192 KiB tmpfs (``unshare -rm``, a user + mount namespace; the
test skips where the kernel forbids it) and an injected ``OSError(ENOSPC)`` at the moment
a finished temp file is synced, through a real Dagster run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.errors import DiskFullError, FlairPipelineError
from flair_pipeline.io import TEMP_MARK
from flair_pipeline.orchestration.run import materialize
from flair_pipeline.synthetic.world import WorldSummary
from tests.conftest import REPO
from tests.faults._build import build, tree

TMPFS_KIB = 192  # 4 patches of 64 px (IMG + MSK, ~90 KiB) fit twice; 16 do not


def _tmpfs_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [
            "unshare",
            "-rm",
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
            "mount -t tmpfs -o size=64k tmpfs /tmp",
        ],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def test_real_full_tmpfs_keeps_the_old_generation(tiny_world: WorldSummary, tmp_path: Path) -> None:
    if not _tmpfs_works():
        pytest.skip("cannot mount a tmpfs here (unshare -rm refused): the injected test covers it")
    domain = tiny_world.domains[0].domain
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out = tmp_path / "tree.json"
    script = (
        "import json, sys; from pathlib import Path;"
        "from tests.faults._build import build, tree;"
        f"raw, ds = Path({str(tiny_world.out)!r}), Path({str(mnt)!r}) / 'dataset';"
        f"build(raw, ds, {domain!r}, 4); first = tree(ds);"
        f"live = sum(f.stat().st_size for f in (ds / 'aerial' / {domain!r}).rglob('*.tif'));"
        "\ntry:\n build(raw, ds, %r, 16); err = None"
        "\nexcept Exception as exc:\n err = [type(exc).__name__, str(exc)]"
        f"\nPath({str(out)!r}).write_text(json.dumps([first, tree(ds), err, live]))"
    ) % domain
    proc = subprocess.run(
        [
            "unshare",
            "-rm",
            "sh",
            "-c",
            f'mount -t tmpfs -o size={TMPFS_KIB}k tmpfs {mnt} && exec {sys.executable} -c "$0"',
            script,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, after, err, live = json.loads(out.read_text())
    assert len(first) == 8
    assert err is not None and err[0] == "DiskFullError", err
    assert err[1].startswith("disk full at ") and " MB free" in err[1]
    assert "/dataset/" in err[1]
    # issue 30: the line says what the rebuild needs: the live generation's size again
    assert (
        f"a rebuild writes a second generation beside the live one ({mnt}/dataset/aerial/"
        f"{domain}, {round(live / 1e3)} kB) before swapping, so it needs about that much free"
    ) in err[1], (err, live)
    assert "_tiffWriteProc" not in proc.stderr  # GDAL's raw lines are in the error, not beside
    assert after == first  # the old generation, byte for byte; no temp file, no staging


def test_injected_enospc_fails_the_run_and_names_the_disk(
    tiny_world: WorldSummary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flair_pipeline.io as io

    domain = tiny_world.domains[0].domain
    p = tmp_path / "params.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": str(tiny_world.out), "dataset": str(tmp_path / "dataset")},
                "sampling": {"patch_size": 64, "max_patches_per_domain": 12},
            }
        )
    )
    flair = PipelineConfigResource(config_path=str(p))
    real, calls = io._fsync, [0]

    def fsync(path: Path, directory: bool = False) -> None:
        calls[0] += 0 if directory else 1
        if "IMG_" in path.name and calls[0] > 6:  # the 6th IMG on: no space left
            raise OSError(28, "No space left on device")
        real(path, directory)

    monkeypatch.setattr(io, "_fsync", fsync)
    selection = "key:domain_sources or key:patch_grid or key:aerial_patches"
    with dg.instance_for_test() as instance:
        with pytest.raises(FlairPipelineError) as e:
            materialize(selection, (domain,), flair, instance=instance)
        runs = instance.get_runs()
        assert runs and runs[0].status == dg.DagsterRunStatus.FAILURE
        assert instance.get_latest_materialization_event(dg.AssetKey("aerial_patches")) is None
    msg = str(e.value)
    assert "disk full at " in msg and "/aerial/" in msg and "IMG_" in msg and "MB free)" in msg
    assert msg.count("\n") == 1 and msg.splitlines()[1].strip().startswith(
        f"aerial_patches [{domain}]: disk full at "
    )
    files = tree(tmp_path / "dataset")
    assert not (tmp_path / "dataset" / "aerial").exists() or not any(
        k.startswith("aerial/") for k in files
    )  # no partial generation is visible
    assert not any(TEMP_MARK in k or ".flairstage" in k for k in files), sorted(files)
    assert calls[0] >= 7


def test_disk_full_error_is_raised_by_the_writer_not_skipped(
    tiny_world: WorldSummary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flair_pipeline.io as io

    def fsync(path: Path, directory: bool = False) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io, "_fsync", fsync)
    with pytest.raises(DiskFullError, match=r"^disk full at .*IMG_\d+\.tif \(\d+ MB free\)"):
        build(tiny_world.out, tmp_path / "dataset", tiny_world.domains[0].domain, 4)
    assert tree(tmp_path / "dataset") == {}


def test_disk_full_through_the_cli_is_one_line_with_gdal_folded_in(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """Issue 30: libtiff printed ``_tiffWriteProc: No space left on device.`` twice on
    stderr beside the one-line error; they are folded into it, and the line says what a
    rebuild needs."""
    if not _tmpfs_works():
        pytest.skip("cannot mount a tmpfs here (unshare -rm refused)")
    domain = tiny_world.domains[0].domain
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cli = Path(sys.executable).parent / "flair-pipeline"
    build = (
        f"{cli} --quiet build-domain {domain} --raw {tiny_world.out} --dataset {mnt / 'ds'} "
        "--set sampling.patch_size=64 --set sampling.max_patches_per_domain=16"
    )  # --quiet: no progress lines, so stderr holds the error alone
    proc = subprocess.run(
        [
            "unshare",
            "-rm",
            "sh",
            "-c",
            f"mount -t tmpfs -o size={TMPFS_KIB}k tmpfs {mnt} && {build}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr  # nothing printed beside the error
    line = lines[0]
    assert line.startswith(f"error: disk full at {mnt / 'ds'}/.aerial-{domain}.")
    assert "MB free; GDAL said: _tiffWriteProc: No space left on device" in line
    assert "needs free space for a second copy of what it rebuilds" in line  # no live one yet
    assert line.endswith("and rerun the step")
