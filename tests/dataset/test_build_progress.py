"""Progress of a domain build (issue 26, item 4): `flair-pipeline build-domain` with stderr
not a terminal prints a line every 5 % and one at the end (nothing under --quiet), and a
Dagster materialization of the IMG/MSK assets logs the same lines in the run's event log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml

from flair_pipeline.defs.assets.dataset import aerial_patches, label_masks, patch_grid
from flair_pipeline.defs.assets.sources import domain_sources
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.synthetic.world import WorldSummary

DOMAIN = "D033_2021"
#: small patches, so a domain of the tiny world has a few dozen (many 5 % steps)
SAMPLING = {"patch_size": 32, "max_patches_per_domain": 40, "zone_size_m": 60}
LINE = re.compile(
    r"^(?P<label>.*?(?P<kind>IMG|MSK)): (?P<done>\d+)/(?P<total>\d+) \((?P<pct>\d+) %\), "
    r"[\d.]+ patches/s, (ETA \S+ \S+|done in \S+ \S+)$"
)


def _params(folder: Path, raw: Path) -> Path:
    path = folder / "params.yaml"
    path.write_text(
        yaml.safe_dump({"paths": {"raw": str(raw), "dataset": "dataset"}, "sampling": SAMPLING})
    )
    return path


def _lines(text: str, kind: str) -> list[re.Match[str]]:
    return [m for s in text.splitlines() if (m := LINE.match(s)) and m["kind"] == kind]


def _check(lines: list[re.Match[str]], written: int) -> None:
    """N/N at the end, N the files on disk; counts and percents rising; <= one line per 5 %."""
    assert lines, "no progress line"
    assert {int(m["total"]) for m in lines} == {written}
    done = [int(m["done"]) for m in lines]
    assert done[-1] == written and "done in" in lines[-1][0]
    assert all("ETA" in m[0] for m in lines[:-1])
    assert done == sorted(set(done))  # strictly rising counts
    pcts = [int(m["pct"]) for m in lines]
    assert pcts == sorted(pcts) and pcts[-1] == 100
    assert all(p == 100 * d // written for p, d in zip(pcts, done, strict=True))
    # by hand: a line at the first count reaching each 5 % step, then the total
    expected = sorted(
        {next(d for d in range(1, written + 1) if d * 100 >= k * 5 * written) for k in range(1, 20)}
        - {written}
    )
    assert done == [*expected, written]


def test_build_domain_prints_progress_lines_and_none_when_quiet(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    params = _params(tmp_path, tiny_world.out)
    exe = Path(sys.executable).parent / "flair-pipeline"

    def build(*flags: str, out: str, quiet: bool = False) -> subprocess.CompletedProcess[str]:
        group = ["--quiet"] if quiet else []
        cmd = [str(exe), *group, "build-domain", DOMAIN, *flags, "--config", str(params)]
        return subprocess.run(
            [*cmd, "--dataset", str(tmp_path / out)],
            capture_output=True,  # stderr a pipe: lines, not a bar
            text=True,
            timeout=300,
            cwd=tmp_path,
        )

    r = build("--sentinel2", out="loud")  # --sentinel2: an option of build-domain, after it
    assert r.returncode == 0, r.stderr
    imgs = list((tmp_path / "loud" / "aerial" / DOMAIN).rglob("IMG_*.tif"))
    msks = list((tmp_path / "loud" / "labels" / DOMAIN).rglob("MSK_*.tif"))
    assert len(imgs) == len(msks) > 20  # enough patches for 5 % steps to matter
    img, msk = _lines(r.stderr, "IMG"), _lines(r.stderr, "MSK")
    _check(img, len(imgs))
    _check(msk, len(msks))
    assert {m["label"] for m in img} == {f"build-domain {DOMAIN} IMG"}
    assert "\r" not in r.stderr  # no bar in a log
    assert r.stdout.startswith(f"{DOMAIN}: {len(imgs)} patches")  # the result on stdout

    # a year of Sentinel-2: the scenes read, counted to the end
    s2 = [
        s for s in r.stderr.splitlines() if s.startswith(f"build-domain {DOMAIN} Sentinel-2 2021: ")
    ]
    assert s2, r.stderr
    last = re.search(r": (\d+)/(\d+) \(100 %\), .* scenes/s, done in ", s2[-1])
    assert last and last[1] == last[2] and int(last[1]) > 0

    q = build("--sentinel2", out="quiet", quiet=True)
    assert q.returncode == 0, q.stderr
    assert q.stderr == ""
    assert q.stdout.startswith(f"{DOMAIN}: {len(imgs)} patches")
    assert len(list((tmp_path / "quiet" / "aerial" / DOMAIN).rglob("IMG_*.tif"))) == len(imgs)


def test_a_dagster_materialization_logs_progress_lines(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    params = _params(tmp_path, tiny_world.out)
    flair = PipelineConfigResource(config_path=str(params))
    assets = [domain_sources, patch_grid, aerial_patches, label_masks]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("domains", [DOMAIN])
        result = dg.materialize(
            assets, partition_key=DOMAIN, instance=instance, resources={"flair": flair}
        )
        assert result.success
        logs = instance.all_logs(result.run_id)
    messages = "\n".join(e.user_message for e in logs if e.level == 20)  # INFO
    root = tmp_path / "dataset"
    written = len(list((root / "aerial" / DOMAIN).rglob("IMG_*.tif")))
    assert written > 20
    img, msk = _lines(messages, "IMG"), _lines(messages, "MSK")
    _check(img, written)
    _check(msk, len(list((root / "labels" / DOMAIN).rglob("MSK_*.tif"))))
    assert {m["label"] for m in img} == {f"aerial_patches {DOMAIN} IMG"}
    assert {m["label"] for m in msk} == {f"label_masks {DOMAIN} MSK"}


def test_materialize_shows_the_assets_progress_on_stderr_and_in_the_run_log(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """`flair-pipeline materialize` runs the assets in process: their progress lines reach
    the terminal's stderr as they run (none under --quiet) and the persistent instance's log."""
    params = _params(tmp_path, tiny_world.out)
    exe = Path(sys.executable).parent / "flair-pipeline"
    select = "key:domain_sources or key:patch_grid or key:aerial_patches or key:label_masks"

    def run(home: str, *group: str) -> subprocess.CompletedProcess[str]:
        cmd = [*group, "materialize", "--select", select, "--partition", DOMAIN]
        return subprocess.run(
            [str(exe), *cmd, "--config", str(params), "--set", f"paths.dataset={home}/ds"],
            capture_output=True,  # stderr a pipe: lines, not a bar
            text=True,
            timeout=600,
            cwd=tmp_path,
            env={**os.environ, "DAGSTER_HOME": str(tmp_path / home / "dagster")},
        )

    loud = run("loud")
    assert loud.returncode == 0, loud.stderr
    assert "run(s) succeeded" in loud.stdout
    root = tmp_path / "loud" / "ds"
    written = len(list((root / "aerial" / DOMAIN).rglob("IMG_*.tif")))
    assert written > 20
    img, msk = _lines(loud.stderr, "IMG"), _lines(loud.stderr, "MSK")
    _check(img, written)
    _check(msk, len(list((root / "labels" / DOMAIN).rglob("MSK_*.tif"))))
    assert {m["label"] for m in img} == {f"aerial_patches {DOMAIN} IMG"}
    # the same lines in the persistent instance's event log (what the UI shows)
    with dg.DagsterInstance.from_config(str(tmp_path / "loud" / "dagster")) as instance:
        [run_record] = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": DOMAIN}))
        logged = [e.user_message for e in instance.all_logs(run_record.dagster_run.run_id)]
    assert [m[0] for m in img] == [s for s in logged if LINE.match(s) and " IMG: " in s]

    quiet = run("quiet", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert _lines(quiet.stderr, "IMG") == [] and _lines(quiet.stderr, "MSK") == []
    with dg.DagsterInstance.from_config(str(tmp_path / "quiet" / "dagster")) as instance:
        [run_record] = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": DOMAIN}))
        logged = [e.user_message for e in instance.all_logs(run_record.dagster_run.run_id)]
    assert len(_lines("\n".join(logged), "IMG")) == len(img)  # the run's log keeps them
