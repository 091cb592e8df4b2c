"""Patch sampling on real mosaic files of the tiny world."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from flair_pipeline.config import SamplingConfig
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.sampling import read_patch_grid, sample_patches, write_patch_grid
from flair_pipeline.errors import InputError
from flair_pipeline.synthetic.world import WorldSummary


def _inputs(world: WorldSummary, i: int = 0) -> tuple[str, Path, gpd.GeoDataFrame]:
    d = world.domains[i].domain
    folder = world.out / "domains" / d
    return d, folder / "ortho", gpd.read_file(folder / "labels.gpkg")


def test_grid_tiles_the_mosaic_without_overlap(tiny_world: WorldSummary) -> None:
    d, ortho, labels = _inputs(tiny_world)
    with Mosaic(ortho) as m:
        grid, report = sample_patches(d, m, labels, SamplingConfig(patch_size=64))
        bounds = m.bounds
    assert report.candidates == 64 and len(grid) == 64  # 512 px mosaic / 64 px patches
    assert np.allclose(grid.geometry.area, 12.8 * 12.8)
    assert grid.geometry.union_all().area == pytest.approx((bounds[2] - bounds[0]) ** 2)
    assert grid["patch_id"].is_unique
    assert grid["zone"].str.match(r"^Z\d+_[UAFN]{2}$").all()
    # class shares per patch sum to the labelled fraction
    shares = grid[[f"class_{k}" for k in range(13)]].sum(1)
    assert np.allclose(shares, grid["label_fraction"])


def test_ids_and_zones_do_not_depend_on_other_domains(tiny_world: WorldSummary) -> None:
    ids = []
    for order in ([0, 1, 2], [2, 1, 0]):
        got = {}
        for i in order:
            d, ortho, labels = _inputs(tiny_world, i)
            with Mosaic(ortho) as m:
                g, _ = sample_patches(d, m, labels, SamplingConfig(patch_size=64))
            got[d] = g[["patch_id", "zone"]].to_records(index=False).tolist()
        ids.append(got)
    assert ids[0] == ids[1]
    all_ids = [p for rows in ids[0].values() for p, _ in rows]
    assert len(all_ids) == len(set(all_ids))


def test_zones_group_neighbouring_patches(tiny_world: WorldSummary) -> None:
    d, ortho, labels = _inputs(tiny_world)
    with Mosaic(ortho) as m:
        g, _ = sample_patches(d, m, labels, SamplingConfig(patch_size=64, zone_size_m=40))
    assert g["zone"].nunique() == 9  # 102.4 m / (3 patches of 12.8 m) -> 3 x 3 zones
    for _, z in g.groupby("zone"):
        assert z["row"].max() - z["row"].min() <= 2 and z["col"].max() - z["col"].min() <= 2


def test_strategies(tiny_world: WorldSummary) -> None:
    d, ortho, labels = _inputs(tiny_world)
    with Mosaic(ortho) as m:
        grid, _ = sample_patches(d, m, labels, SamplingConfig(patch_size=64))
        r1, _ = sample_patches(
            d,
            m,
            labels,
            SamplingConfig(patch_size=64, strategy="random", max_patches_per_domain=10),
        )
        r2, _ = sample_patches(
            d,
            m,
            labels,
            SamplingConfig(patch_size=64, strategy="random", max_patches_per_domain=10),
        )
        r3, _ = sample_patches(
            d,
            m,
            labels,
            SamplingConfig(patch_size=64, strategy="random", max_patches_per_domain=10, seed=1),
        )
        bal, _ = sample_patches(
            d,
            m,
            labels,
            SamplingConfig(patch_size=64, strategy="balanced", max_patches_per_domain=10),
        )
    assert len(r1) == 10 and r1["patch_id"].tolist() == r2["patch_id"].tolist()
    assert r1["patch_id"].tolist() != r3["patch_id"].tolist()
    assert set(r1["patch_id"]) <= set(grid["patch_id"])
    # balanced moves shares toward FLAIR's: its distance is below the random subset's
    from flair_pipeline.nomenclature import FLAIR_SHARES

    target = np.array(list(FLAIR_SHARES.values())) / 100

    def dist(g: gpd.GeoDataFrame) -> float:
        a = g[[f"class_{k}" for k in range(13)]].to_numpy().sum(0)
        return float(np.abs(a / a.sum() - target).sum())

    assert dist(bal) <= dist(r1) + 1e-9 and dist(bal) <= dist(grid) + 1e-9


def _write(
    path: Path, arr: np.ndarray, x0: float, y1: float, res: float = 0.2, crs: str = "EPSG:2154"
) -> None:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype="uint8",
        crs=crs,
        nodata=0,
        transform=from_origin(x0, y1, res, res),
    ) as dst:
        dst.write(arr)


X0, Y1 = 1000.0, 2000.0  # the upper-left corner of the one-tile mosaics below


def _sample_tile(
    tmp: Path, arr: np.ndarray, boxes: list, codes: list[int], **cfg: object
) -> tuple[gpd.GeoDataFrame, object]:
    """sample_patches on a one-tile mosaic `arr` (4, H, W) at (X0, Y1), 0.2 m, with labels
    `boxes` (EPSG:2154) of `codes`; `cfg` are SamplingConfig fields (patch_size 32 default)."""
    _write(tmp / "a.tif", arr, X0, Y1)
    labels = gpd.GeoDataFrame({"code": codes}, geometry=boxes, crs=2154)
    with Mosaic(tmp) as m:
        return sample_patches("D033_2021", m, labels, SamplingConfig(**{"patch_size": 32, **cfg}))


def _full(height: int, width: int) -> np.ndarray:
    return np.full((4, height, width), 9, np.uint8)


def test_nodata_patches_are_rejected_and_windows_straddle_tiles(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(1, 255, (4, 64, 64), dtype=np.uint8)
    b = rng.integers(1, 255, (4, 64, 64), dtype=np.uint8)
    b[:, :, 32:] = 0  # right half of the second tile unflown
    _write(tmp_path / "a.tif", a, 1000.0, 2012.8)
    _write(tmp_path / "b.tif", b, 1012.8, 2012.8)
    labels = gpd.GeoDataFrame(
        {"code": [3]}, geometry=[shapely.box(1000, 2000, 1025.6, 2012.8)], crs=2154
    )
    with Mosaic(tmp_path) as m:
        g, report = sample_patches(
            "D033_2021", m, labels, SamplingConfig(patch_size=32, max_nodata_fraction=0.05)
        )
        # a window across the tile edge reads both tiles seamlessly
        px, valid = m.read((1006.4, 2000.0, 1019.2, 2012.8))
    assert report.rejected["nodata"] == 2  # the two right-most candidates are half nodata
    assert len(g) == 6
    assert np.array_equal(px[:, :, :32], a[:, :, 32:]) and np.array_equal(
        px[:, :, 32:], b[:, :, :32]
    )
    assert valid.all()


def test_tile_with_other_crs_or_resolution_is_refused(tmp_path: Path) -> None:
    arr = np.ones((4, 16, 16), np.uint8)
    _write(tmp_path / "a.tif", arr, 0, 16)
    _write(tmp_path / "b.tif", arr, 500000, 5000000, crs="EPSG:32631")
    with pytest.raises(InputError, match=r"b\.tif.*EPSG:32631.*expected EPSG:2154"):
        Mosaic(tmp_path)
    (tmp_path / "b.tif").unlink()
    _write(tmp_path / "c.tif", arr, 3.2, 16, res=0.5)
    with pytest.raises(InputError, match=r"c\.tif: pixel size 0.5"):
        Mosaic(tmp_path)


def test_patch_grid_round_trip(tiny_world: WorldSummary, tmp_path: Path) -> None:
    d, ortho, labels = _inputs(tiny_world)
    with Mosaic(ortho) as m:
        g, _ = sample_patches(d, m, labels, SamplingConfig(patch_size=64))
    p = write_patch_grid(g, tmp_path / "grid.gpkg")
    back = read_patch_grid(p)
    assert back["patch_id"].tolist() == g["patch_id"].tolist()
    assert back.crs.to_epsg() == 2154
    assert write_patch_grid(g, tmp_path / "grid2.gpkg").read_bytes() == p.read_bytes()


def test_patch_grid_file_is_one_patches_layer_dated_2000(
    tiny_world: WorldSummary, tmp_path: Path
) -> None:
    """The GeoPackage a user opens in QGIS: one layer named ``patches``; its gpkg_contents
    date is fixed (GDAL's OGR_CURRENT_DATE), so the file's bytes do not depend on when it
    was written (DVC sees no change on a rebuild). Read with sqlite3, not with GDAL."""
    import sqlite3

    import pyogrio

    d, ortho, labels = _inputs(tiny_world)
    with Mosaic(ortho) as m:
        g, _ = sample_patches(d, m, labels, SamplingConfig(patch_size=64))
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})  # whatever ran before
    path = write_patch_grid(g, tmp_path / "grid.gpkg")
    with sqlite3.connect(path) as db:
        contents = db.execute("SELECT table_name, data_type, last_change FROM gpkg_contents")
        assert contents.fetchall() == [("patches", "features", "2000-01-01T00:00:00.000Z")]


def test_balanced_choice_by_hand() -> None:
    """The greedy choice of `balanced_choice` (dataset/areas.py) on candidates whose L1 distances to FLAIR's shares
    (t, nomenclature.FLAIR_SHARES / 100, summing to 0.9999) are worked out by hand."""
    from flair_pipeline.dataset.areas import balanced_choice as _balanced
    from flair_pipeline.nomenclature import FLAIR_SHARES

    t = np.array(list(FLAIR_SHARES.values())) / 100
    assert np.argmax(t) == 9 and np.allclose(t[[0, 9]], [0.0713, 0.1824])
    e = np.eye(13)
    # Each row's shares count once, whatever its labelled area: B is 0.5 m² of class 0,
    # C 100 m² of class 9, A 100 m² in FLAIR's proportions. First A (distance 1e-4); then
    # adding C gives (t + e9) / 2 at distance ≈ (2 - 2 x 0.1824) / 2 = 0.818, adding B
    # (t + e0) / 2 at ≈ 0.929: C. (Weighting rows by area would take B, A being already
    # almost exact; taking A twice is not a choice.)
    areas = np.stack([0.5 * e[0], 100 * e[9], 100 * t / t.sum()])
    np.testing.assert_array_equal(_balanced(areas, 2), [1, 2])
    np.testing.assert_array_equal(_balanced(areas, 1), [2])
    np.testing.assert_array_equal(_balanced(areas, 5), [0, 1, 2])  # n above the rows: all
    # The distance is to FLAIR's shares themselves: Q = 0.99 t + 1.01 % of class 12 lies at
    # 0.0199 from t, R = t moved 0.6 % from class 9 to class 6 at 0.0121, so R; measured
    # against 0.99 t instead, Q (0.0102) would beat R (0.0184).
    q = 0.99 * t + (1 - 0.99 * t.sum()) * e[12]
    r = t / t.sum() + 0.006 * (e[6] - e[9])
    assert abs(np.abs(q - t).sum() - 0.0199) < 1e-4 and abs(np.abs(r - t).sum() - 0.0121) < 1e-4
    np.testing.assert_array_equal(_balanced(100 * np.stack([q, r]), 1), [1])


def test_patch_id_spells_department_year_row_and_column() -> None:
    from flair_pipeline.dataset.sampling import patch_id
    from flair_pipeline.domains import DomainId

    assert patch_id(DomainId.parse("D033_2021"), 3, 45) == "033" + "21" + "0003" + "0045"
    assert patch_id(DomainId.parse("D006_2020"), 1234, 0) == "006" + "20" + "1234" + "0000"
    assert patch_id(DomainId.parse("D095_2019"), 0, 9) == "095" + "19" + "0000" + "0009"


@pytest.mark.parametrize(
    ("areas", "kind"),
    [
        ({"building": 10, "coniferous": 30, "deciduous": 5}, "FU"),  # F 35 > U 10
        ({"herbaceous vegetation": 20, "building": 10, "water": 15}, "AN"),  # A > N > U
        ({"water": 7}, "NN"),  # one group only: its letter twice
        ({"building": 5, "bare soil": 5}, "AU"),  # a tie goes to the letter first
        ({}, "AA"),  # nothing labelled
        ({"other": 4, "vineyard": 1, "brushwood": 2}, "UN"),  # "other" counts as urban
        ({"building": 41, "coniferous": 1.5e-12}, "UU"),  # float dust is no second group
        ({"building": 41, "coniferous": 1e-6}, "UF"),  # a few square millimetres are
    ],
)
def test_zone_kind_letters_by_hand(areas: dict[str, float], kind: str) -> None:
    """Zone type (the FLAIR zone name's letters): the largest landscape group, then the
    second (Urban: building, pervious, impervious, other; Agricultural: bare soil,
    vineyard, herbaceous, agricultural, plowed; Forest: coniferous, deciduous; Natural:
    water, brushwood)."""
    from flair_pipeline.dataset.sampling import zone_kind
    from flair_pipeline.nomenclature import MERGED_NAMES

    vector = np.zeros(13)
    for name, area in areas.items():
        vector[next(n for n, full in enumerate(MERGED_NAMES) if full.startswith(name))] = area
    assert zone_kind(vector) == kind


@pytest.mark.parametrize("unit", ["km", "m"])
def test_a_truncated_ign_tile_costs_exactly_its_patches(tmp_path: Path, unit: str) -> None:
    """Three 1 km dalles in a row (20 m pixels, 50 x 50), named as IGN names them, with the
    upper-left corner in km (``33-2021-0650-6862-LA93-…``), or in metres as the synthetic
    world does; the middle one cut short by an interrupted download. Its 25 patches of
    200 m (10 px) are each reported unreadable, naming the file; the 50 others are kept;
    none is counted as nodata (which a km name read as metres gave)."""

    rng = np.random.default_rng(0)
    names = []
    for x_km in (650, 651, 652):
        corner = f"{x_km:04d}-6862" if unit == "km" else f"{x_km * 1000:07d}-6862000"
        path = tmp_path / f"33-2021-{corner}-LA93-0M20-E080.tif"
        _write(path, rng.integers(1, 255, (4, 50, 50), dtype=np.uint8), x_km * 1000.0, 6862e3, 20)
        names.append(path)
    names[1].write_bytes(names[1].read_bytes()[:200])  # the download stopped in the header
    labels = gpd.GeoDataFrame(
        {"code": [3]}, geometry=[shapely.box(650e3, 6861e3, 653e3, 6862e3)], crs=2154
    )
    with Mosaic(tmp_path) as m:
        assert list(m.broken) == [names[1]]
        g, report = sample_patches("D033_2021", m, labels, SamplingConfig(patch_size=10))
    assert report.candidates == 75
    assert report.rejected["unreadable tile"] == 25 and report.rejected["nodata"] == 0
    assert len(g) == 50 and set(g["col"]) == {*range(5), *range(10, 15)}
    assert sorted(report.unreadable) == sorted(
        f"0332100{r:02d}00{c:02d}: {names[1]}: unreadable tile"
        for r in range(5)
        for c in range(5, 10)
    )


def test_ign_tile_names_give_the_corner_in_metres() -> None:
    from flair_pipeline.dataset.mosaic import named_corner

    assert named_corner(Path("49-2022-0405-6700-LA93-0M20-E080.jp2")) == (405e3, 6700e3)
    assert named_corner(Path("49-2022-0440-6700-LA93-0M20-IRC-E080.jp2")) == (440e3, 6700e3)
    assert named_corner(Path("33-2021-0500000-6400000-LA93-0M20.tif")) == (500e3, 6400e3)
    assert named_corner(Path("tile_a.tif")) is None
    assert named_corner(Path("33-2021-x-y.tif")) is None


@pytest.mark.parametrize(
    ("width", "height", "cells"),
    [
        (126, 126, [(r, c) for r in range(3) for c in range(3)]),  # 2 px short of 4 x 4
        (32, 96, [(0, 0), (1, 0), (2, 0)]),  # one column
        (96, 32, [(0, 0), (0, 1), (0, 2)]),  # one row
    ],
)
def test_the_lattice_holds_whole_patches_only(
    tmp_path: Path, width: int, height: int, cells: list[tuple[int, int]]
) -> None:
    """Candidates are the whole 32 px (6.4 m) cells inside the mosaic, row-major from its
    upper-left corner; a strip narrower than a patch (here 0.4 m) gives no candidate."""

    x0, y1 = X0, Y1
    g, report = _sample_tile(
        tmp_path, _full(height, width), [shapely.box(x0, y1 - 100, x0 + 100, y1)], [3]
    )
    assert report.candidates == len(cells) and len(g) == len(cells)
    assert list(zip(g["row"], g["col"], strict=True)) == cells
    for (r, c), box in zip(cells, g.geometry, strict=True):
        expected = (x0 + 6.4 * c, y1 - 6.4 * (r + 1), x0 + 6.4 * (c + 1), y1 - 6.4 * r)
        np.testing.assert_allclose(box.bounds, expected, atol=1e-9)
    assert g["patch_id"].tolist() == [f"03321{r:04d}{c:04d}" for r, c in cells]
    assert (g["domain"] == "D033_2021").all()
    np.testing.assert_allclose(g["x_centroid"], [x0 + 6.4 * c + 3.2 for _, c in cells])
    np.testing.assert_allclose(g["y_centroid"], [y1 - 6.4 * r - 3.2 for r, _ in cells])
    np.testing.assert_allclose(g["valid_fraction"], 1.0)
    assert (g["row"].dtype, g["col"].dtype) == (np.int32, np.int32)
    assert list(g.columns) == [
        "patch_id",
        "domain",
        "zone",
        "row",
        "col",
        "x_centroid",
        "y_centroid",
        "valid_fraction",
        "label_fraction",
        "geometry",
        *(f"class_{k}" for k in range(13)),
    ]


def test_nodata_and_label_cover_limits_are_inclusive_and_counted(tmp_path: Path) -> None:
    """Three 32 px patches in a row, max_nodata_fraction 0.25: the first has 8 of its 32
    columns unflown (exactly 25 % nodata: kept); labels cover 24 columns of the second
    (75 %: kept) and 22 of the third (69 %: rejected as labels not covering)."""

    arr = _full(32, 96)
    arr[:, :, :8] = 0  # nodata in every band
    covered = [(0, 32), (32, 32 + 24), (64, 64 + 22)]  # label columns of each patch
    boxes = [shapely.box(X0 + 0.2 * a, Y1 - 6.4, X0 + 0.2 * b, Y1) for a, b in covered]
    g, report = _sample_tile(tmp_path, arr, boxes, [3, 3, 3], max_nodata_fraction=0.25)
    assert g["col"].tolist() == [0, 1]
    assert dict(report.rejected) == {"unreadable tile": 0, "nodata": 0, "labels not covering": 1}
    np.testing.assert_allclose(g["valid_fraction"], [0.75, 1.0])
    np.testing.assert_allclose(g["label_fraction"], [1.0, 0.75])


@pytest.mark.parametrize("strategy", ["random", "balanced"])
@pytest.mark.parametrize(
    ("width", "limit", "selected"),
    [(126, None, 4), (126, 2, 2), (126, 20, 9), (32, None, 1), (64, None, 1)],
)
def test_random_and_balanced_keep_the_limit_or_half(
    tmp_path: Path, strategy: str, width: int, limit: int | None, selected: int
) -> None:
    """Without max_patches_per_domain, the random and balanced strategies keep half the
    usable candidates (rounded down, at least one); with it, at most that many. Mosaics
    of 126 x 126 px (9 candidates), 32 x 32 (1) and 64 x 32 (2)."""

    height = 126 if width == 126 else 32
    boxes = [shapely.box(X0, Y1 - 30, X0 + 12, Y1), shapely.box(X0 + 12, Y1 - 30, X0 + 30, Y1)]
    g, report = _sample_tile(
        tmp_path,
        _full(height, width),
        boxes,
        [3, 10],
        strategy=strategy,
        max_patches_per_domain=limit,
    )
    assert report.selected == len(g) == selected
    assert g["patch_id"].is_unique


def test_grid_strategy_keeps_the_first_candidates_row_major(tmp_path: Path) -> None:
    box = shapely.box(X0, Y1 - 30, X0 + 30, Y1)
    g, report = _sample_tile(
        tmp_path, _full(126, 126), [box], [3], strategy="grid", max_patches_per_domain=4
    )
    assert list(zip(g["row"], g["col"], strict=True)) == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert report.selected == 4


@pytest.mark.parametrize(
    ("zone_size_m", "zones"),
    [
        # 6.4 m patches on a 3 x 3 lattice; zones of 2 x 2 patches, numbered row-major
        (12.8, ["Z1_UU", "Z1_UU", "Z2_NN", "Z1_UU", "Z1_UU", "Z2_NN", "Z3_AA", "Z3_AA", "Z4_FF"]),
        # a zone smaller than a patch: one patch per zone
        (
            1.0,
            [
                f"Z{n}_{k}"
                for n, k in enumerate(["UU", "UU", "NN", "UU", "UU", "NN", "AA", "AA", "FF"], 1)
            ],
        ),
        (700.0, ["Z1_UA"] * 9),  # the default: one zone, buildings first, then fields
    ],
)
def test_zones_group_whole_blocks_of_patches(
    tmp_path: Path, zone_size_m: float, zones: list[str]
) -> None:
    """Each zone's kind comes from its own patches: buildings over the upper-left 2 x 2
    patches (urban), water down the right column (natural), fields along the bottom row
    (agricultural), a forest in the lower-right patch."""

    p = 6.4

    def cells(c0: int, r0: int, c1: int, r1: int) -> shapely.Polygon:
        return shapely.box(X0 + c0 * p, Y1 - r1 * p, X0 + c1 * p, Y1 - r0 * p)

    boxes = [cells(0, 0, 2, 2), cells(2, 0, 3, 2), cells(0, 2, 2, 3), cells(2, 2, 3, 3)]
    # building, water, agricultural land, coniferous
    g, _ = _sample_tile(tmp_path, _full(96, 96), boxes, [1, 5, 10, 6], zone_size_m=zone_size_m)
    assert g["zone"].tolist() == zones
