"""The packed training input: what it holds, byte-identical repacks, same losses as GeoTIFFs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from flair_pipeline.layout import ModelFiles
from flair_pipeline.nomenclature import merge_to_13
from flair_pipeline.training.curves import epoch_rows
from flair_pipeline.training.packing import open_packed, pack_source, packed_root
from flair_pipeline.training.records import by_split, load_records
from flair_pipeline.training.samples import PackedDataset, PatchDataset
from flair_pipeline.training.train import _dataset, train_model
from tests.training.conftest import config


@pytest.fixture(scope="module")
def packed_copy(tiny_dataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A private copy of the tiny dataset (tests below rewrite files), packed once."""
    dataset, params = tiny_dataset
    copy = tmp_path_factory.mktemp("packed") / "dataset"
    shutil.copytree(dataset, copy, symlinks=True)
    shutil.rmtree(copy / "packed", ignore_errors=True)
    pack_source(copy)
    return copy, params


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()
    }


def test_pack_holds_the_geotiff_pixels_and_the_index(packed_copy) -> None:
    root, _ = packed_copy
    records = load_records(root)
    pack = json.loads((root / "packed" / "pack.json").read_text())
    assert set(pack["splits"]) == {r.split for r in records}
    for split in pack["splits"]:
        part = by_split(records, split)
        img = np.load(root / "packed" / split / "img.npy")
        msk = np.load(root / "packed" / split / "msk.npy")
        index = json.loads((root / "packed" / split / "index.json").read_text())
        assert img.shape == (len(part), 5, 64, 64) and img.dtype == np.uint8
        assert msk.shape == (len(part), 64, 64) and msk.dtype == np.uint8
        for i, rec in enumerate(part):
            with rasterio.open(rec.img) as a, rasterio.open(rec.msk) as b:
                np.testing.assert_array_equal(img[i], a.read())
                codes = b.read(1)
            # FLAIR's merge by hand: codes 1..12 -> 0..11, 13..19 -> 12 ("other")
            expected = np.where(codes <= 12, codes.astype(np.int64) - 1, 12)
            np.testing.assert_array_equal(msk[i], expected)
            assert index[i]["patch_id"] == rec.patch_id
            assert root / index[i]["img"] == rec.img
            assert index[i]["centroid"] == (list(rec.centroid) if rec.centroid else None)
            if rec.sen_prefix is not None:
                assert root / index[i]["sen_prefix"] == rec.sen_prefix
        meta = np.load(root / "packed" / split / "meta.npy")
        assert meta.shape[0] == len(part) and np.isfinite(meta).all()
    enc = json.loads((root / "packed" / "metadata_encoding.json").read_text())
    assert enc["encoding"]["dim"] == meta.shape[1]


def test_merge_rule_of_the_check_above_is_flairs(packed_copy) -> None:
    codes = np.arange(1, 20, dtype=np.uint8)
    np.testing.assert_array_equal(
        merge_to_13(codes), np.where(codes <= 12, codes.astype(np.int64) - 1, 12)
    )


def test_packing_twice_is_byte_identical(packed_copy, tmp_path: Path) -> None:
    root, _ = packed_copy
    again = pack_source(root, tmp_path / "again")
    first, second = _files(root / "packed"), _files(again.root)
    assert first.keys() == second.keys() and len(first) > 4
    assert [k for k in first if first[k] != second[k]] == []
    assert oct(again.root.stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_training_from_the_pack_gives_the_geotiff_losses(packed_copy, tmp_path: Path) -> None:
    root, params = packed_copy
    records = load_records(root)
    train = by_split(records, "train")
    assert isinstance(_dataset(root, "train", train, True), PackedDataset)
    assert type(_dataset(root, "train", train, False)) is PatchDataset
    cfg = config(params, "train.epochs=1")
    packed = train_model(root, tmp_path / "p", cfg, "unet-meta", progress=False)
    tiffs = train_model(
        root,
        tmp_path / "g",
        config(params, "train.epochs=1", "train.packed=false"),
        "unet-meta",
        progress=False,
    )
    a, b = (
        epoch_rows(ModelFiles(Path(r.best_checkpoint).parents[1]).log_metrics)
        for r in (packed, tiffs)
    )
    keys = ("train_loss", "val_loss", "val_miou")
    assert len(a) == 1 and [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]


def test_samples_equal_and_a_stale_pack_falls_back(packed_copy) -> None:
    root, _ = packed_copy
    records = load_records(root)
    val = by_split(records, "validation")
    pack = open_packed(root, "validation", val)
    assert pack is not None
    for d in (1, 2):
        ds_p, ds_g = PackedDataset(pack.folder, val, downsample=d), PatchDataset(val, downsample=d)
        for i in range(len(val)):
            p, g = ds_p[i], ds_g[i]
            assert p["img"].shape == g["img"].shape and p["msk"].shape == g["msk"].shape
            assert p["msk"].dtype == torch.uint8 and g["msk"].dtype == torch.int64
            assert p["img"].dtype == (torch.uint8 if d == 1 else torch.float32)
            assert (p["img"].float() == g["img"]).all() and (p["msk"].long() == g["msk"]).all()
    with pytest.warns(UserWarning, match="packed patches differ"):
        assert open_packed(root, "validation", val[1:]) is None
    # rewrite one IMG with other pixels: its size changes, the pack is stale
    rec = val[0]
    original = rec.img.read_bytes()
    with rasterio.open(rec.img) as src:
        prof, shape = src.profile, (src.count, src.height, src.width)
    noise = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    with rasterio.open(rec.img, "w", **prof) as dst:
        dst.write(noise)
    with pytest.warns(UserWarning, match=rf"{rec.patch_id} changed since packing"):
        assert open_packed(root, "validation", val) is None
    rec.img.write_bytes(original)
    assert open_packed(root, "validation", val) is not None


def test_manifest_pack_lives_beside_it(tmp_path: Path) -> None:
    assert packed_root(tmp_path / "flair1.csv") == tmp_path / "flair1_packed"
    assert packed_root(tmp_path / "ds") == tmp_path / "ds" / "packed"


def test_cli_packs_an_imported_flair_release(real_flair: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from flair_pipeline.cli import cli

    manifest = tmp_path / "flair.csv"
    res = CliRunner().invoke(cli, ["import-flair", str(real_flair), "--out", str(manifest)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["pack", str(manifest)])
    assert res.exit_code == 0, res.output
    records = load_records(manifest)
    root = tmp_path / "flair_packed"
    assert "into " + str(root) in res.output
    for split in {r.split for r in records}:
        part = by_split(records, split)
        img = np.load(root / split / "img.npy", mmap_mode="r")
        index = json.loads((root / split / "index.json").read_text())
        assert [e["patch_id"] for e in index] == [r.patch_id for r in part]
        for i, rec in enumerate(part):
            with rasterio.open(rec.img) as src:  # the release's own ZSTD files
                np.testing.assert_array_equal(img[i], src.read())
        assert open_packed(manifest, split, part) is not None


def test_asset_writes_the_pack_with_its_counts(packed_copy, tmp_path: Path) -> None:
    import dagster as dg
    import yaml

    from flair_pipeline.defs.resources import PipelineConfigResource
    from flair_pipeline.orchestration.run import materialize

    root, params = packed_copy
    data = yaml.safe_load(params.read_text())
    data["paths"]["dataset"] = str(root)
    p2 = tmp_path / "params.yaml"
    p2.write_text(yaml.safe_dump(data))
    before = _files(root / "packed")
    shutil.rmtree(root / "packed")
    with dg.instance_for_test() as instance:
        materialize(
            "key:packed_training_input",
            (),
            PipelineConfigResource(config_path=str(p2)),
            instance=instance,
        )
        event = instance.get_latest_materialization_event(dg.AssetKey("packed_training_input"))
    meta = event.asset_materialization.metadata
    records = load_records(root)
    for split in ("train", "validation", "test"):
        assert meta[f"{split}_patches"].value == len(by_split(records, split))
    assert _files(root / "packed") == before  # the asset and pack_source write the same bytes


def test_the_next_pack_deletes_the_temp_folders_of_killed_packs_only(
    packed_copy, tmp_path: Path
) -> None:
    """Issue 30: each killed pack left ``.packed.<rand>.tmp/`` (the whole uncompressed
    dataset); the next pack deletes those whose owner is dead, on this host only."""
    import subprocess
    import sys

    from flair_pipeline.training.packing import _HOST

    root, _ = packed_copy
    out = tmp_path / "packed"
    gone = subprocess.Popen(["true"])  # a pack process that is no longer running
    gone.wait()
    live = subprocess.Popen(["sleep", "120"])  # one still running

    def plant(name: str) -> Path:
        folder = tmp_path / name
        (folder / "train").mkdir(parents=True)
        (folder / "train" / "img.npy").write_bytes(b"\0" * 4096)  # half-written array
        return folder

    try:
        dead_tmp = plant(f".packed.{_HOST}-{gone.pid}-0123abcd.tmp")
        dead_old = plant(f".packed.{_HOST}-{gone.pid}-4567cdef.old")
        live_tmp = plant(f".packed.{_HOST}-{live.pid}-89abcdef.tmp")
        other_host = plant(f".packed.elsewhere.example-{gone.pid}-0123abcd.tmp")
        other_pack = plant(f".other.{_HOST}-{gone.pid}-0123abcd.tmp")
        r = subprocess.run(
            [
                str(Path(sys.executable).parent / "flair-pipeline"),
                "pack",
                str(root),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        assert not dead_tmp.exists() and not dead_old.exists()
        assert live_tmp.is_dir() and other_host.is_dir() and other_pack.is_dir()
        for folder in (dead_tmp, dead_old):  # each deletion is said, naming the folder
            assert f"deleted {folder}: left by a pack whose process {gone.pid} is gone" in r.stderr
        assert (out / "pack.json").is_file()
        # the pack itself leaves nothing beside it but what was planted and kept
        left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".packed."))
        assert left == sorted([other_host.name, live_tmp.name])
    finally:
        live.kill()
        live.wait()
