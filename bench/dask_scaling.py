"""Benchmark: domains per minute of the dataset job on a Dask cluster, by worker count.

For each worker count it starts a ``LocalCluster`` (worker processes, one thread each, on
loopback), warms the workers up (imports the code location once, as a long-lived cluster
would have), then launches one Dagster run per domain (sources + per-domain dataset
assets, ``flair_pipeline.orchestration.executors.dask_build_domain``) all at once, as a run queue
would, and times until every run has finished. The baseline, measured in the same run, is
the in-process build (one process, domains one after another, ``dg.materialize``).
Every build writes to its own dataset root; the IMG/MSK files of every Dask build are
compared byte for byte with the baseline's. Figures are printed, never asserted.

    .venv/bin/python bench/dask_scaling.py                       # demo world, 1 and 2 workers
    .venv/bin/python bench/dask_scaling.py --raw /tmp/demo_raw --workers 1 2 4
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dagster as dg
import yaml

from flair_pipeline.defs.resources import PipelineConfigResource, sentinelhub_credentials
from flair_pipeline.orchestration.executors import run_domain_on_dask
from flair_pipeline.project import Project
from flair_pipeline.synthetic.world import generate_world


def _params(folder: Path, raw: Path, patch_size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "params.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": str(raw), "dataset": "dataset"},
                "sampling": {"patch_size": patch_size},
            }
        )
    )
    return path


def _rasters(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.tif"))}


def in_process(instance: dg.DagsterInstance, params: Path, domains: list[str]) -> float:
    """Seconds to build every domain in this process, one after another."""
    from flair_pipeline.definitions import DATASET_ASSETS

    flair = PipelineConfigResource(config_path=str(params))
    start = time.perf_counter()
    for d in domains:
        result = dg.materialize(
            DATASET_ASSETS,
            partition_key=d,
            instance=instance,
            resources={"flair": flair, "sentinelhub": sentinelhub_credentials()},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        assert result.success, d
    return time.perf_counter() - start


def on_dask(
    *, instance: dg.DagsterInstance, params: Path, domains: list[str], workers: int
) -> float:
    """Seconds to build every domain on a fresh `workers`-process cluster, runs launched at once.

    Each run is orchestrated from its own process (as a run launcher would start it); those
    processes and the Dask workers are started and warmed up before the clock starts.
    """
    from dask.distributed import Client, LocalCluster

    ref = instance.get_ref()
    spawn = mp.get_context("spawn")
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
        ProcessPoolExecutor(max_workers=len(domains), mp_context=spawn) as pool,
    ):
        client.run(_warm_up)
        list(pool.map(_warm_up, [1.0] * len(domains)))  # one busy task each: all processes up
        address = cluster.scheduler_address
        start = time.perf_counter()
        jobs = [
            pool.submit(_run_one, ref=ref, domain=d, address=address, params=str(params))
            for d in domains
        ]
        ok = [j.result() for j in jobs]
        elapsed = time.perf_counter() - start
    failed = [d for d, good in zip(domains, ok, strict=True) if not good]
    if failed:
        raise SystemExit(f"runs failed on Dask for {failed}")
    return elapsed


def _run_one(*, ref: object, domain: str, address: str, params: str) -> bool:
    """One domain's run, from a run-launcher-like process."""
    with dg.DagsterInstance.from_ref(ref) as instance:
        return run_domain_on_dask(
            instance=instance, domain=domain, address=address, config_path=params
        ).success


def _warm_up(pause: float = 0.0) -> int:
    """Import the code location once (and hold the process a moment so all get started)."""
    import flair_pipeline.orchestration.executors as ex

    ex.dask_build_domain()
    time.sleep(pause)
    return os.getpid()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", type=Path, default=None, help="existing raw root (default: generate)")
    ap.add_argument("--scenario", default="demo", help="synthetic world when --raw is not given")
    ap.add_argument("--patch-size", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--domains", type=int, default=None, help="only the first N domains")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dask-bench-"))
    raw = args.raw
    if raw is None:
        raw = tmp / "raw"
        t = time.perf_counter()
        generate_world(raw, args.scenario, 0)
        print(f"generated {args.scenario!r} world in {time.perf_counter() - t:.1f} s")
    domains = sorted(p.name for p in (raw / "domains").iterdir() if p.is_dir())[: args.domains]
    (tmp / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp / "home")) as instance:
        instance.add_dynamic_partitions("domains", domains)
        base_params = _params(tmp / "in_process", raw, args.patch_size)
        base = in_process(instance, base_params, domains)
        reference = _rasters(Project.load(base_params).dataset.root)
        n = len(domains)
        print(
            f"{n} domains, {len(reference) // 2} patches of {args.patch_size} px, "
            f"{os.cpu_count()} CPU cores"
        )
        print(f"{'engine':<24}{'wall s':>8}{'domains/min':>13}{'vs in-process':>15}")
        print(f"{'in-process (baseline)':<24}{base:>8.1f}{60 * n / base:>13.2f}{1.0:>14.2f}x")
        for w in args.workers:
            params = _params(tmp / f"dask_{w}", raw, args.patch_size)
            secs = on_dask(instance=instance, params=params, domains=domains, workers=w)
            same = _rasters(Project.load(params).dataset.root) == reference
            print(
                f"{f'dask, {w} worker(s)':<24}{secs:>8.1f}{60 * n / secs:>13.2f}"
                f"{base / secs:>14.2f}x  {'identical' if same else 'DIFFERENT'} IMG/MSK"
            )
    print(f"(files under {tmp})")


if __name__ == "__main__":
    main()
