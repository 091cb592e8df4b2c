from pathlib import Path

import pytest

from flair_pipeline.config import SplitConfig
from flair_pipeline.dataset.splits import assign_split, assign_splits, read_splits, write_splits
from flair_pipeline.domains import Split
from flair_pipeline.errors import FlairPipelineError


def test_official_domains_keep_the_official_split() -> None:
    cfg = SplitConfig()
    assert assign_split("D033_2021", cfg) == (Split.TRAIN, "official")
    assert assign_split("D004_2021", cfg) == (Split.VALIDATION, "official")
    assert assign_split("D036_2020", cfg) == (Split.TEST, "official")


def test_other_domains_by_mapping_then_hash() -> None:
    cfg = SplitConfig(mapping={"D001_2020": "test"})
    assert assign_split("D001_2020", cfg) == (Split.TEST, "mapping")
    s, rule = assign_split("D002_2020", cfg)
    assert rule == "hash" and s == assign_split("D002_2020", SplitConfig())[0]
    # the hash follows the ratios over many ids and depends only on the id
    ids = [
        f"D0{d:02d}_{y}"
        for d in (1, 2, 3, 5, 10, 11, 12, 18, 19, 20, 24, 25, 27, 28, 37)
        for y in range(2000, 2040)
    ]
    got = assign_splits(ids, SplitConfig())
    share = sum(1 for s, _ in got.values() if s is Split.TRAIN) / len(got)
    assert 0.62 < share < 0.78
    only_train = assign_splits(
        ids, SplitConfig(ratios={"train": 1.0, "validation": 0.0, "test": 0.0})
    )
    assert {s for s, _ in only_train.values()} == {Split.TRAIN}


def test_mapping_cannot_move_an_official_domain() -> None:
    with pytest.raises(FlairPipelineError, match=r"D033_2021.*two splits"):
        assign_split("D033_2021", SplitConfig(mapping={"D033_2021": "test"}))


def test_csv_round_trip_and_leakage(tmp_path: Path) -> None:
    a = assign_splits(["D033_2021", "D036_2020"], SplitConfig())
    p = write_splits(a, tmp_path / "splits.csv")
    assert read_splits(p) == {"D033_2021": Split.TRAIN, "D036_2020": Split.TEST}
    p.write_text("domain,split,rule\nD033_2021,train,official\nD033_2021,test,mapping\n")
    with pytest.raises(FlairPipelineError, match="both train and test"):
        read_splits(p)
