"""A domain built from a URL raw root read in place (issue 27 item 7): the sources, grid, IMG,
MSK and metadata steps pull nothing of ``s3://…/raw``; they list it once and read the
tiles, DSM/DTM and labels where they live.

The delivery is a département-size one in miniature: the ``departement`` world at 11 x 11
dalles of 250 px (121 tiles a product: above the 100 that mark a département), written as
IGN delivers it, one tiled GeoTIFF a dalle and product (RVB, IRC), a DSM and a DTM, the
labels' GeoPackage and a ``domain.yaml``; served by moto in its own process, which logs
every request and the bytes it sent. Two areas of 121 are built, so the steps should fetch
a small part of the delivery.

Expected values come from elsewhere than the code under test: the local build of the same
files (byte for byte), the S3 listing read with boto3 (the fingerprint), the pull that
staging does (the bytes it moves), and the compressed sizes of the TIFF blocks the kept
patches touch, read from GDAL's ``BLOCK_SIZE_<x>_<y>`` metadata (the IMG step's minimum).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import numpy as np
import pytest
import rasterio

from flair_pipeline.dataset.sampling import read_patch_grid
from flair_pipeline.dataset.sources_record import domain_scan
from flair_pipeline.definitions import DATASET_ASSETS
from flair_pipeline.defs.resources import PipelineConfigResource, sentinelhub_credentials
from flair_pipeline.errors import InputError
from flair_pipeline.layout import RAW_DOMAIN, RawLayout
from flair_pipeline.sources import domain_inputs
from flair_pipeline.sources.domain_spec import resolve
from flair_pipeline.storage import filesystem, pull
from flair_pipeline.synthetic.dalle_files import write_dalle_delivery
from flair_pipeline.synthetic.departement import generate_departement
from tests.s3_process import CountingS3, counting_s3

from .helpers import free_port, write_params

DOMAIN = "D049_2022"
N, PX, BLOCK = 11, 250, 128  # 121 dalles of 50 m a product, 128 px TIFF blocks
CHUNK = 16384  # GDAL's CPL_VSIL_CURL_CHUNK_SIZE default: what an open fetches first
SCALE = (N * PX * 0.2 / 78_000) ** 2
SAMPLING = {"patch_size": 50, "zone_size_m": 50.0, "areas_per_domain": 2}
#: The steps that read the raw root in place, in build order (Stage.raw_in_place).
STEPS = ("domain_sources", "patch_grid", "aerial_patches", "label_masks", "dataset_metadata")


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The raw root: one domain as IGN delivers it (dalle files, DSM, DTM, labels, spec)."""
    work = tmp_path_factory.mktemp("dept-vrt")
    generate_departement(work, SCALE, 0, dalle_px=PX, archetypes=3, s2_dates=1)
    raw = tmp_path_factory.mktemp("dept-delivery") / "raw"
    folder = raw / "domains" / DOMAIN
    assert write_dalle_delivery(work / "domains" / DOMAIN, folder, PX, BLOCK) == 2 * N * N
    shutil.rmtree(work)
    return raw


@pytest.fixture(scope="module")
def s3(delivery: Path) -> Iterator[tuple[str, CountingS3]]:
    """The delivery uploaded to a bucket of a counting S3 server; yields (URL, server)."""
    port = free_port()
    with counting_s3(port) as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", server.endpoint)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        fs, _ = filesystem("s3://flair")
        fs.mkdir("flair")
        fs.put(str(delivery) + "/", "flair/raw", recursive=True)
        fs.invalidate_cache()
        yield "s3://flair/raw", server


def _materialize(params: str, step: str) -> None:
    """Materialize one step of DOMAIN on a fresh instance (run in a child process)."""
    resources = {
        "flair": PipelineConfigResource(config_path=params),
        "sentinelhub": sentinelhub_credentials(),
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("domains", [DOMAIN])
        result = dg.materialize(
            DATASET_ASSETS,
            selection=dg.AssetSelection.assets(step),
            partition_key=DOMAIN,
            instance=instance,
            resources=resources,
        )
        assert result.success, step


def _build(raw: str, dataset: Path, server: CountingS3 | None) -> dict[str, list]:
    """Materialize STEPS one at a time; with `server`, each in its own process (as the
    multiprocess, Dask or k8s executors run steps: no GDAL cache shared between steps),
    and the requests each one sent."""
    params = str(write_params(dataset.parent, raw, str(dataset), {"sampling": SAMPLING}))
    traffic: dict[str, list] = {}
    for step in STEPS:
        if server is None:
            _materialize(params, step)
            continue
        server.reset()
        child = multiprocessing.get_context("spawn").Process(
            target=_materialize, args=(params, step)
        )
        child.start()
        child.join(600)
        assert child.exitcode == 0, f"{step}: exit code {child.exitcode}"
        traffic[step] = server.log()
    return traffic


@pytest.fixture(scope="module")
def builds(
    s3: tuple[str, CountingS3], delivery: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict[str, list]]:
    """The same domain built from the bucket (in place) and from the local files."""
    url, server = s3
    remote = tmp_path_factory.mktemp("in-place") / "dataset"
    local = tmp_path_factory.mktemp("local") / "dataset"
    traffic = _build(url, remote, server)
    _build(str(delivery), local, None)
    return remote, local, traffic


def _rasters(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.tif"))}


def test_in_place_build_equals_the_local_build(builds: tuple[Path, Path, dict]) -> None:
    """Same patch grid (ids and footprints), byte-identical IMG and MSK, same metadata."""
    remote, local, _ = builds
    grid_r = read_patch_grid(remote / "metadata" / "patch_grid" / f"{DOMAIN}.gpkg")
    grid_l = read_patch_grid(local / "metadata" / "patch_grid" / f"{DOMAIN}.gpkg")
    assert list(grid_r.patch_id) == list(grid_l.patch_id)
    assert len(grid_r) == 2 * 25  # two areas of 5 x 5 cells
    assert grid_r.geometry.geom_equals(grid_l.geometry).all()
    got, want = _rasters(remote), _rasters(local)
    assert len(want) == 2 * len(grid_l)  # an IMG and a MSK a patch
    assert got == want
    name = f"metadata/domains/{DOMAIN}.json"
    assert (remote / name).read_bytes() == (local / name).read_bytes()


def test_fingerprint_is_the_listing_and_the_record_names_the_same_files(
    builds: tuple[Path, Path, dict], s3: tuple[str, CountingS3]
) -> None:
    """The record's fingerprint is sha256 over (name, size, ETag) from an S3 listing read
    here with boto3, in the record's file order, and the sensor's is the same without a
    byte read; files and bytes equal the local record's; the tiles' headers are recorded
    with the listing's versions. Planted: staging ignoring raw_in_place (fingerprint kind
    and traffic tests failed)."""
    remote, local, _ = builds
    url, server = s3
    rec = json.loads((remote / "metadata" / "sources" / f"{DOMAIN}.json").read_text())
    ref = json.loads((local / "metadata" / "sources" / f"{DOMAIN}.json").read_text())
    assert rec["files"] == ref["files"] and rec["bytes"] == ref["bytes"]
    assert ref["fingerprint_kind"] == "sha256 of the bytes"
    assert rec["fingerprint_kind"] == "listing (names, sizes, ETags)"
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")
    prefix = f"raw/domains/{DOMAIN}/"
    listed = {
        o["Key"][len(prefix) :]: (o["Size"], o["ETag"].strip('"'))
        for page in client.get_paginator("list_objects_v2").paginate(Bucket="flair", Prefix=prefix)
        for o in page["Contents"]
    }
    h = hashlib.sha256(b"etag-v1\n")
    for name in rec["files"]:
        size, etag = listed[name]
        h.update(f"{name}\0{size}\0{etag}\n".encode())
    assert rec["fingerprint"] == h.hexdigest()
    assert rec["fingerprint"] != ref["fingerprint"]
    # the sensor's fingerprint (its run keys) is the same, from its own scan, no byte read
    fs, root = domain_inputs.open_root(url)
    scan = domain_inputs.scan_domain(fs, root, DOMAIN)
    server.reset()
    assert domain_inputs.content_fingerprint(fs, scan) == (rec["fingerprint"], 0)
    assert server.log() == []
    # the tiles' headers recorded for the later steps, with their listing's versions
    tiles = rec["tiles"]["tiles"]
    assert len(tiles) == 2 * N * N and "tiles" not in ref
    by_name = {t["path"].rsplit(f"{DOMAIN}/", 1)[1]: t for t in tiles}
    name = sorted(by_name)[0]
    size, etag = listed[name]
    assert by_name[name]["version"] == f"{size}:{etag}"
    assert (by_name[name]["width"], by_name[name]["count"]) == (PX, 3)


def _raw_bytes(log: list, key_prefix: str) -> tuple[int, int]:
    """(requests, bytes) of the log's requests for objects under `key_prefix`."""
    hits = [n for _, path, n in log if path.startswith(key_prefix)]
    return len(hits), sum(hits)


def _blocks_touched(tile: Path, boxes: np.ndarray) -> tuple[int, int]:
    """(compressed bytes, count) of the TIFF blocks of `tile` any box (x0, y0, x1, y1) touches."""
    total = 0
    with rasterio.open(tile) as src:
        inv = ~src.transform
        touched: set[tuple[int, int]] = set()
        for x0, y0, x1, y1 in boxes:
            c0, r0 = inv * (x0, y1)
            c1, r1 = inv * (x1, y0)
            c0, r0 = max(0, int(np.floor(c0 + 1e-6))), max(0, int(np.floor(r0 + 1e-6)))
            c1, r1 = (
                min(src.width, int(np.ceil(c1 - 1e-6))),
                min(src.height, int(np.ceil(r1 - 1e-6))),
            )
            if c0 >= c1 or r0 >= r1:
                continue
            for by in range(r0 // BLOCK, (r1 - 1) // BLOCK + 1):
                for bx in range(c0 // BLOCK, (c1 - 1) // BLOCK + 1):
                    touched.add((bx, by))
        for bx, by in touched:
            total += int(src.get_tag_item(f"BLOCK_SIZE_{bx}_{by}", "TIFF", bidx=1))
    return total, len(touched)


def test_each_step_fetches_a_small_part_of_what_staging_moves(
    builds: tuple[Path, Path, dict], s3: tuple[str, CountingS3], delivery: Path, tmp_path: Path
) -> None:
    """Requests and bytes of each step against the bucket, beside what staging moved (one
    pull of the domain's raw folder a step, measured here) and the IMG step's minimum."""
    remote, _, traffic = builds
    url, server = s3
    key = f"/flair/raw/{RAW_DOMAIN.prefix(domain=DOMAIN)}/"
    server.reset()
    pull(url, tmp_path / "staged", [RAW_DOMAIN.prefix(domain=DOMAIN)], required=True)
    staged_requests, staged = _raw_bytes(server.log(), key)
    folder = delivery / "domains" / DOMAIN
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert staged >= size  # a pull moves every byte of the folder
    grid = read_patch_grid(remote / "metadata" / "patch_grid" / f"{DOMAIN}.gpkg")
    boxes = np.array([g.bounds for g in grid.geometry])
    tiles = sorted((folder / "ortho").rglob("*.tif"))
    touched = {t: _blocks_touched(t, boxes) for t in tiles}
    used = [t for t, (b, _) in touched.items() if b]
    blocks = sum(b for b, _ in touched.values())
    nblocks = sum(n for _, n in touched.values())
    # opening a tile in place fetches GDAL's first chunk (CPL_VSIL_CURL_CHUNK_SIZE, 16 KiB)
    headers = sum(min(CHUNK, t.stat().st_size) for t in used)
    lines, total = [], 0
    for step in STEPS:
        n, sent = _raw_bytes(traffic[step], key)
        total += sent
        lines.append(f"{step}: {n} requests, {sent:,} bytes ({sent / staged:.3f} of a pull)")
    img_n, img_ortho = _raw_bytes(traffic["aerial_patches"], key + "ortho/")
    report = "\n".join(
        [
            f"domain folder {size:,} bytes; one pull: {staged_requests} requests, {staged:,} bytes",
            *lines,
            f"in place, {len(STEPS)} steps: {total:,} bytes vs staged {len(STEPS) * staged:,} "
            f"({total / (len(STEPS) * staged):.3f})",
            f"IMG step ortho: {img_n} requests, {img_ortho:,} bytes; the {len(used)} tiles "
            f"its patches touch (of {len(tiles)}): headers {headers:,} + blocks {blocks:,} = "
            f"{headers + blocks:,} ({img_ortho / (headers + blocks):.2f}x)",
        ]
    )
    print(report)
    assert total < 0.1 * len(STEPS) * staged, report
    # the minimum: the headers and blocks of the tiles its patches touch, no other tile
    # opened (their headers come from the sources step's record, dataset/tile_record.py)
    assert img_ortho <= 1.1 * (headers + blocks), report
    assert img_n <= len(used) + nblocks, report  # a GET a header, at most one a block


def test_bad_inputs_at_the_url_are_one_line_naming_them(
    s3: tuple[str, CountingS3], delivery: Path
) -> None:
    """A domain absent from the bucket, and a domain.yaml whose glob matches nothing there,
    are refused in one line naming the URL (as for a local folder)."""
    url, _ = s3
    with pytest.raises(InputError, match=rf"^{url}/domains/D091_2020: domain folder not found$"):
        domain_scan(RawLayout(url), "D091_2020")
    spec = (delivery / "domains" / DOMAIN / "domain.yaml").read_text()
    fs, _ = filesystem(url)
    bad = "flair/raw/domains/D050_2022"
    fs.pipe(f"{bad}/domain.yaml", spec.replace("ortho/rvb/*.tif", "ortho/rvb/*.jp2").encode())
    fs.invalidate_cache()
    with pytest.raises(InputError) as err:
        resolve(f"s3://{bad}")
    assert str(err.value).startswith(f"s3://{bad}/domain.yaml: ortho 'rvb' glob 'ortho/rvb/*.jp2'")
    assert "\n" not in str(err.value)
