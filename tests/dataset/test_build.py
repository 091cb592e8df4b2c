"""The domain stage without Dagster (dataset/build.py, dataset/assemble.py) and
`flair-pipeline build-domain`, byte for byte against the assets' materialization."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml

from flair_pipeline.config import PipelineConfig, SplitConfig, config_from_dict
from flair_pipeline.dataset.assemble import assemble_splits
from flair_pipeline.dataset.build import build_domain_patches
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.errors import InputError, StageCheckError
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.orchestration.run import materialize
from flair_pipeline.synthetic.world import WorldSummary

DOMAIN = "D033_2021"
SAMPLING = {"patch_size": 64, "max_patches_per_domain": 6, "zone_size_m": 60}
#: the per-domain assets, without split_assignment (it merges every domain)
DOMAIN_ASSETS = (
    "key:domain_sources or key:patch_grid or key:aerial_patches or key:label_masks "
    "or key:dataset_metadata or key:sentinel2_series"
)


def _cfg() -> PipelineConfig:
    return config_from_dict({"sampling": SAMPLING})


def _tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `root` (hidden ones included)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def core_built(tiny_world: WorldSummary, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("core") / "dataset"
    report = build_domain_patches(
        DomainContext.open(DOMAIN, RawLayout(tiny_world.out), DatasetLayout(root), _cfg())
    )
    return root, report


def test_build_domain_cli_writes_the_assets_bytes(
    tiny_world: WorldSummary, tmp_path: Path, core_built
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": str(tiny_world.out), "dataset": "dagster_dataset"},
                "sampling": SAMPLING,
            }
        )
    )
    with dg.instance_for_test() as instance:
        materialize(
            DOMAIN_ASSETS,
            (DOMAIN,),
            PipelineConfigResource(config_path=str(params)),
            instance=instance,
        )
    exe = Path(sys.executable).parent / "flair-pipeline"
    r = subprocess.run(
        [
            str(exe),
            "build-domain",
            DOMAIN,
            "--config",
            str(params),
            "--dataset",
            str(tmp_path / "cli_dataset"),
            "--sentinel2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert f"{DOMAIN}: 6 patches" in r.stdout
    assets, cli = _tree(tmp_path / "dagster_dataset"), _tree(tmp_path / "cli_dataset")
    # crop_labels (issue 25): this domain has no RPG, so its step leaves only an empty
    # released lock file, taken by some of the three paths and not others
    assets = {n: h for n, h in assets.items() if not n.startswith(".locks/crop_labels/")}
    cli = {n: h for n, h in cli.items() if not n.startswith(".locks/crop_labels/")}
    kinds = {name.split("/")[0] for name in assets}
    # .locks: the build steps' lock files (dataset/domain_lock.py), empty once released
    assert kinds == {".locks", "aerial", "labels", "metadata", "sentinel"}
    assert sum(n.endswith(".tif") for n in assets) == 2 * 6
    assert any(n.endswith("_data.npy") for n in assets)
    assert any(n.startswith("metadata/centroids/") for n in assets)
    assert any(n.startswith("metadata/patch_grid/") for n in assets)
    assert any(n.startswith("metadata/sources/") for n in assets)
    assert any(n.startswith("metadata/domains/") for n in assets)
    assert cli == assets  # every file, byte for byte: no run id in any data file
    # and the core function called in process writes the same bytes again
    core = {
        n: h for n, h in _tree(core_built[0]).items() if not n.startswith(".locks/crop_labels/")
    }
    assert core == {
        n: h for n, h in assets.items() if not n.startswith(("sentinel/", "metadata/centroids/"))
    }


def test_report_counts_match_the_files(core_built, tiny_world: WorldSummary) -> None:
    root, report = core_built
    layout = DatasetLayout(root)
    grid = gpd.read_file(layout.patch_grid(DOMAIN), layer="patches")
    imgs = sorted((root / "aerial" / DOMAIN).rglob("IMG_*.tif"))
    msks = sorted((root / "labels" / DOMAIN).rglob("MSK_*.tif"))
    assert report.grid.patches == len(grid) == len(imgs) == len(msks) == 6
    assert report.grid.zones == grid["zone"].nunique()
    assert report.images.written == report.masks.written == 6 and report.images.passed
    counts = np.zeros(20, np.int64)
    for m in msks:
        with rasterio.open(m) as src:
            counts += np.bincount(src.read(1).ravel(), minlength=20)
    expected = {str(c): int(counts[c]) for c in range(1, 20) if counts[c]}
    assert report.masks.pixels_per_code == expected
    assert report.masks.unlabelled_pixels == int(counts[0])
    assert sum(expected.values()) + int(counts[0]) == 6 * 64 * 64
    meta = json.loads(layout.domain_metadata(DOMAIN).read_text())
    assert sorted(meta["patches"]) == sorted(p.stem for p in imgs)
    assert report.metadata.patches == 6 and report.metadata.class_shares == pytest.approx(
        meta["class_distribution"]
    )
    assert sum(report.metadata.class_shares.values()) == pytest.approx(100.0)
    src = json.loads(layout.sources_record(DOMAIN).read_text())
    assert report.sources.fingerprint == src["fingerprint"]
    raw = tiny_world.out / "domains" / DOMAIN
    assert report.sources.input_bytes == sum((raw / f).stat().st_size for f in src["files"])
    assert report.sources.ortho_tiles == len(list((raw / "ortho").glob("*.tif")))
    figures = report.as_metadata()
    json.dumps(figures)  # plain JSON values, nothing of Dagster's
    assert figures["dataset_metadata"]["patches"] == 6


def test_a_failed_check_stops_the_build(tiny_world: WorldSummary, tmp_path: Path) -> None:
    folder = tmp_path / "raw" / "domains" / DOMAIN
    shutil.copytree(tiny_world.out / "domains" / DOMAIN, folder)
    labels = gpd.read_file(folder / "labels.gpkg")
    smallest = labels.loc[[labels.area.idxmin()]]  # one polygon left: every patch unlabelled
    smallest.to_file(folder / "labels.gpkg", layer="labels", driver="GPKG")
    dataset = DatasetLayout(tmp_path / "dataset")
    with pytest.raises(StageCheckError, match=rf"{DOMAIN}: patch_grid check has_patches failed"):
        build_domain_patches(
            DomainContext.open(DOMAIN, RawLayout(tmp_path / "raw"), dataset, _cfg())
        )
    assert dataset.sources_record(DOMAIN).is_file()  # the step before ran
    assert not (dataset.root / "aerial").exists()  # no step after


def _domain_json(layout: DatasetLayout, domain: str, keys: list[str]) -> None:
    (layout.root / "raw" / "domains" / domain).mkdir(parents=True)  # its raw folder is there
    path = layout.domain_metadata(domain)
    path.parent.mkdir(parents=True, exist_ok=True)
    patches = {k: {"domain": domain, "zone": "Z1_UA"} for k in keys}
    path.write_text(json.dumps({"domain": domain, "patches": patches}))


def test_assemble_splits_counts_merges_and_finds_leaks(tmp_path: Path) -> None:
    layout = DatasetLayout(tmp_path)
    _domain_json(layout, "D033_2021", ["IMG_1", "IMG_2", "IMG_3"])  # official train
    _domain_json(layout, "D004_2021", ["IMG_4"])  # official validation
    _domain_json(layout, "D036_2020", ["IMG_5", "IMG_2"])  # official test; IMG_2 leaks
    report = assemble_splits(layout, SplitConfig(), RawLayout(tmp_path / "raw"))
    assert report.leaks == ("IMG_2 in D033_2021 and D036_2020",) and not report.passed
    meta = report.as_metadata()
    assert (meta["train_patches"], meta["validation_patches"], meta["test_patches"]) == (3, 1, 2)
    assert meta["domains"] == 3 and ["D036_2020", "test", "official", 2] in meta["splits"]
    assert report.check_metadata() == {"leaks": ["IMG_2 in D033_2021 and D036_2020"]}
    assert layout.splits.read_text().splitlines() == [
        "domain,split,rule",
        "D004_2021,validation,official",
        "D033_2021,train,official",
        "D036_2020,test,official",
    ]
    merged = json.loads(layout.aerial_metadata.read_text())
    assert sorted(merged) == ["IMG_1", "IMG_2", "IMG_3", "IMG_4", "IMG_5"]
    assert merged["IMG_2"]["domain"] == "D036_2020"  # the last domain in id order wins


def test_assemble_splits_without_leak_passes(tmp_path: Path) -> None:
    layout = DatasetLayout(tmp_path)
    _domain_json(layout, "D033_2021", ["IMG_1"])
    _domain_json(layout, "D036_2020", ["IMG_2"])
    report = assemble_splits(layout, SplitConfig(), RawLayout(tmp_path / "raw"))
    assert report.passed and report.leaks == () and report.warnings == ()
    assert (report.patches("train"), report.patches("test")) == (1, 1)
    assert report.as_metadata()["stale_domains"] == []


def test_a_domain_whose_raw_folder_is_gone_is_left_out_of_the_split(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    raw, dataset = RawLayout(tmp_path / "raw"), DatasetLayout(tmp_path / "dataset")
    kept, gone = tiny_world.domains[0].domain, tiny_world.domains[1].domain
    for d in (kept, gone):
        shutil.copytree(tiny_world.out / "domains" / d, raw.domain(d))
        build_domain_patches(DomainContext.open(d, raw, dataset, _cfg()))
    gone_keys = set(json.loads(dataset.domain_metadata(gone).read_text())["patches"])
    assert gone_keys  # built, with patches
    shutil.rmtree(raw.domain(gone))  # the raw folder removed (or renamed) after the build

    report = assemble_splits(dataset, SplitConfig(), raw)

    rows = dataset.splits.read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [kept]  # the stale domain is not in the split
    merged = json.loads(dataset.aerial_metadata.read_text())
    assert not gone_keys & set(merged) and merged  # nor in the merged aerial metadata
    assert report.stale == (gone,) and report.as_metadata()["stale_domains"] == [gone]
    assert len(report.warnings) == 1 and "\n" not in report.warnings[0]
    assert gone in report.warnings[0] and kept not in report.warnings[0]
    assert str(raw.domains_dir) in report.warnings[0]
    assert dataset.domain_metadata(gone).is_file()  # its files are left alone


def _void_dsm_corner(folder: Path) -> None:
    """DSM nodata over the top-left 40 × 40 m: the patches there have no elevation."""
    dsm = folder / "dsm.tif"
    with rasterio.open(dsm) as src:
        profile, data = src.profile, src.read(1)
    data[:40, :40] = -9999.0
    profile.update(nodata=-9999.0)
    dsm.unlink()
    with rasterio.open(dsm, "w", **profile) as dst:
        dst.write(data, 1)


def test_bad_patches_are_skipped_or_stop_the_build(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    folder = tmp_path / "raw" / "domains" / DOMAIN
    shutil.copytree(tiny_world.out / "domains" / DOMAIN, folder)
    _void_dsm_corner(folder)
    raw, cfg = RawLayout(tmp_path / "raw"), config_from_dict({"sampling": {"patch_size": 64}})
    skipping = DatasetLayout(tmp_path / "skipping")
    report = build_domain_patches(DomainContext.open(DOMAIN, raw, skipping, cfg))
    void = [p for p, why in report.images.skipped if "elevation void" in why]
    assert void and len(void) == len(report.images.skipped)
    assert report.images.written == report.grid.patches - len(void)
    assert report.masks.written == report.grid.patches  # the MSK step has no void
    meta = json.loads(skipping.domain_metadata(DOMAIN).read_text())
    assert not set(void) & {k.removeprefix("IMG_") for k in meta["patches"]}
    strict = DatasetLayout(tmp_path / "strict")
    with pytest.raises(InputError, match=rf"patch {void[0]}: elevation void"):
        build_domain_patches(DomainContext.open(DOMAIN, raw, strict, cfg), skip_bad_patches=False)
    assert not list((strict.root / "aerial").rglob("IMG_*.tif"))  # nothing swapped in


def test_a_whole_domain_build_reads_its_inputs_once(
    tiny_world: WorldSummary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build_domain_patches, given one DomainContext, resolves the raw folder (glob +
    domain.json) once and never reads back the patch grid it wrote; the label layer is read
    by blocks, never kept whole (issue 27): one block for the sources check, one for the area
    scoring, the kept patches' features for the masks (3 reads on the tiny world); a step run alone (an asset, its own context) does all three
    itself. Planted bug (the grid step not keeping its grid in the context): the grid is
    read back once and the first assertion fails."""
    import flair_pipeline.dataset.domain_context as domain_context
    import flair_pipeline.dataset.domain_steps as steps
    import flair_pipeline.dataset.rasterize as rasterize
    import flair_pipeline.dataset.sampling as sampling
    from flair_pipeline.sources import domain_spec

    calls = {"resolve": 0, "read_patch_grid": 0, "read_labels": 0}

    def counted(name: str, real):  # the real function, counted
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(domain_context, "resolve", counted("resolve", domain_spec.resolve))
    # the context imports it from sampling when it first needs the grid
    monkeypatch.setattr(
        sampling, "read_patch_grid", counted("read_patch_grid", sampling.read_patch_grid)
    )
    # every caller imports it from rasterize when called (LabelIndex.from_file included)
    monkeypatch.setattr(rasterize, "read_labels", counted("read_labels", rasterize.read_labels))
    raw, dataset = RawLayout(tiny_world.out), DatasetLayout(tmp_path / "dataset")
    report = build_domain_patches(DomainContext.open(DOMAIN, raw, dataset, _cfg()))
    assert report.metadata.patches > 0
    assert calls == {"resolve": 1, "read_patch_grid": 0, "read_labels": 3}
    calls.update(resolve=0, read_patch_grid=0, read_labels=0)
    steps.build_domain_masks(
        DomainContext.open(DOMAIN, raw, dataset, _cfg())
    )  # alone, as the label_masks asset
    assert calls == {"resolve": 1, "read_patch_grid": 1, "read_labels": 1}


def test_a_step_after_the_grid_without_a_grid_is_named(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """IMG, MSK or metadata asked before any patch grid: one line naming the missing grid
    and what to run, nothing written. Planted bug (the context reading the grid without
    looking): pyogrio's own error escapes, not an InputError, and the test fails."""
    from flair_pipeline.dataset import domain_steps, metadata_step

    dataset = DatasetLayout(tmp_path / "dataset")
    for step in (
        domain_steps.build_domain_images,
        domain_steps.build_domain_masks,
        metadata_step.write_domain_metadata,
    ):
        ctx = DomainContext.open(DOMAIN, RawLayout(tiny_world.out), dataset, _cfg())
        with pytest.raises(InputError) as e:
            step(ctx)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(str(dataset.patch_grid(DOMAIN)))
        assert "materialize patch_grid first" in msg
    assert not (dataset.root / "aerial").exists() and not (dataset.root / "labels").exists()
