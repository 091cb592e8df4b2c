"""export-flair on damaged datasets and over earlier exports (issues 29 and 30).

* A zone without a Sentinel-2 series (its partition failed): the export is refused in one
  line naming the patches, or, with ``--allow-missing-sentinel2``, those patches are left
  out and every exported IMG has its centroid (read back the way FLAIR-2's loader reads).
* The export replaces its folder whole: a domain dropped from the release leaves nothing
  behind; a failing or killed export leaves the old export as it was (or, killed, a sibling
  folder marked incomplete, which the next export reaps).

Expected patch lists come from globbing the dataset's own folders, not from the exporter.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pystac
import pytest

from flair_pipeline.cli import main
from flair_pipeline.errors import InputError
from flair_pipeline.release.export_folder import INCOMPLETE_MARK, RECORD, reap
from flair_pipeline.release.flair_export import CENTROIDS_JSON, export_release
from tests.training.test_flair_export import flair2_read

ROOT = Path(__file__).resolve().parents[2]


def _copy(tiny_dataset, tmp_path: Path) -> Path:
    dataset, _ = tiny_dataset
    return Path(shutil.copytree(dataset, tmp_path / "ds"))


def _imgs(root: Path, pattern: str = "aerial/*/*/img/IMG_*.tif") -> list[str]:
    return sorted(p.name for p in root.glob(pattern))


def _drop_zone_s2(ds: Path, drop_centroids: bool) -> tuple[str, str, list[str]]:
    """Remove the first zone's SEN2 files (and its centroid entries, as a failed partition
    leaves them); return (domain, zone, its IMG names)."""
    victim = sorted(p for p in (ds / "sentinel").glob("*/*") if p.is_dir())[0]
    domain, zone = victim.parent.name, victim.name
    shutil.rmtree(victim)
    lost = _imgs(ds, f"aerial/{domain}/{zone}/img/IMG_*.tif")
    assert lost
    if drop_centroids:
        path = ds / "metadata" / "centroids_sp_to_patch.json"
        cents = json.loads(path.read_text())
        path.write_text(json.dumps({k: v for k, v in cents.items() if k not in lost}))
    return domain, zone, lost


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.mark.parametrize("drop_centroids", [True, False], ids=["partition-failed", "files-gone"])
def test_a_zone_without_sentinel2_refuses_the_export_naming_its_patches(
    tiny_dataset, tmp_path, capsys, drop_centroids
) -> None:
    ds = _copy(tiny_dataset, tmp_path)
    domain, zone, lost = _drop_zone_s2(ds, drop_centroids)
    total = len(_imgs(ds))
    out = tmp_path / "FLAIR2"
    assert main(["export-flair", "--out", str(out), "--data", str(ds), "--no-stac"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")  # one line
    assert f"{len(lost)} of {total} patches have no Sentinel-2 series" in err
    assert f"zone(s) {domain}/{zone}" in err and "--allow-missing-sentinel2" in err
    assert all(name in err for name in lost[:20])
    assert not out.exists() and _leftovers(out) == []


def test_with_the_option_those_patches_are_left_out_and_recorded(tiny_dataset, tmp_path, capsys):
    ds = _copy(tiny_dataset, tmp_path)
    _, _, lost = _drop_zone_s2(ds, drop_centroids=True)
    out = tmp_path / "FLAIR2"
    argv = ["export-flair", "--out", str(out), "--data", str(ds), "--allow-missing-sentinel2"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"warning: {len(lost)} patches without a Sentinel-2 series left out" in err
    exported = _imgs(out, "flair*/*/*/img/IMG_*.tif")
    assert exported == sorted(set(_imgs(ds)) - set(lost))
    cents = json.loads((out / CENTROIDS_JSON).read_text())
    assert sorted(cents) == exported  # every exported IMG has its centroid, and no other
    assert sorted(flair2_read(out)) == exported  # FLAIR-2's loader reads every patch
    split_lines = "".join(p.read_text() for p in out.glob("flair-2-paths-*.csv"))
    assert not any(name in split_lines for name in lost)
    record = json.loads((out / RECORD).read_text())
    assert record["excluded_without_sentinel2"] == lost and "KeyError" in record["flair2_loader"]
    coll = pystac.Collection.from_file(str(out / "stac" / "collection.json"))
    assert coll.extra_fields["flair:excluded_without_sentinel2"] == lost
    assert not (out / INCOMPLETE_MARK).exists() and _leftovers(out) == []


def test_an_export_over_an_earlier_one_keeps_nothing_of_a_dropped_domain(tiny_dataset, tmp_path):
    ds = _copy(tiny_dataset, tmp_path)
    out = tmp_path / "FLAIR2"
    export_release(ds, out)
    with open(ds / "metadata" / "splits.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    dropped = rows[0]["domain"]
    assert any(dropped in k for k in _tree(out))
    with open(ds / "metadata" / "splits.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[1:])
    export_release(ds, out)
    fresh = tmp_path / "fresh"
    export_release(ds, fresh)
    after = _tree(out)
    assert not [k for k in after if dropped in k]  # no file of the dropped domain is left
    assert after == _tree(fresh)  # exactly what a fresh export writes
    assert _leftovers(out) == []


def test_a_failing_export_leaves_the_earlier_export_whole(tiny_dataset, tmp_path) -> None:
    ds = _copy(tiny_dataset, tmp_path)
    out = tmp_path / "FLAIR2"
    export_release(ds, out)
    before = _tree(out)
    *changed, victim = sorted(ds.glob("aerial/*/*/img/IMG_*.tif"))  # last: fails midway
    victim.unlink()
    for img in changed:  # the new export differs in every file it copies before failing
        img.write_bytes(img.read_bytes() + b"new")
    with pytest.raises(InputError, match=rf"{victim.name}: missing"):
        export_release(ds, out)
    assert _tree(out) == before and _leftovers(out) == []


def test_a_folder_that_is_no_export_is_never_replaced(tiny_dataset, tmp_path) -> None:
    ds = _copy(tiny_dataset, tmp_path)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match=rf"not an export written by flair-pipeline \(no {RECORD}"):
        export_release(ds, out)
    assert _tree(out) == {"precious.txt": b"keep me"}


def _export_process(ds: Path, out: Path) -> subprocess.Popen:
    code = (
        "import sys; from flair_pipeline.cli import main; "
        f"sys.exit(main(['export-flair', '--out', {str(out)!r}, '--data', {str(ds)!r}]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)


def test_a_killed_export_is_marked_incomplete_and_reaped_next_time(tiny_dataset, tmp_path):
    """kill -9 while the export writes: OUT is still the earlier export, the sibling folder
    holds the incomplete marker, and the next export removes it."""
    ds = _copy(tiny_dataset, tmp_path)
    out = tmp_path / "FLAIR2"
    export_release(ds, out)
    before = _tree(out)
    stage = None
    for _ in range(5):  # the export is quick: try again if it ended before the kill
        proc = _export_process(ds, out)
        while proc.poll() is None:
            stages = [out.parent / n for n in _leftovers(out)]
            if stages and any(stages[0].glob("flair_*/*/*/*/IMG_*.tif")):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                stage = stages[0]
                break
            time.sleep(0.001)
        if stage is not None:
            break
        before = _tree(out)  # it completed: that export is now the earlier one
    assert stage is not None, "the export always ended before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    assert _tree(out) == before  # the destination never saw the killed export
    assert (stage / INCOMPLETE_MARK).is_file()  # visibly incomplete
    export_release(ds, out)
    assert not stage.exists() and _leftovers(out) == []
    assert not (out / INCOMPLETE_MARK).exists() and (out / RECORD).is_file()


def test_killed_between_the_two_renames_the_old_export_comes_back(tmp_path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    host = "".join(c if c.isalnum() or c in "_." else "_" for c in socket.gethostname())
    out = tmp_path / "FLAIR2"
    old = tmp_path / f".FLAIR2.{host}-{dead.pid}-0123abcd.flairexport-old"
    stage = tmp_path / f".FLAIR2.{host}-{dead.pid}-89abcdef.flairexport"
    live = tmp_path / f".FLAIR2.{host}-{os.getpid()}-00000000.flairexport"
    for folder, text in ((old, "old"), (stage, "new"), (live, "busy")):
        folder.mkdir()
        (folder / RECORD).write_text(text)
    assert sorted(reap(out)) == sorted([old, stage])
    assert (out / RECORD).read_text() == "old" and not stage.exists()
    assert live.exists()  # a live process's folder is left alone
