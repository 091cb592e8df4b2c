"""A flight time as users and FLAIR write it: ``10:30``, ``10:30:00`` or ``10h30``.

FLAIR's own metadata writes ``08h06`` (the real toy metadata in ../shared is read here);
the project keeps ISO ``HH:MM:SS``. Expected values are split by hand from the strings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from flair_pipeline.errors import InputError
from flair_pipeline.release.flair_export import release_time
from flair_pipeline.sources.domain_info import read_domain_info, validate_domain_info
from flair_pipeline.sources.domain_spec import resolve

REAL_META = (
    Path(__file__).resolve().parents[2].parent
    / "shared/real-samples/flair-metadata/flair-one_TOY_metadata.json"
)
DOMAIN = "D049_2022"


def _facts(time: object) -> dict:
    return {"domain": DOMAIN, "camera": "UCE-M3-f100-s06", "date": "2022-06-14", "time": time}


@pytest.mark.parametrize(
    ("given", "kept"),
    [("10h30", "10:30:00"), ("08h06", "08:06:00"), ("10:30", "10:30:00"), ("10:30:00", "10:30:00")],
)
def test_flair_and_iso_times_are_kept_as_iso(given: str, kept: str) -> None:
    info = validate_domain_info(_facts(given), Path("x/domain.json"), DOMAIN).as_record()
    assert info["time"] == kept
    assert release_time(info["time"]) == kept[:2] + "h" + kept[3:5]  # FLAIR's form back


def test_every_time_of_flair_s_real_metadata_is_read() -> None:
    if not REAL_META.is_file():
        pytest.skip(f"real FLAIR metadata not found at {REAL_META} (../shared is absent)")
    times = {rec["time"] for rec in json.loads(REAL_META.read_text()).values()}
    assert len(times) > 50 and all("h" in t for t in times)
    for t in sorted(times):
        hh, mm = t.split("h")  # by hand: FLAIR writes two digits each side of 'h'
        facts = {**_facts(t), "domain": "D004_2021", "date": "2021-05-28"}
        info = validate_domain_info(facts, Path("domain.json"), "D004_2021")
        assert info.as_record()["time"] == f"{hh}:{mm}:00"


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("25h00", "'25h00' is not a time of day (HHhMM: 00h00 to 23h59)"),
        ("10h75", "'10h75' is not a time of day"),
        ("1030", """'1030' is not a time: expected "HH:MM", "HH:MM:SS" or FLAIR's "HHhMM\""""),
        ("10.30", "'10.30' is not a time"),
        ("25:00", "hour value is outside expected range of 0-23"),
        (630, "the number 630 is not a time; write it quoted"),
    ],
)
def test_a_wrong_time_is_one_line_naming_the_file_and_field(
    tmp_path: Path, given: object, said: str
) -> None:
    path = tmp_path / DOMAIN / "domain.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_facts(given)))
    with pytest.raises(InputError) as err:
        read_domain_info(path, DOMAIN)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: field 'time': ") and said in msg


def _spec_folder(tmp_path: Path, acquisition: str) -> Path:
    folder = tmp_path / DOMAIN
    for name in ("ortho/a.tif", "dsm.tif", "dtm.tif", "labels.gpkg"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).touch()
    spec = {
        "ortho": [
            {"name": "rgbn", "glob": "ortho/*.tif", "bands": {"R": 1, "G": 2, "B": 3, "NIR": 4}}
        ],
        "dsm": {"glob": "dsm.tif"},
        "dtm": {"glob": "dtm.tif"},
        "labels": {"glob": "labels.gpkg"},
    }
    (folder / "domain.yaml").write_text(yaml.safe_dump(spec) + acquisition)
    return folder


def test_domain_yaml_takes_flair_s_time(tmp_path: Path) -> None:
    folder = _spec_folder(
        tmp_path, 'acquisition: {date: "2022-06-14", time: "10h30", camera: "UCE-M3-f100-s06"}\n'
    )
    assert resolve(folder).info["time"] == "10:30:00"


def test_an_unquoted_yaml_time_is_refused_not_read_as_seconds(tmp_path: Path) -> None:
    # YAML 1.1 reads 10:30 as 630 (base 60); as seconds it would become 00:10:30
    assert yaml.safe_load("t: 10:30") == {"t": 630}
    folder = _spec_folder(
        tmp_path, 'acquisition: {date: "2022-06-14", time: 10:30, camera: "UCE-M3-f100-s06"}\n'
    )
    with pytest.raises(InputError) as err:
        resolve(folder)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{folder / 'domain.yaml'}: acquisition.time: ")
    assert 'the number 630 is not a time; write it quoted, "10:30"' in msg
