"""A killed `predict` leaves its stage file; the next prediction into the map reaps it (issue 30).

Only files no live process owns go: the stage name carries host and pid
(``.<map>.stage.tif.<host>-<pid>-<hex>.flairtmp.tif``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flair_pipeline.io import _HOST, write_geotiff
from tests.evaluation.test_predict import PixelModel, T, _image, _predict

ROOT = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _stage(folder: Path, host: str, pid: int, token: str = "deadbeef") -> Path:
    p = folder / f".map.tif.stage.tif.{host}-{pid}-{token}.flairtmp.tif"
    p.write_bytes(b"half a map")
    return p


def test_stale_stage_files_of_dead_runs_are_reaped(tmp_path: Path) -> None:
    img = write_geotiff(tmp_path / "o.tif", _image(40, 40), T, "EPSG:2154")
    maps = tmp_path / "maps"
    maps.mkdir()
    dead = _stage(maps, _HOST, _dead_pid())
    live = _stage(maps, _HOST, os.getpid(), "0123abcd")  # this very process is alive
    other_host = _stage(maps, "elsewhere", _dead_pid(), "feedf00d")  # its pid means nothing here
    legacy_old = maps / ".map.k3j_x9q2.stage.tif"  # named before the pid was in the name
    legacy_new = maps / ".map.a1b2c3d4.stage.tif"
    for p in (legacy_old, legacy_new):
        p.write_bytes(b"old")
    two_hours_ago = time.time() - 7200
    os.utime(legacy_old, (two_hours_ago, two_hours_ago))
    other_map = _stage(maps, _HOST, _dead_pid()).rename(
        maps / f".other.tif.stage.tif.{_HOST}-{_dead_pid()}-cafe0001.flairtmp.tif"
    )  # another map's stage: the next prediction of *that* map reaps it
    _predict(PixelModel(4), img, maps / "map.tif")
    left = sorted(p.name for p in maps.iterdir())
    assert dead.name not in left and legacy_old.name not in left
    assert {live.name, other_host.name, legacy_new.name, other_map.name} <= set(left)
    assert {"map.tif", "map.qml"} <= set(left)


SLOW_PREDICT = """
import sys, time, torch
sys.path.insert(0, {root!r})
from tests.evaluation.test_predict import PixelModel, _predict

class Slow(PixelModel):
    def forward(self, batch):
        time.sleep(0.5)
        return super().forward(batch)

_predict(Slow(4), {image!r}, {out!r})
"""


def test_kill_9_then_rerun_leaves_no_stage_file(tmp_path: Path) -> None:
    img = write_geotiff(tmp_path / "o.tif", _image(128, 128), T, "EPSG:2154")
    out = tmp_path / "maps" / "map.tif"
    script = SLOW_PREDICT.format(root=str(ROOT), image=str(img), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        stages: list[Path] = []
        while not stages and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            if out.parent.is_dir():
                stages = list(out.parent.glob(".map.tif.stage.tif.*"))
        assert stages, "the prediction never wrote its stage file"
        assert f"-{proc.pid}-" in stages[0].name
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert stages[0].exists()  # kill -9 runs no cleanup: the fault of issue 30
    _predict(PixelModel(4), img, out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["map.qml", "map.tif"]
