"""Data roots on a real S3-compatible server (moto's server on 127.0.0.1, spoken to over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.defs.staging import staged
from flair_pipeline.errors import ConfigError, InputError
from flair_pipeline.layout import AERIAL
from flair_pipeline.storage import StorageError, filesystem, list_domains, list_files
from flair_pipeline.synthetic.world import WorldSummary
from tests.s3_process import counting_s3

from .helpers import build_in_process, free_port, rasters, write_params

DOMAIN = "D033_2021"


@pytest.fixture(scope="module")
def s3(tiny_world: WorldSummary) -> Iterator[str]:
    """A bucket on a local S3 server holding the tiny world under raw/; yields its URL.

    The server runs in its own process (tests/s3_process.py): the build reads the labels
    in place, and pyogrio keeps the GIL while GDAL waits on the network.
    """
    port = free_port()
    with counting_s3(port), pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        fs, _ = filesystem("s3://flair")
        fs.mkdir("flair")
        fs.put(str(tiny_world.out) + "/", "flair/raw", recursive=True)
        fs.invalidate_cache()
        yield "s3://flair"


def test_domain_build_on_s3_equals_local_build(
    s3: str, tiny_world: WorldSummary, tmp_path: Path
) -> None:
    remote = PipelineConfigResource(
        config_path=str(write_params(tmp_path / "s3", f"{s3}/raw", f"{s3}/dataset"))
    )
    local = PipelineConfigResource(
        config_path=str(write_params(tmp_path / "local", str(tiny_world.out), "dataset"))
    )
    with dg.instance_for_test() as instance:
        build_in_process(remote, instance, [DOMAIN], split=True)
        build_in_process(local, instance, [DOMAIN], split=True)
    assert list_domains(f"{s3}/raw") == sorted(d.domain for d in tiny_world.domains)

    local_root = tmp_path / "local" / "dataset"
    local_names = sorted(  # but the build steps' lock files: local to each copy
        str(p.relative_to(local_root))
        for p in local_root.rglob("*")
        if p.is_file() and ".locks" not in p.relative_to(local_root).parts
    )
    assert list_files(f"{s3}/dataset") == local_names  # same layout, no temp or stray objects
    assert any(n.startswith("aerial/") for n in local_names)
    assert "metadata/splits.csv" in local_names

    fs, _ = filesystem(s3)
    mirror = tmp_path / "mirror"
    fs.get("flair/dataset/", str(mirror), recursive=True)
    local_rasters = rasters(local_root)
    assert len(local_rasters) == 3 * (512 // 64) ** 2  # IMG, MSK and CROP (issue 25)
    assert rasters(mirror) == local_rasters  # byte-identical IMG and MSK GeoTIFFs
    for name in ("metadata/splits.csv", f"metadata/domains/{DOMAIN}.json"):
        assert (mirror / name).read_bytes() == (local_root / name).read_bytes()


def _step(s3: str, tmp_path: Path, dataset: str, body) -> None:
    """Run `body(flair)` as a staged asset step of partition DOMAIN, roots on `s3`."""
    flair = PipelineConfigResource(config_path=str(write_params(tmp_path, f"{s3}/raw", dataset)))
    staged(AERIAL)(lambda context, flair: body(flair))(
        dg.build_asset_context(partition_key=DOMAIN), flair
    )


def test_failed_step_publishes_nothing(s3: str, tmp_path: Path) -> None:
    target, seen = f"{s3}/failed", []

    def body(flair: PipelineConfigResource) -> None:
        root = flair.dataset().root
        seen.append(root)
        (root / "aerial").mkdir(parents=True)
        (root / "aerial" / "IMG_1.tif").write_bytes(b"complete")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _step(s3, tmp_path, target, body)
    assert list_files(target) == []
    assert seen and not seen[0].exists()  # the staging copy is cleaned up either way


def test_successful_step_publishes_what_it_wrote(s3: str, tmp_path: Path) -> None:
    target = f"{s3}/published"

    def body(flair: PipelineConfigResource) -> None:
        (flair.dataset().root / "aerial").mkdir(parents=True)
        (flair.dataset().root / "aerial" / "IMG_1.tif").write_bytes(b"complete")

    _step(s3, tmp_path, target, body)
    assert list_files(target) == ["aerial/IMG_1.tif"]


def test_missing_domain_is_named_with_its_url(s3: str, tmp_path: Path) -> None:
    flair = PipelineConfigResource(
        config_path=str(write_params(tmp_path, f"{s3}/raw", f"{s3}/dataset"))
    )
    step = staged()(lambda context, flair: None)
    with pytest.raises(InputError, match=r"s3://flair/raw/domains/D099_2020: nothing found"):
        step(dg.build_asset_context(partition_key="D099_2020"), flair)


def test_unreachable_endpoint_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nobody listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with pytest.raises(StorageError, match=rf"at http://127\.0\.0\.1:{port} failed") as e:
        list_files("s3://nowhere/raw")
    assert "s3://nowhere/raw" in str(e.value)


def test_url_root_without_staging_is_a_clear_error(tmp_path: Path) -> None:
    flair = PipelineConfigResource(
        config_path=str(write_params(tmp_path, "s3://b/raw", "s3://b/dataset"))
    )
    with pytest.raises(ConfigError, match="s3://b/raw: a URL root has no local path"):
        flair.raw()
