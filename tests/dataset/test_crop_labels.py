"""Crop-type labels from RPG parcels drawn by hand (issue 25 item 2).

Expected pixels come from a plain loop over pixel centres with shapely's ``contains``,
never from the rasterizer; the file is read back with rasterio.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import MultiPolygon, Point, Polygon, box

from flair_pipeline.dataset.crop_labels import CropIndex, write_crop_labels
from flair_pipeline.errors import InputError
from flair_pipeline.geo.crop_tables import load_crop_tables

X0, Y0, RES, N = 700000.0, 6600000.0, 1.0, 24
TRANSFORM = from_origin(X0, Y0, RES, RES)

#: (fid, CODE_CULTU, CODE_GROUP, polygon); fid order = write order (later wins).
PARCELS = [
    (1, "BTH", 1, box(X0 + 1.3, Y0 - 10.6, X0 + 9.2, Y0 - 2.4)),
    (2, "MIS", 2, box(X0 + 8.0, Y0 - 20.4, X0 + 20.7, Y0 - 12.2)),  # overlaps nothing
    (3, "PPH", 18, Polygon([(X0 + 12, Y0 - 1), (X0 + 23, Y0 - 1), (X0 + 12, Y0 - 11)])),
    (4, "MIS", 2, box(X0 + 6.6, Y0 - 7.4, X0 + 11.3, Y0 - 4.1)),  # over parcel 1: wins
    # A bow-tie (self-crossing): invalid, repaired into two triangles and counted.
    (
        5,
        "BTH",
        1,
        Polygon([(X0 + 1, Y0 - 13), (X0 + 6, Y0 - 23), (X0 + 6, Y0 - 13), (X0 + 1, Y0 - 23)]),
    ),
]
BOWTIE_REPAIRED = MultiPolygon(
    [
        Polygon([(X0 + 1, Y0 - 13), (X0 + 1, Y0 - 23), (X0 + 3.5, Y0 - 18)]),
        Polygon([(X0 + 6, Y0 - 13), (X0 + 6, Y0 - 23), (X0 + 3.5, Y0 - 18)]),
    ]
)
LEVEL1 = {"BTH": 1, "MIS": 3, "PPH": 0}
LEVEL2_BY_GROUP = {1: 10, 2: 30, 18: 0}


def _write_rpg(
    path: Path, parcels: list, fields: tuple[str, str] = ("CODE_CULTU", "CODE_GROUP")
) -> Path:
    gdf = gpd.GeoDataFrame(
        {
            "fid": [p[0] for p in parcels],
            fields[0]: [p[1] for p in parcels],
            fields[1]: [p[2] for p in parcels],
        },
        geometry=[p[3] for p in parcels],
        crs="EPSG:2154",
    )
    gdf.to_file(path, driver="GPKG", layer="rpg_2021")
    return path


def _tables(tmp_path: Path, level2: bool = True):  # type: ignore[no-untyped-def]
    l1 = tmp_path / "level1.csv"
    l1.write_text("code_cultu,class\n" + "".join(f"{k},{v}\n" for k, v in LEVEL1.items()))
    if not level2:
        return load_crop_tables(l1)
    l2 = tmp_path / "level2.csv"
    l2.write_text("code_group,class\n" + "".join(f"{k},{v}\n" for k, v in LEVEL2_BY_GROUP.items()))
    return load_crop_tables(l1, l2, background2=200)


def _expected(parcels: list, classes: dict, background: int) -> np.ndarray:
    """Pixel-centre containment, a plain loop; the later parcel wins; repaired by hand."""
    out = np.full((N, N), background, np.uint8)
    for row in range(N):
        for col in range(N):
            centre = Point(X0 + (col + 0.5) * RES, Y0 - (row + 0.5) * RES)
            for _, code, group, poly in parcels:
                if not poly.is_valid:  # the bow-tie: its two triangles, meeting at (3.5, -18)
                    poly = BOWTIE_REPAIRED
                if poly.contains(centre):
                    out[row, col] = classes[code] if code in classes else classes[group]
    return out


def test_crop_labels_from_hand_drawn_parcels(tmp_path: Path) -> None:
    """Level 1 by CODE_CULTU, level 2 by CODE_GROUP, level 3 nodata; repairs counted."""
    rpg = _write_rpg(tmp_path / "rpg.gpkg", PARCELS)
    index = CropIndex.from_file(rpg, _tables(tmp_path))
    out = write_crop_labels(
        tmp_path / "CROP.tif", index.labels(TRANSFORM, (N, N), "EPSG:2154"), TRANSFORM, "EPSG:2154"
    )
    with rasterio.open(out) as src:
        got = src.read()
        assert (src.count, src.dtypes[0], src.nodata) == (3, "uint8", 255)
        assert src.crs.to_epsg() == 2154
    exp1 = _expected(PARCELS, LEVEL1, 22)
    exp2 = _expected(PARCELS, LEVEL2_BY_GROUP, 200)
    assert {1, 3, 0, 22} <= set(np.unique(exp1).tolist())  # every parcel and background seen
    np.testing.assert_array_equal(got[0], exp1)
    np.testing.assert_array_equal(got[1], exp2)
    assert (got[2] == 255).all()
    meta = index.describe()
    assert (meta["parcels"], meta["repaired"], meta["dropped"]) == (5, 1, 0)
    assert meta["levels"]["level_3"]["table"] is None


def test_unmapped_code_listed_with_its_area(tmp_path: Path) -> None:
    """A code missing from the table: one line naming the file, the code and its m²."""
    parcels = [*PARCELS[:2], (6, "XYZ", 1, box(X0, Y0 - 4, X0 + 5, Y0))]  # 20 m²
    rpg = _write_rpg(tmp_path / "rpg.gpkg", parcels)
    with pytest.raises(InputError) as err:
        CropIndex.from_file(rpg, _tables(tmp_path, level2=False))
    msg = str(err.value)
    assert str(rpg) in msg and "XYZ (20 m²)" in msg and "level1.csv" in msg and "\n" not in msg


def test_layer_without_code_cultu_names_its_fields(tmp_path: Path) -> None:
    """No CODE_CULTU: one line naming the file and the fields it has."""
    rpg = _write_rpg(tmp_path / "rpg.gpkg", PARCELS[:2], fields=("CULTURE", "GROUPE"))
    with pytest.raises(
        InputError, match=r"has no field CODE_CULTU \(fields: \['CULTURE', 'GROUPE'\]\)"
    ) as err:
        CropIndex.from_file(rpg, _tables(tmp_path, level2=False))
    assert str(rpg) in str(err.value)


def test_bbox_reads_only_parcels_near_the_grid(tmp_path: Path) -> None:
    """With the grid's bounds, a far parcel of a code not in the table is not read (the
    step passes them for a Lambert-93 RPG: a department's file needs rows only for its
    domain's codes); without, it is refused."""
    far = (7, "XYZ", 1, box(X0 + 5000, Y0 - 5000, X0 + 5010, Y0 - 4990))
    rpg = _write_rpg(tmp_path / "rpg.gpkg", [*PARCELS[:2], far])
    tables = _tables(tmp_path, level2=False)
    index = CropIndex.from_file(rpg, tables, bbox=(X0, Y0 - N, X0 + N, Y0))
    assert index.describe()["parcels"] == 2
    with pytest.raises(InputError, match=r"XYZ \(100 m²\)"):
        CropIndex.from_file(rpg, tables)
