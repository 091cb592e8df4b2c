"""Benchmark: `new_domains_sensor` ticks over FLAIR-size domains (sparse files).

Writes `--domains` raw-layout domains of `--gb` GB each as `--tiles` sparse ortho tiles
(FLAIR's 1 km² dalles at 20 cm are ~100 MB uncompressed; sparse files take no disk), then
evaluates the real sensor (Dagster `build_sensor_context`, a real instance) tick by tick,
as the daemon does a minute apart:

1. first look at the delivery (stats only, the folders may still be being copied);
2. the decision: every domain is over the hashing budget, so each is requested on its stat
   signature, without a read;
3. and 4. a re-delivery of the same bytes (every file touched): a look, then a decision.

For each tick: wall and CPU seconds, and the bytes the process read (the kernel's count,
/proc/self/io). The baseline, measured in the same run, is what the sensor did before
(issue 30): read and sha256 every byte of every new domain in the tick
(`domain_inputs.fingerprint`, unchanged).

    .venv/bin/python bench/sensor.py --domains 4 --gb 30
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import dagster as dg
import yaml
from timing import timed  # bench/ is on sys.path when a bench script runs

from flair_pipeline.definitions import defs
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.defs.sensors import Budget, new_domains_sensor
from flair_pipeline.sources import domain_inputs

DOMAINS = ["D004_2021", "D013_2020", "D033_2021", "D036_2020", "D069_2020", "D083_2020"]


def _rchar() -> int:
    return int(Path("/proc/self/io").read_text().split("rchar:")[1].split()[0])


def _write(*, raw: Path, domain: str, gb: float, tiles: int) -> None:
    folder = raw / "domains" / domain
    (folder / "ortho").mkdir(parents=True)
    size = int(gb * 2**30) // tiles
    for i in range(tiles):
        with (folder / "ortho" / f"tile_{i:04d}.tif").open("wb") as fh:
            fh.truncate(size)
    for name in ("dsm.tif", "dtm.tif", "labels.gpkg", "domain.json"):
        (folder / name).write_bytes(b"x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domains", type=int, default=4)
    ap.add_argument("--gb", type=float, default=30.0, help="GB per domain")
    ap.add_argument("--tiles", type=int, default=300, help="ortho tiles per domain")
    args = ap.parse_args()
    budget = Budget.from_env()
    with tempfile.TemporaryDirectory(prefix="bench-sensor-") as tmp:
        root = Path(tmp)
        raw = root / "raw"
        names = DOMAINS[: args.domains]
        for d in names:
            _write(raw=raw, domain=d, gb=args.gb, tiles=args.tiles)
        params = root / "params.yaml"
        params.write_text(yaml.safe_dump({"paths": {"raw": str(raw), "dataset": str(root)}}))
        flair = PipelineConfigResource(config_path=str(params))
        total = args.domains * args.gb
        print(
            f"{args.domains} domains × {args.gb:g} GB ({args.tiles} sparse tiles each), "
            f"{total:g} GB; budget {budget.bytes / 2**30:g} GB / {budget.seconds:g} s a tick"
        )
        with dg.instance_for_test() as instance:
            cursor = None
            ticks = []
            for label in ("first look", "decision", "re-delivery: look", "re-delivery: decision"):
                if label == "re-delivery: look":
                    for p in raw.rglob("*"):
                        if p.is_file():
                            os.utime(p, (1.7e9, 1.7e9))
                ctx = dg.build_sensor_context(
                    instance=instance, cursor=cursor, definitions=defs, resources={"flair": flair}
                )
                r0 = _rchar()
                with timed() as t:
                    result = new_domains_sensor(ctx)
                read = _rchar() - r0
                assert isinstance(result, dg.SensorResult)
                for req in result.dynamic_partitions_requests or []:
                    instance.add_dynamic_partitions(
                        req.partitions_def_name, list(req.partition_keys)
                    )
                cursor = result.cursor
                ticks.append(t.wall_s)
                print(
                    f"tick {label:<24} wall {t.wall_s:7.3f} s  cpu {t.cpu_s:6.3f} s  "
                    f"read {read / 2**20:8.1f} MB  run requests {len(result.run_requests)}"
                )
        raw_root = flair.project().raw.root  # the raw root as the sensor reads it
        fs, _ = domain_inputs.open_root(raw_root)
        r0 = _rchar()
        with timed() as base:  # the old sensor: every byte of every new domain, in one tick
            for d in names:
                scan = domain_inputs.scan_domain(fs, str(raw_root), d)
                domain_inputs.fingerprint(fs, scan.files, scan.folder)
        read = _rchar() - r0
        print(
            f"baseline (old sensor: sha256 of every new domain) wall {base.wall_s:7.1f} s  "
            f"cpu {base.cpu_s:6.1f} s  read {read / 2**30:6.1f} GB"
        )
        worst = max(ticks)
        print(
            f"slowest tick {worst:.3f} s vs baseline {base.wall_s:.1f} s: "
            f"{base.wall_s / worst:.0f}× faster; Dagster's sensor timeout 60 s"
        )


if __name__ == "__main__":
    main()
