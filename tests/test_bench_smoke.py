"""Smoke runs of every benchmark (issue 28 §6): tiny inputs, each printed figure line parsed.

`bench/loader.py` and `bench/compression.py` crashed on main with ``AttributeError: 'str'
object has no attribute 'fields'`` (``build_label_masks`` called with positional arguments
after a refactor shifted them: the compression landed in ``mapping``). Each script runs here as
a user runs it (a subprocess from ``bench/``), on the tiny world or at toy sizes, and its figure
lines must parse and agree with what the run was given. The three GPU scripts
(`train_throughput.py`, `gpu_feed.py`, `predict.py`) run through ``bench/gpu.sh --dry-run``
(`tests/test_gpu_sh.py`), which parses their lines; `test_every_bench_script_has_a_smoke_run`
fails when a new script has neither. `test_bench_calls_pass_many_arguments_by_keyword` keeps
the calls of `bench/` from shifting again.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BENCH = REPO / "bench"
#: the scripts run by `bench/gpu.sh --dry-run` in tests/test_gpu_sh.py (their lines parsed there)
VIA_GPU_SH = {"train_throughput.py", "gpu_feed.py", "predict.py"}
#: callees outside the project whose positional arguments are a shape or a matrix
#: APIs whose positional order is their documented form (rasterio's Affine, Window, from_origin)
POSITIONAL_OK = {
    "Affine",
    "Window",
    "from_origin",
    "torch.randn",
    "torch.zeros",
    "rng.integers",
    "view",
}
NUM = r"([\d.]+)"


def _bench(script: str, *args: str, tmp: Path) -> str:
    """Run ``bench/<script> args`` as a user does; its temporary files under `tmp`."""
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, script, *args],
        cwd=BENCH,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, f"bench/{script} failed:\n{run.stderr[-3000:]}"
    return run.stdout


def _smoked() -> set[str]:
    """The scripts this file runs: the first argument of each ``_bench(...)`` call."""
    tree = ast.parse(Path(__file__).read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "_bench"
        and isinstance(node.args[0], ast.Constant)
    }


def test_every_bench_script_has_a_smoke_run() -> None:
    scripts = {p.name for p in BENCH.glob("*.py") if "__main__" in p.read_text()}
    assert "timing.py" not in scripts  # a module the scripts import, not a script
    assert scripts - _smoked() == VIA_GPU_SH, "a bench script without a smoke run"
    gpu_sh = (BENCH / "gpu.sh").read_text()
    for script in VIA_GPU_SH:
        assert f"bench/{script}" in gpu_sh, script
    test_gpu_sh = (REPO / "tests" / "test_gpu_sh.py").read_text()
    assert "--dry-run" in test_gpu_sh


def _positional_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        short = name.rsplit(".", 1)[-1]
        if name in POSITIONAL_OK or short in POSITIONAL_OK:
            continue
        if sum(not isinstance(a, ast.Starred) for a in node.args) > 3:
            out.append(f"{path.name}:{node.lineno}: {name}")
    return out


def test_bench_calls_pass_many_arguments_by_keyword() -> None:
    found = [c for p in sorted(BENCH.glob("*.py")) for c in _positional_calls(p)]
    assert found == []


def test_bench_functions_of_more_than_three_parameters_take_keywords_only() -> None:
    """A positional call of them fails at once (TypeError), instead of shifting arguments."""
    loose = [
        f"{p.name}:{node.lineno}: {node.name}"
        for p in sorted(BENCH.glob("*.py"))
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.FunctionDef)
        and len(node.args.posonlyargs) + len(node.args.args) > 3
    ]
    assert loose == []


def test_the_keyword_check_finds_a_positional_call(tmp_path: Path) -> None:
    """The bug that broke compression.py, planted: the check names it."""
    bad = tmp_path / "bad.py"
    bad.write_text("build_label_masks(grid, labels, layout, 512, compression='zstd')\n")
    assert _positional_calls(bad) == ["bad.py:1: build_label_masks"]


def test_compression_bench_prints_every_codec(tiny_world, tmp_path: Path) -> None:
    out = _bench("compression.py", "--raw", str(tiny_world.out), "--domains", "1", tmp=tmp_path)
    rows = re.findall(
        r"^(none|deflate|zstd|lzw)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M
    )
    assert [r[0] for r in rows] == ["none", "deflate", "zstd", "lzw"], out
    # uncompressed IMG of 5 bands x 512 x 512 uint8 = 1280 KiB: the bytes figure is real
    assert int(rows[0][1]) == pytest.approx(1280, abs=2)


def test_loader_bench_prints_its_ratio(tiny_world, tmp_path: Path) -> None:
    out = _bench(
        "loader.py", "--raw", str(tiny_world.out), "--domains", "1", "--epochs", "1", tmp=tmp_path
    )
    m = re.search(
        r"^loader: packed (\d+) img/s/core, geotiff (\d+) img/s/core, ratio ([\d.]+)x$", out, re.M
    )
    assert m, out
    packed, tiff, ratio = int(m[1]), int(m[2]), float(m[3])
    assert packed > 0 and tiff > 0
    assert ratio == pytest.approx(packed / tiff, rel=0.1)


def test_pack_formats_bench_prints_a_rate_per_format(tmp_path: Path) -> None:
    out = _bench("pack_formats.py", "--patches", "2", "--reps", "1", tmp=tmp_path)
    rates = dict(
        re.findall(r"^(npy memmap|GeoTIFF zstd \(rasterio\))\s+(\d+) patches/s", out, re.M)
    )
    assert set(rates) == {"npy memmap", "GeoTIFF zstd (rasterio)"}, out
    assert all(int(r) > 0 for r in rates.values())


def test_synth_bench_prints_throughput_and_ratio(tmp_path: Path) -> None:
    out = _bench("synth.py", "--scenario", "tiny", "--out", str(tmp_path / "w"), tmp=tmp_path)
    head = re.search(r"^scenario tiny, seed 0: (\d+) domains, ", out, re.M)
    whole = re.search(rf"^whole world:\s+{NUM} s\s+{NUM} km²/min\s+{NUM} MB/s", out, re.M)
    base = re.search(rf"^mosaic write-only baseline:\s+{NUM} s", out, re.M)
    ratio = re.search(rf"^ratio whole world / write-only baseline: {NUM}x$", out, re.M)
    assert head and whole and base and ratio, out
    domains = [p for p in (tmp_path / "w" / "domains").iterdir() if p.is_dir()]
    assert int(head[1]) == len(domains) > 0  # the world it says it wrote is on disk
    assert float(ratio[1]) > 0 and float(base[1]) >= 0
    # km²/min = 60 x area / seconds, with the area and seconds as printed (rounded)
    area = float(re.search(rf"domains, {NUM} km² at 0.2 m", out)[1])  # type: ignore[index]
    assert float(whole[2]) == pytest.approx(60 * area / float(whole[1]), rel=0.25)


def test_sensor_bench_requests_each_domain_once(tmp_path: Path) -> None:
    out = _bench("sensor.py", "--domains", "2", "--gb", "0.01", "--tiles", "2", tmp=tmp_path)
    ticks = dict(
        re.findall(
            r"^tick (.+?)\s+wall\s+[\d.]+ s\s+cpu\s+[\d.]+ s.*run requests (\d+)$", out, re.M
        )
    )
    assert set(ticks) == {"first look", "decision", "re-delivery: look", "re-delivery: decision"}
    # by hand: 2 domains copied in, each requested once when it has settled, not on a re-touch
    assert {k: int(v) for k, v in ticks.items()} == {
        "first look": 0,
        "decision": 2,
        "re-delivery: look": 0,
        "re-delivery: decision": 0,
    }
    assert re.search(r"^slowest tick [\d.]+ s vs baseline", out, re.M), out


def test_sentinel2_bench_prints_each_domain_and_the_ratio(tiny_world, tmp_path: Path) -> None:
    out = _bench(
        "sentinel2.py",
        "--raw",
        str(tiny_world.out),
        "--baseline-patches",
        "1",
        "--workers",
        "1",
        tmp=tmp_path,
    )
    per_domain = re.findall(r"^(D\d{3}_\d{4}): (\d+) zones .* (\d+) dates \|", out, re.M)
    on_disk = sorted(p.name for p in (tiny_world.out / "domains").iterdir() if p.is_dir())
    assert [d for d, _, _ in per_domain] == on_disk, out
    a = re.search(rf"^\(a\) one fetch per domain: .*\({NUM} ms/patch\)$", out, re.M)
    b = re.search(rf"^\(b\) one fetch per patch: .*\({NUM} ms/patch, measured", out, re.M)
    ratio = re.search(rf"^ratio \(b\)/\(a\) per patch: {NUM}x", out, re.M)
    assert a and b and ratio, out
    assert float(ratio[1]) == pytest.approx(float(b[1]) / float(a[1]), abs=0.06)
    assert re.search(
        r"^Sentinel Hub PU estimate per patch-year .*: [\d.]+ PU at 55 dates", out, re.M
    )


def test_build_dataset_bench_prints_its_targets(tiny_world, tmp_path: Path) -> None:
    out = _bench(
        "build_dataset.py",
        "--raw",
        str(tiny_world.out),
        "--domains",
        "1",
        "--patch-size",
        "64",
        tmp=tmp_path,
    )
    dom = re.search(r"^(D\d{3}_\d{4}): (\d+) patches of (\d+) candidates", out, re.M)
    assert dom, out
    n = int(dom[2])
    assert 0 < n <= int(dom[3])
    peak = re.search(rf"^peak memory of building {dom[1]} \((\d+) patches\)", out, re.M)
    assert peak and int(peak[1]) == n  # the fresh-process build made the same patches
    ratio_row = re.search(rf"^  ratio whole / baseline\s+{NUM}x\s+{NUM}x\s+{NUM}x$", out, re.M)
    target = re.search(rf"^target whole / baseline <= 2x:\s+{NUM}x\s+(PASS|MISS)$", out, re.M)
    assert ratio_row and target, out
    assert float(target[1]) == pytest.approx(float(ratio_row[3]), abs=0.011)
    assert (target[2] == "PASS") == (float(target[1]) <= 2)
    assert re.search(r"^target >= 100 patches/s per core:\s+[\d.]+/s\s+(PASS|MISS)", out, re.M)


@pytest.mark.slow
def test_backfill_bench_runs_both_policies(tmp_path: Path) -> None:
    out = _bench("backfill.py", "--scenario", "tiny", "--domains", "1", tmp=tmp_path)
    rows = {
        m[1]: (int(m[2]), m[3], m[4], m[5])
        for m in re.finditer(
            r"^(multi_run\(1\)|single_run)\s+runs (\d+)\s+wall\s+[\d.]+ s\s+runs (\S+)\s+"
            r"materialized (\d+)/(\d+)$",
            out,
            re.M,
        )
    }
    # one domain: one run either way, every run a success, the domain materialized
    assert rows == {
        "multi_run(1)": (1, "SUCCESS", "1", "1"),
        "single_run": (1, "SUCCESS", "1", "1"),
    }, out
    assert re.search(r"^multi_run\(1\) / single_run wall: [\d.]+x", out, re.M), out


@pytest.mark.slow
def test_dask_scaling_bench_builds_identical_rasters(tiny_world, tmp_path: Path) -> None:
    out = _bench(
        "dask_scaling.py",
        "--raw",
        str(tiny_world.out),
        "--patch-size",
        "64",
        "--workers",
        "1",
        "--domains",
        "1",
        tmp=tmp_path,
    )
    head = re.search(r"^(\d+) domains, (\d+) patches of 64 px", out, re.M)
    base = re.search(rf"^in-process \(baseline\)\s+{NUM}\s+{NUM}\s+1.00x$", out, re.M)
    dask = re.search(
        rf"^dask, 1 worker\(s\)\s+{NUM}\s+{NUM}\s+{NUM}x  identical IMG/MSK$", out, re.M
    )
    assert head and base and dask, out
    assert int(head[1]) == 1 and int(head[2]) > 0
    # domains/min = 60 x domains / wall s, for the rounding printed
    assert float(dask[2]) == pytest.approx(60 / float(dask[1]), rel=0.05)


def test_predict_read_bench_prints_rates_and_projection(tmp_path: Path) -> None:
    out = _bench(
        "predict_read.py",
        *("--size", "640", "--patch", "128", "--readers", "1,2", "--repeat", "1"),
        tmp=tmp_path,
    )
    rows = re.findall(
        rf"^(4 bands[^|]*?) *\| +(\d+) \| +{NUM} \| +{NUM} \| {NUM}× \| +{NUM}$", out, re.M
    )
    modes = ["4 bands", "4 bands + elevation per row", "4 bands + elevation per window (previous)"]
    assert [(m, n) for m, n, *_ in rows] == [(m, n) for m in modes for n in ("1", "2")], out
    for (_, _, one, one_per, ratio, _), (_, _, two, two_per, _, cpu) in zip(
        rows[::2], rows[1::2], strict=True
    ):
        assert float(one) == float(one_per) and float(ratio) == 1.0
        assert float(two_per) == pytest.approx(float(two) / 2, abs=0.1)
        assert float(cpu) > 0
    assert re.search(
        rf"elevation per row vs per window \(previous\), same run: 1 reader\(s\) {NUM}×", out
    )
    for m in modes:
        assert re.search(
            rf"  {re.escape(m)}: {NUM} windows/s × 16 × {NUM} = {NUM} windows/s: (PASS|MISS)", out
        ), out


def test_cluster_projection_bench_prints_the_projection_of_its_measured_costs(
    tiny_world, tmp_path: Path
) -> None:
    out = _bench(
        "cluster_projection.py",
        "--raw",
        str(tiny_world.out),
        "--patch-size",
        "64",
        "--check-domains",
        "0",
        tmp=tmp_path,
    )
    step = {
        name: float(wall) for name, wall in re.findall(rf"^  per (\w+) .*?{NUM} s wall", out, re.M)
    }
    assert set(step) == {"domain", "area", "patch"}, out
    rows = re.findall(
        rf"^(FLAIR-2|France) \(.*?\)\s+(\d+)\s+{NUM}\s+{NUM}\s+{NUM}\s+{NUM}$", out, re.M
    )
    assert len(rows) == 8, out
    # by hand, no Dask run (orchestration 0): (D x domain + A x (area + 85 patches)) / N
    one_area = step["area"] + 77_762 / 916 * step["patch"]
    for name, n, wall_h, *_ in rows:
        d, a = (50, 916) if name == "FLAIR-2" else (96, 96 * 18)
        want = max((d * step["domain"] + a * one_area) / int(n), step["domain"] + one_area)
        assert float(wall_h) * 3600 == pytest.approx(want, rel=0.05, abs=20), (name, n)


def test_s1_study_prints_its_table(tiny_world, tmp_path: Path) -> None:
    """Issue 25 item 4's study runs end to end (1 seed, 1 epoch) and prints every row: a
    land-cover IoU row per scored class with its share of dropped S2 dates, the land-cover
    mIoU, and the crop-type mIoU and OA. Who wins is not asserted (one epoch decides nothing)."""
    out = _bench(
        "s1_study.py",
        "--raw",
        str(tiny_world.out),
        *("--seeds", "1", "--epochs", "1", "--patch-size", "64", "--zone", "60", "--patches", "12"),
        tmp=tmp_path,
    )
    cell = r"(\d+\.\d) ± (\d+\.\d)"
    rows = {
        m[1]: m for m in re.finditer(rf"^\| (.+?) \| (\d+ %|) \| {cell} \| {cell} \|$", out, re.M)
    }
    classes = [k for k in rows if k.startswith("lc IoU ")]
    assert classes, out
    assert {"lc mIoU (classes in test)", "crop mIoU (classes in test)", "crop OA"} <= set(rows), out
    for m in rows.values():
        assert all(0 <= float(m[i]) <= 100 for i in (3, 5)), m[0]
        assert float(m[4]) == float(m[6]) == 0.0  # one seed: no spread
    for k in classes:  # every class row has its share of dropped dates
        assert re.fullmatch(r"\d+ %", rows[k][2]), rows[k][0]
    assert re.search(r"^seeds 1, epochs 1, 64 px patches: build \d+ s, total \d+ s$", out, re.M)
    assert re.search(r"^patches: train \d+, validation \d+, test \d+$", out, re.M), out


def test_jp2_dalles_bench_prints_reads_against_the_geotiff_baseline(tmp_path: Path) -> None:
    out = _bench("jp2_dalles.py", "--size", "600", "--windows", "2", "--threads", "1", tmp=tmp_path)
    for state in ("cold", "open", "warm"):
        for variant in ("gtiff", "lossless-tiled1024", "lossy-untiled"):
            assert re.search(rf"^{state}\s+threads=1\s+{variant}\s.*vs gtiff$", out, re.M), out
    assert re.search(r"^warm\s+threads=1\s+gtiff\s.*x\s*1\.0 vs gtiff$", out, re.M), out
    assert "transcode pays off after" in out


def test_departement_bench_prints_selection_build_s2_and_rss(tmp_path: Path) -> None:
    """The build on 2 area workers and the S2 super-areas: counts checked on disk."""
    from flair_pipeline.synthetic.departement import generate_departement

    raw = tmp_path / "raw"
    n, px = 6, 500  # 6 x 6 dalles of 100 m, as tests/sources/test_departement_world.py
    generate_departement(
        raw, (n * px * 0.2 / 78_000) ** 2, 0, dalle_px=px, archetypes=2, s2_dates=2
    )
    out = _bench(
        "departement.py", "--raw", str(raw), "--zone", "204.8", "--areas", "2",
        "--subset", "3", "--workers", "2", "--gdal-cachemax", "64", "--keep", tmp=tmp_path,
    )  # fmt: skip
    m = re.search(r"^areas: (\d+) chosen of (\d+) valid.*; (\d+) patches kept", out, re.M)
    assert m and int(m.group(1)) == 2 <= int(m.group(2)), out
    patches = int(m.group(3))
    assert re.search(rf"old/new = {NUM}x$", out, re.M), out
    step = {
        k: (float(w), float(c))
        for k, w, c in re.findall(rf"^step (\w+)\s+wall\s+{NUM} s\s+CPU\s+{NUM} s", out, re.M)
    }
    assert list(step) == ["sources", "grid", "IMG", "MSK", "S2"], out
    # IMG and MSK run on 2 spawned area workers while the build process waits: their CPU is
    # counted (each worker's start alone, importing the project, takes seconds of CPU; the
    # build process's own share of MSK is about 0.1 s)
    assert step["IMG"][1] > 2.0 and step["MSK"][1] > 2.0, out
    written = dict(re.findall(r"^step (IMG|MSK) .*  (\d+) written", out, re.M))
    s2 = re.search(r"^step S2 .*  (\d+) super-areas, dates \[(\d+)\], 0 failed", out, re.M)
    total = re.search(
        r"^total for ~1,550 patches \+ S2 super-areas: (\d+) s wall.*-> (PASS|MISS)", out, re.M
    )
    assert s2 and total, out
    # the dataset on disk, counted here: one IMG and one MSK per kept patch, one series a zone
    ds = Path(re.search(r"^dataset: (.+)$", out, re.M)[1])  # type: ignore[index]
    imgs, msks = list(ds.rglob("IMG_*.tif")), list(ds.rglob("MSK_*.tif"))
    assert len(imgs) == len(msks) == patches == int(written["IMG"]) == int(written["MSK"]) > 0
    zones = {p.parent.parent.name for p in imgs}  # aerial/<domain>/<zone>/img/IMG_*.tif
    assert int(s2[1]) == len(zones) == len(list(ds.rglob("SEN2_sp_*_data.npy")))
    assert int(s2[2]) == 2  # the world's catalogue has 2 dates
    assert (total[2] == "PASS") == (int(total[1]) <= 900)
    assert re.search(
        r"^peak RSS of the process tree .* 2 area workers\): \d+ MB;.*-> (PASS|MISS)", out, re.M
    ), out
    assert re.search(r"^GDAL_CACHEMAX 64 MB per process", out, re.M), out
    assert re.search(r"^dalles: \d+ of 36 RVB dalles used", out, re.M), out


def test_coarse_coverage_bench_prints_both_modes_and_their_ratio(tmp_path: Path) -> None:
    from flair_pipeline.synthetic.departement import generate_departement

    raw = tmp_path / "raw"
    n, px = 4, 500  # 4 x 4 dalles of 100 m
    generate_departement(
        raw, (n * px * 0.2 / 78_000) ** 2, 0, dalle_px=px, archetypes=2, s2_dates=2
    )
    out = _bench(
        "coarse_coverage.py", "--raw", str(raw), "--zone", "204.8", "--areas", "2",
        "--cells", "2", tmp=tmp_path,
    )  # fmt: skip
    assert re.search(rf"full/coarse = {NUM}x$", out, re.M), out
    assert re.search(r"^sample_domain_grid overview: .* 0 read at full resolution", out, re.M), out
    assert re.search(rf"grid full/overview = {NUM}x; same patch ids: yes$", out, re.M), out
    assert re.search(rf"IMG exact check: .* = {NUM} % extra$", out, re.M), out


def test_raw_in_place_bench_prints_opens_steps_and_the_staged_baseline(tmp_path: Path) -> None:
    """4 x 4 dalles a product (32 tiles): both opens count them, the five in-place steps
    each print their traffic, and the in-place total is recomputed from the step lines."""
    out = _bench("raw_in_place.py", "--dalles", "4", "--latency-ms", "0", tmp=tmp_path)
    m = re.search(
        rf"^open: (\d+) tiles at 0 ms a request, one at a time {NUM} s, 16 at once {NUM} s, "
        rf"ratio {NUM}x$",
        out,
        re.M,
    )
    assert m and int(m.group(1)) == 32, out
    steps = re.findall(r"^step (\w+): (\d+) requests, (\d+) bytes, [\d.]+ s$", out, re.M)
    assert [s for s, _, _ in steps] == [
        "domain_sources", "patch_grid", "aerial_patches", "label_masks", "dataset_metadata",
    ], out  # fmt: skip
    staged = re.search(
        r"^staged: one pull (\d+) requests, (\d+) bytes; 5 steps in place (\d+) bytes vs "
        rf"staged (\d+) bytes, ratio {NUM}$",
        out,
        re.M,
    )
    assert staged, out
    pulled, total, baseline = int(staged[2]), int(staged[3]), int(staged[4])
    assert total == sum(int(b) for _, _, b in steps) and baseline == 5 * pulled, out
    assert 0 < total < baseline, out
    assert float(staged[5]) == pytest.approx(total / baseline, abs=1e-3), out
