"""Candidates' coverage read at reduced resolution, the exact check on the kept patches (issue 27).

``sampling.coverage_read`` overview reads each candidate at 1/``coverage_decimation``
(GeoTIFF and JPEG 2000 tiles written here), reads at full resolution only the cells a
nodata edge crosses, and the IMG step skips a kept patch whose exact nodata share exceeds
the tolerance. Expected shares are plain numpy counts on the arrays written.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from flair_pipeline.config import SamplingConfig
from flair_pipeline.dataset.coarse_coverage import coverage_mode
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.patch_writers import build_aerial_patches
from flair_pipeline.dataset.sampling import patch_id, sample_patches
from flair_pipeline.domains import DomainId
from flair_pipeline.layout import DatasetLayout

X0, Y1 = 700000.0, 6600000.0
RES = 0.2
P = 128  # patch side, px
D = 8  # decimation: 16 coarse pixels a side, margin (2 * 16 - 1) / 256 = 12.1 %
N = 4  # cells a side
SIDE = N * P
TOL = 0.05
DOMAIN = "D033_2021"
MARGIN = 31 / 256


def _world() -> tuple[np.ndarray, np.ndarray]:
    """R, G, B, NIR pixels (255 on every band = nodata) and the middle tile's mask (0 = hidden).

    Cells (row, col) of 128 px: column 0 all nodata (a border 136 px wide, so column 1
    has 8 px of it: 6.25 %, an edge); column 3 half nodata (its right 64 px); in
    column 2, cell (0, 2) has scattered single nodata pixels (every other pixel of every
    8th row: 6.25 %, between a 1/8 read's samples), and the mask hides 64 x 64 px of
    (1, 2) (25 %), 10 columns of (2, 2) (7.8 %, an edge), 3 columns of (3, 2) (2.3 %).
    """
    data = np.random.default_rng(7).integers(1, 255, (4, SIDE, SIDE), dtype=np.uint8)
    data[:, :, : P + 8] = 255
    data[:, :, SIDE - 64 :] = 255
    rows = np.arange(0, P, 8)
    cols = np.arange(2 * P, 3 * P, 2)
    data[:, rows[:, None], cols[None, :]] = 255
    mask = np.full((SIDE, SIDE), 255, np.uint8)
    mask[P + 64 : 2 * P, 2 * P + 64 : 3 * P] = 0
    mask[2 * P : 3 * P, 2 * P : 2 * P + 10] = 0
    mask[3 * P : 4 * P, 2 * P : 2 * P + 3] = 0
    return data, mask


def _write(path: Path, arr: np.ndarray, c0: int, c1: int, **kw: object) -> None:
    with rasterio.open(
        path,
        "w",
        width=c1 - c0,
        height=arr.shape[1],
        count=4,
        dtype="uint8",
        crs="EPSG:2154",
        transform=from_origin(X0 + c0 * RES, Y1, RES, RES),
        nodata=255,
        **kw,
    ) as dst:
        dst.write(arr[:, :, c0:c1])


def _geotiffs(folder: Path) -> np.ndarray:
    """Three tiles by columns (0-255, 256-383 with an internal mask, 384-511); hidden pixels."""
    data, mask = _world()
    folder.mkdir(parents=True)
    _write(folder / "a.tif", data, 0, 2 * P, driver="GTiff")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        _write(folder / "b.tif", data, 2 * P, 3 * P, driver="GTiff")
        with rasterio.open(folder / "b.tif", "r+") as dst:
            dst.write_mask(mask[:, 2 * P : 3 * P])
    _write(folder / "c.tif", data, 3 * P, SIDE, driver="GTiff")
    return (data == 255).all(axis=0) | (mask == 0)


def _shares(hidden: np.ndarray) -> dict[tuple[int, int], float]:
    return {
        (r, c): float(hidden[r * P : (r + 1) * P, c * P : (c + 1) * P].mean())
        for r in range(N)
        for c in range(N)
    }


def _labels() -> gpd.GeoDataFrame:
    box = shapely.box(X0, Y1 - SIDE * RES, X0 + SIDE * RES, Y1)
    return gpd.GeoDataFrame({"code": [1]}, geometry=[box], crs="EPSG:2154")


def _sample(folder: Path, mode: str) -> tuple[gpd.GeoDataFrame, object]:
    cfg = SamplingConfig(
        patch_size=P, max_nodata_fraction=TOL, coverage_read=mode, coverage_decimation=D
    )
    with Mosaic(folder) as mosaic:
        return sample_patches(DOMAIN, mosaic, _labels(), cfg)


def _cells(grid: gpd.GeoDataFrame) -> set[tuple[int, int]]:
    return set(zip(grid["row"].tolist(), grid["col"].tolist(), strict=True))


def test_overview_decides_clear_cells_coarse_and_reads_edges_at_full_resolution(
    tmp_path: Path,
) -> None:
    hidden = _geotiffs(tmp_path / "ortho")
    share = _shares(hidden)
    # by hand: the shares the layout was drawn with
    assert share[(0, 0)] == 1.0 and share[(0, 1)] == 8 / 128 and share[(0, 3)] == 0.5
    assert share[(0, 2)] == 1024 / P**2 and share[(1, 2)] == 0.25
    assert share[(2, 2)] == 10 / 128 and share[(3, 2)] == 3 / 128
    want = {k for k, v in share.items() if v <= TOL}
    edges = {k for k, v in share.items() if TOL < v <= TOL + MARGIN and k != (0, 2)}
    assert edges == {(r, 1) for r in range(N)} | {(2, 2)}

    full, full_report = _sample(tmp_path / "ortho", "full")
    grid, report = _sample(tmp_path / "ortho", "overview")
    assert _cells(full) == want and full_report.read == 16  # every cell read in full
    # overview: the same rejections (the scattered nodata of (0, 2) is not seen: kept)
    assert _cells(grid) == want | {(0, 2)}
    assert full_report.rejected["nodata"] == 16 - len(want)
    assert report.rejected["nodata"] == 16 - len(want) - 1
    # only the edge cells are read at full resolution; the others are decided coarse
    assert report.read == len(edges) and report.coarse == 16 - len(edges)
    assert report.coverage is not None and report.coverage.overview
    assert "coverage_decimation" not in full.columns  # a full grid keeps its columns
    assert set(grid["coverage_decimation"]) == {D}  # every kept cell decided coarse
    est = dict(zip(zip(grid["row"], grid["col"], strict=True), grid["valid_fraction"], strict=True))
    assert est[(0, 2)] == 1.0  # an estimate: the coarse read saw no nodata
    # a cell the coarse read sees whole keeps the exact share (no nodata at all)
    exact = dict(
        zip(zip(full["row"], full["col"], strict=True), full["valid_fraction"], strict=True)
    )
    for k in want:
        assert exact[k] == pytest.approx(1.0 - share[k])
        if share[k] == 0:
            assert est[k] == 1.0


def test_the_img_step_skips_a_kept_patch_over_the_tolerance_and_names_it(tmp_path: Path) -> None:
    hidden = _geotiffs(tmp_path / "ortho")
    share = _shares(hidden)
    grid, _ = _sample(tmp_path / "ortho", "overview")
    surface = tmp_path / "dsm.tif"
    with rasterio.open(
        surface, "w", driver="GTiff", width=128, height=128, count=1, dtype="float32",
        crs="EPSG:2154", transform=from_origin(X0, Y1, 1.0, 1.0),
    ) as dst:  # fmt: skip
        dst.write(np.zeros((1, 128, 128), np.float32))
    ds = DatasetLayout(tmp_path / "ds")
    built = build_aerial_patches(
        grid, tmp_path / "ortho", surface, surface, ds, P, 5.0, max_nodata=TOL
    )
    bad = patch_id(DomainId.parse(DOMAIN), 0, 2)
    assert built.written == len(grid) - 1 and [p for p, _ in built.skipped] == [bad]
    why = built.skipped[0][1]
    assert "\n" not in why and f"{100 * share[(0, 2)]:.2f} %" in why  # 6.25 %, numpy's count
    assert "tolerance 5 %" in why and f"the coarse check at 1/{D} estimated 0.00 %" in why
    row = grid[grid["patch_id"] == bad].iloc[0]
    assert not ds.img(DOMAIN, row.zone, bad).exists()  # never written
    # a full grid's patches pass the exact check again: every one written
    full, _ = _sample(tmp_path / "ortho", "full")
    again = build_aerial_patches(
        full, tmp_path / "ortho", surface, surface, DatasetLayout(tmp_path / "ds2"), P, 5.0,
        max_nodata=TOL,
    )  # fmt: skip
    assert again.written == len(full) and not again.skipped


def test_jpeg2000_tiles_build_the_same_patches_as_a_full_read(tmp_path: Path) -> None:
    """Lossless JPEG 2000 tiles: GDAL reads 1/8 from their resolution levels (wavelet
    averages, not samples); whatever the coarse read estimates, the patches written are
    those a full read keeps, and each patch the IMG step skips is over the tolerance."""
    data, _ = _world()
    folder = tmp_path / "ortho"
    folder.mkdir()
    jp2 = {"driver": "JP2OpenJPEG", "QUALITY": "100", "REVERSIBLE": "YES", "YCBCR420": "NO"}
    _write(folder / "a.jp2", data, 0, 2 * P, **jp2)
    _write(folder / "b.jp2", data, 2 * P, SIDE, **jp2)
    with rasterio.open(folder / "b.jp2") as src:
        assert src.nodata == 255 and src.overviews(1)  # declared; resolution levels
    share = _shares((data == 255).all(axis=0))
    want = {k for k, v in share.items() if v <= TOL}
    grid, report = _sample(folder, "overview")
    assert report.coarse > 0 and report.read < 16
    assert _cells(grid) >= want
    surface = tmp_path / "dsm.tif"
    with rasterio.open(
        surface, "w", driver="GTiff", width=128, height=128, count=1, dtype="float32",
        crs="EPSG:2154", transform=from_origin(X0, Y1, 1.0, 1.0),
    ) as dst:  # fmt: skip
        dst.write(np.zeros((1, 128, 128), np.float32))
    ds = DatasetLayout(tmp_path / "ds")
    built = build_aerial_patches(grid, folder, surface, surface, ds, P, 5.0, max_nodata=TOL)
    written = {
        (int(r.row), int(r.col))
        for r in grid.itertuples()
        if ds.img(DOMAIN, r.zone, r.patch_id).exists()
    }
    assert written == want and built.written == len(want)
    did = DomainId.parse(DOMAIN)
    for pid, why in built.skipped:
        cell = next(k for k in share if patch_id(did, *k) == pid)
        assert share[cell] > TOL and f"{100 * share[cell]:.2f} %" in why
    assert patch_id(did, 0, 2) in {p for p, _ in built.skipped}


def _row_of_tiles(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    px = np.full((4, 16, 16), 9, np.uint8)
    for i in range(n):
        with rasterio.open(
            folder / f"t{i:03d}.tif", "w", driver="GTiff", width=16, height=16, count=4,
            dtype="uint8", crs="EPSG:2154", transform=from_origin(X0 + i * 16 * RES, Y1, RES, RES),
        ) as dst:  # fmt: skip
            dst.write(px)
    return folder


@pytest.mark.parametrize(("tiles", "overview"), [(100, False), (101, True)])
def test_auto_reads_overview_above_100_tiles_a_product(
    tiles: int, overview: bool, tmp_path: Path
) -> None:
    with Mosaic(_row_of_tiles(tmp_path / "ortho", tiles)) as mosaic:
        mode = coverage_mode(mosaic, SamplingConfig(coverage_read="auto"))
        full = coverage_mode(mosaic, SamplingConfig(coverage_read="full"))
    assert mode.overview is overview and mode.line is not None and "auto" in mode.line
    assert f"{tiles} tiles" in mode.line and not full.overview and full.line is None


def test_a_domain_built_in_overview_names_a_missing_product_as_a_full_read_does(
    tmp_path: Path,
) -> None:
    """RVB over 128 m, IRC over its left 64 m only: the same rejections and patches in both
    modes, through the domain's steps; overview says so in the grid's decisions."""
    from flair_pipeline.config import config_from_dict
    from flair_pipeline.dataset.build import build_domain_patches
    from flair_pipeline.dataset.domain_context import DomainContext
    from flair_pipeline.layout import RawLayout
    from tests.dataset.test_coverage import _pixels, _spec_domain, _tif

    raw = tmp_path / "raw"
    folder = RawLayout(raw).domain(DOMAIN)
    _tif(folder / "ortho" / "rvb_a.tif", _pixels(3, 320, 320, 1), RES)
    _tif(folder / "ortho" / "rvb_b.tif", _pixels(3, 320, 320, 2), RES, x0=X0 + 64.0)
    _tif(folder / "ortho" / "irc_a.tif", _pixels(3, 320, 320, 3), RES)
    _spec_domain(
        raw,
        [
            {"name": "rvb", "glob": "ortho/rvb_*.tif", "bands": {"R": 1, "G": 2, "B": 3}},
            {"name": "irc", "glob": "ortho/irc_*.tif", "bands": {"NIR": 1}},
        ],
    )
    reports = {}
    for mode in ("full", "overview"):
        cfg = config_from_dict(
            {"sampling": {"patch_size": 64, "zone_size_m": 60, "coverage_read": mode,
                          "coverage_decimation": 8}}
        )  # fmt: skip
        ds = DatasetLayout(tmp_path / mode)
        reports[mode] = build_domain_patches(DomainContext.open(DOMAIN, RawLayout(raw), ds, cfg))
    full, over = reports["full"].grid, reports["overview"].grid
    # by hand: tile a is lattice columns 0-4 (64 m / 12.8 m), tile b columns 5-9
    for g in (full, over):
        assert g.patches == 25 and g.rejected["ortho product irc missing"] == 25
        assert g.rejected["nodata"] == 0
    assert [w for w in over.warnings if "irc" in w] == [w for w in full.warnings if "irc" in w]
    assert (full.coverage_read, full.candidates_read, full.candidates_coarse) == ("full", 50, 0)
    assert (over.coverage_read, over.candidates_read, over.candidates_coarse) == ("overview", 0, 50)
    assert over.as_metadata()["coverage_read"] == "overview"
    assert any("read at 1/8 resolution" in d for d in over.decisions)
    assert not any("coverage" in d for d in full.decisions)  # explicit full: nothing to say
    assert reports["overview"].images.written == reports["full"].images.written == 25
