"""Benchmark: a domain built from an ``s3://`` raw root read in place vs staged (issue 27 item 7).

A miniature département delivery (``--dalles`` x ``--dalles`` dalle files a product: the
``departement`` world cut by :mod:`flair_pipeline.synthetic.dalle_files`) is served by moto
in its own process (``tests/s3_process.py``), which adds ``--latency-ms`` to every request
(an object store's round trip) and logs each request's bytes. Printed:

1. ``open``: the mosaic opened in place (every tile's header) one tile at a time, then
   ``REMOTE_OPEN_THREADS`` at once, each in a fresh process: seconds and the ratio;
2. ``step``: each step that reads the raw root in place (sources, grid, IMG, MSK,
   metadata), each materialized in a fresh process as the multiprocess, Dask and k8s
   executors run them: requests, bytes and seconds;
3. ``staged``: the baseline measured in the same run, one pull of the domain's raw folder
   (what staging did for each of these steps), and the ratio of the in-place bytes to it.

    .venv/bin/python bench/raw_in_place.py --dalles 11 --latency-ms 20
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/s3_process.py

DOMAIN = "D049_2022"
PX = 250  # a dalle's side in pixels (50 m)
STEPS = ("domain_sources", "patch_grid", "aerial_patches", "label_masks", "dataset_metadata")


def _open(url: str, threads: int, q: Any) -> None:
    """Open the domain's mosaic from `url` with `threads` header reads at once; seconds."""
    from flair_pipeline.dataset.mosaic import Mosaic
    from flair_pipeline.geo import raster_vrt
    from flair_pipeline.sources.domain_spec import resolve

    raster_vrt.REMOTE_OPEN_THREADS = threads
    inputs = resolve(f"{url}/domains/{DOMAIN}")
    t0 = time.perf_counter()
    with Mosaic(inputs.ortho) as mosaic:
        q.put((time.perf_counter() - t0, sum(len(p.files) for p in mosaic.products.values())))


def _step(params: str, step: str, q: Any) -> None:
    """Materialize one step of DOMAIN on a fresh instance; its seconds."""
    import dagster as dg

    from flair_pipeline.definitions import DATASET_ASSETS
    from flair_pipeline.defs.resources import PipelineConfigResource, sentinelhub_credentials

    t0 = time.perf_counter()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("domains", [DOMAIN])
        result = dg.materialize(
            DATASET_ASSETS,
            selection=dg.AssetSelection.assets(step),
            partition_key=DOMAIN,
            instance=instance,
            resources={
                "flair": PipelineConfigResource(config_path=params),
                "sentinelhub": sentinelhub_credentials(),
            },
        )
    q.put((result.success, time.perf_counter() - t0))


def _child(target: Any, *args: Any) -> Any:
    """Run `target(*args, queue)` in a fresh spawned process; what it put."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    out = q.get(timeout=1800)
    p.join()
    return out


def _delivery(work: Path, dalles: int) -> Path:
    """The raw root: the departement world at `dalles` x `dalles`, as dalle files."""
    from flair_pipeline.synthetic.dalle_files import write_dalle_delivery
    from flair_pipeline.synthetic.departement import generate_departement

    scale = (dalles * PX * 0.2 / 78_000) ** 2
    generate_departement(work / "vrt", scale, 0, dalle_px=PX, archetypes=3, s2_dates=1)
    raw = work / "raw"
    write_dalle_delivery(work / "vrt" / "domains" / DOMAIN, raw / "domains" / DOMAIN, PX)
    shutil.rmtree(work / "vrt")
    return raw


def _bytes(log: list[tuple[str, str, int]], prefix: str) -> tuple[int, int]:
    hits = [n for _, path, n in log if path.startswith(prefix)]
    return len(hits), sum(hits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dalles", type=int, default=11, help="dalles a side (11: 121 a product)")
    ap.add_argument("--areas", type=int, default=2, help="sampling.areas_per_domain")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="added to every request")
    args = ap.parse_args()

    import yaml

    from flair_pipeline.geo.raster_vrt import REMOTE_OPEN_THREADS
    from flair_pipeline.layout import RAW_DOMAIN
    from flair_pipeline.storage import filesystem, pull
    from tests.s3_process import counting_s3
    from tests.scale.helpers import free_port

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        raw = _delivery(work, args.dalles)
        with counting_s3(free_port(), delay_ms=args.latency_ms) as server:
            os.environ.update(
                AWS_ENDPOINT_URL=server.endpoint,
                AWS_ACCESS_KEY_ID="testing",
                AWS_SECRET_ACCESS_KEY="testing",
                AWS_DEFAULT_REGION="us-east-1",
            )
            fs, _ = filesystem("s3://flair")
            fs.mkdir("flair")
            fs.put(str(raw) + "/", "flair/raw", recursive=True)
            url = "s3://flair/raw"
            key = f"/flair/raw/{RAW_DOMAIN.prefix(domain=DOMAIN)}/"

            serial, tiles = _child(_open, url, 1)
            pooled, _ = _child(_open, url, REMOTE_OPEN_THREADS)
            print(
                f"open: {tiles} tiles at {args.latency_ms:g} ms a request, one at a time "
                f"{serial:.2f} s, {REMOTE_OPEN_THREADS} at once {pooled:.2f} s, "
                f"ratio {serial / pooled:.1f}x"
            )

            params = work / "params.yaml"
            sampling = {"patch_size": 50, "zone_size_m": 50.0, "areas_per_domain": args.areas}
            params.write_text(
                yaml.safe_dump(
                    {"paths": {"raw": url, "dataset": str(work / "dataset")}, "sampling": sampling}
                )
            )
            total = 0
            for step in STEPS:
                server.reset()
                ok, seconds = _child(_step, str(params), step)
                if not ok:
                    raise SystemExit(f"{step} failed")
                n, sent = _bytes(server.log(), key)
                total += sent
                print(f"step {step}: {n} requests, {sent} bytes, {seconds:.1f} s")
            server.reset()
            pull(url, work / "staged", [RAW_DOMAIN.prefix(domain=DOMAIN)], required=True)
            n, staged = _bytes(server.log(), key)
            print(
                f"staged: one pull {n} requests, {staged} bytes; {len(STEPS)} steps in place "
                f"{total} bytes vs staged {len(STEPS) * staged} bytes, "
                f"ratio {total / (len(STEPS) * staged):.3f}"
            )


if __name__ == "__main__":
    main()
