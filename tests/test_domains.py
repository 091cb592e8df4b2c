import pytest

from flair_pipeline.domains import (
    FLAIR_DOMAINS,
    OFFICIAL_SPLIT,
    DomainId,
    Split,
    ZoneId,
    department_centre_l93,
    is_domain_id,
    official_split,
    utm_epsg,
)
from flair_pipeline.errors import DomainIdError


def test_parse_and_format() -> None:
    d = DomainId.parse("D006_2020")
    assert (d.department, d.year) == (6, 2020)
    assert str(d) == "D006_2020" and d.department_code == "D006"


@pytest.mark.parametrize(
    "bad",
    [
        "D6_2020",
        "D006-2020",
        "d006_2020",
        "D000_2020",
        "D096_2020",
        "D006_20",
        "D006_1800",
        "D006_2020 ",
        "Z1_UA",
    ],
)
def test_invalid_ids_are_rejected_with_the_expected_form(bad: str) -> None:
    with pytest.raises(DomainIdError, match="D0"):
        DomainId.parse(bad)
    assert not is_domain_id(bad)


def test_official_split_sizes_and_disjointness() -> None:
    sizes = {s: len(d) for s, d in OFFICIAL_SPLIT.items()}
    assert sizes == {Split.TRAIN: 32, Split.VALIDATION: 8, Split.TEST: 10}
    all_depts = [d for ds in OFFICIAL_SPLIT.values() for d in ds]
    assert len(all_depts) == len(set(all_depts)) == 50


def test_every_flair_domain_has_a_split_and_a_position() -> None:
    assert len(FLAIR_DOMAINS) == 50
    for d in FLAIR_DOMAINS:
        assert official_split(d) is not None
        x, y = department_centre_l93(DomainId.parse(d).department)
        # metropolitan France in Lambert-93
        assert 90_000 < x < 1_250_000 and 6_040_000 < y < 7_120_000, d
    assert official_split("D015_2020") is Split.TEST
    assert official_split("D004_2021") is Split.VALIDATION
    assert official_split("D001_2020") is None


def test_position_matches_real_sample() -> None:
    # real FLAIR sample IMG_036294 (D055_2018) is centred at (873833.6, 6890977.6)
    x, y = department_centre_l93(55)
    assert abs(x - 873_833) < 40_000 and abs(y - 6_890_977) < 40_000


def test_zone_ids() -> None:
    z = ZoneId.parse("Z15_UN")
    assert (z.number, z.kind, str(z)) == (15, "UN", "Z15_UN")
    with pytest.raises(DomainIdError):
        ZoneId.parse("Z_UA")


def test_utm_zone() -> None:
    assert utm_epsg(-1.0, 47.0) == 32630
    assert utm_epsg(2.5, 46.0) == 32631
    assert utm_epsg(7.2, 43.7) == 32632
