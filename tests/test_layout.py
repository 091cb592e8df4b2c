"""layout.py is the one spelling of every path: layouts, artifacts and dvc.yaml derive from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from flair_pipeline import layout as L
from flair_pipeline.orchestration.artifacts import ARTIFACTS, COMMAND_STAGES, PLOTS, all_domains


def test_dataset_paths_are_flair_release_paths(tmp_path: Path) -> None:
    ds = L.DatasetLayout(tmp_path)
    # FLAIR's release layout, spelled here by hand (IGNF FLAIR #1/#2 folders)
    assert ds.img("D033_2021", "Z1_UF", "12") == (
        tmp_path / "aerial" / "D033_2021" / "Z1_UF" / "img" / "IMG_12.tif"
    )
    assert ds.msk("D033_2021", "Z1_UF", "12") == (
        tmp_path / "labels" / "D033_2021" / "Z1_UF" / "msk" / "MSK_12.tif"
    )
    sen = tmp_path / "sentinel" / "D033_2021" / "Z1_UF" / "sen"
    assert ds.sen_prefix("D033_2021", "Z1_UF") == sen / "SEN2_sp_D033_2021-Z1_UF"
    assert ds.sen_dir("D033_2021", "Z1_UF") == sen
    assert ds.sen_file("D033_2021", "Z1_UF", "data.npy") == sen / "SEN2_sp_D033_2021-Z1_UF_data.npy"
    assert ds.splits == tmp_path / "metadata" / "splits.csv"
    assert ds.domain_metadata_dir == tmp_path / "metadata" / "domains"
    assert ds.domain_centroids("D1") == tmp_path / "metadata" / "centroids" / "D1.json"
    raw = L.RawLayout(tmp_path)
    assert raw.dsm("D1") == tmp_path / "domains" / "D1" / "dsm.tif"
    assert raw.domains_dir == tmp_path / "domains"


def test_model_and_eval_files(tmp_path: Path) -> None:
    m = L.ModelFiles.of(tmp_path, "utt")
    assert m.folder == tmp_path / "utt"
    assert m.best == tmp_path / "utt" / "checkpoints" / "best.ckpt"
    assert m.last == tmp_path / "utt" / "checkpoints" / "last.ckpt"
    assert (m.report, m.dvclive_plot("val_miou")) == (
        tmp_path / "utt" / "report.json",
        tmp_path / "utt" / "dvclive" / "plots" / "metrics" / "val_miou.tsv",
    )
    e = L.EvalFiles(tmp_path / "x")
    assert e.pred("D1", "7") == tmp_path / "x" / "predictions" / "D1" / "PRED_7.tif"
    assert e.metrics == tmp_path / "x" / "metrics.json"
    assert L.map_path(tmp_path, "D1", "unet") == tmp_path / "map_D1_unet.tif"


def test_matching_a_file_against_templates() -> None:
    assert L.IMG.matches("dataset", "aerial/D1/Z1/img/IMG_3.tif")
    assert not L.IMG.matches("dataset", "aerial/D1/Z1/img/extra/IMG_3.tif")  # one segment each
    assert not L.IMG.matches("dataset", "aerial/D1/Z1/img/MSK_3.tif")
    assert not L.IMG.matches("eval", "aerial/D1/Z1/img/IMG_3.tif")  # another root
    assert L.TRAIN_LOGS.matches("models", "unet/logs/metrics.csv")  # a folder owns its tree
    assert not L.CURVES_PNG.matches("models", "unet/curves.png/x")  # a file does not
    assert L.AERIAL.all_domains() == L.PathTemplate("dataset", "aerial", folder=True)


def test_undeclared_names_stray_and_leftover_files(tmp_path: Path) -> None:
    ds = tmp_path / "dataset"
    for rel in (
        "aerial/D1/Z1/img/IMG_1.tif",
        "metadata/splits.csv",
        "packed/train/index.json",
        "packed/index.json",  # not a file of the pack (index.json is per split)
        "aerial/D1/Z1/img/notes.txt",
        "metadata/.splits.csv.tmp",
    ):
        (ds / rel).parent.mkdir(parents=True, exist_ok=True)
        (ds / rel).write_text("x")
    assert L.undeclared({"dataset": ds}) == [
        "dataset/aerial/D1/Z1/img/notes.txt",
        "dataset/metadata/.splits.csv.tmp",
        "dataset/packed/index.json",
    ]


def _declared(template: str) -> bool:
    """Whether an artifact template is a layout template, some of its fields filled."""
    for t in L.TEMPLATES.values():
        for model in ("", "unet", "utt", L.HUB_MODEL):
            if (t.fill(model=model) if model else t).template == template:
                return True
            if t.all_domains().template == template:
                return True
    return template.strip("{}") in L.ROOTS  # a whole root (the synthetic world's raw)


def test_every_artifact_path_comes_from_the_layout() -> None:
    paths = [p for a in ARTIFACTS.values() for p in (*a.owned, *a.reads)]
    paths += [p for c in COMMAND_STAGES.values() for p in (*c.outs, *c.reads)]
    paths += [p.file for p in PLOTS]
    assert paths
    missing = [p for p in paths if not _declared(p)]
    assert not missing, f"spelled outside flair_pipeline/layout.py: {missing}"
    assert all_domains("{dataset}/metadata/domains/{domain}.json") == "{dataset}/metadata/domains"
    assert all_domains("{raw}") == "{raw}"


def test_raw_inputs_of_a_domain_folder() -> None:
    from flair_pipeline.sources.domain_inputs import REQUIRED_FILES

    assert REQUIRED_FILES == ("dsm.tif", "dtm.tif", "labels.gpkg", "domain.json")  # docs/inputs.md
    assert L.RAW_ORTHO.relative_to(L.RAW_DOMAIN) == "ortho"


def test_patch_file_names_follow_flair() -> None:
    # FLAIR's release names (written by hand, not from the templates)
    assert L.img_name("77409") == "IMG_77409.tif"
    assert L.patch_id_of("IMG_77409.tif") == L.patch_id_of("IMG_77409") == "77409"
    assert (L.file_prefix(L.IMG), L.file_prefix(L.MSK), L.file_prefix(L.PRED)) == (
        "IMG_",
        "MSK_",
        "PRED_",
    )
    with pytest.raises(ValueError, match="not a per-patch file"):
        L.file_prefix(L.SPLITS)
