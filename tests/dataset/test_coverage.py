"""Where the ortho has data, as the build sees it (issue 29).

A dataset mask or an alpha band is nodata just as a nodata value is; every product of a
multi-product ortho must cover a patch; a tile at another pixel size than
``sampling.resolution`` is refused up front, or resampled onto it. Rasters are written here,
small; expected values come from the arrays written (numpy loops) or from rasterio's own
``WarpedVRT``, never from the reader under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import yaml
from rasterio.enums import ColorInterp, Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT

from flair_pipeline.config import SamplingConfig, config_from_dict
from flair_pipeline.dataset.build import build_domain_patches
from flair_pipeline.dataset.domain_context import DomainContext
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.patch_writers import build_aerial_patches
from flair_pipeline.dataset.sampling import sample_patches
from flair_pipeline.errors import InputError
from flair_pipeline.layout import DatasetLayout, RawLayout

X0, Y1 = 700000.0, 6600000.0
RES = 0.2
P = 64  # patch side, px
DOMAIN = "D033_2021"


def _tif(path: Path, arr: np.ndarray, res: float, x0: float = X0, **kw) -> Path:
    arr = arr if arr.ndim == 3 else arr[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype=arr.dtype,
        crs="EPSG:2154",
        transform=from_origin(x0, Y1, res, res),
        **kw,
    ) as dst:
        dst.write(arr)
    return path


def _pixels(bands: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 255, (bands, h, w), dtype=np.uint8)


def _labels(width_m: float, height_m: float) -> gpd.GeoDataFrame:
    box = shapely.box(X0, Y1 - height_m, X0 + width_m, Y1)
    return gpd.GeoDataFrame({"code": [1]}, geometry=[box], crs="EPSG:2154")


# --- a dataset mask or an alpha band is nodata, as a nodata value is ---------------------

SIDE = 4 * P  # one tile of 4 x 4 candidate patches


def _hidden() -> np.ndarray:
    """A disc of hidden pixels over some patches, and a 12 x 12 px speck in patch (3, 3)."""
    rows, cols = np.mgrid[0:SIDE, 0:SIDE]
    speck = (rows >= 220) & (rows < 232) & (cols >= 220) & (cols < 232)  # 3.5 %: kept
    return ((rows - 100) ** 2 + (cols - 60) ** 2 < 55**2) | speck


def _tile_with(kind: str, folder: Path) -> tuple[Path, np.ndarray]:
    """One R, G, B, NIR tile whose `_hidden()` pixels are no data by `kind`; its pixels."""
    hidden = _hidden()
    data = _pixels(4, SIDE, SIDE)
    path = folder / "ortho" / "a.tif"
    if kind == "nodata":
        data[:, hidden] = 0
        _tif(path, data, RES, nodata=0)
    elif kind in ("internal mask", ".msk file"):
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=kind == "internal mask"):
            _tif(path, data, RES)
            with rasterio.open(path, "r+") as dst:
                dst.write_mask(np.where(hidden, 0, 255).astype(np.uint8))
        assert (path.with_name("a.tif.msk").exists()) == (kind == ".msk file")
    else:  # a fifth band declared alpha, 0 over the hidden part
        alpha = np.where(hidden, 0, 255).astype(np.uint8)[None]
        _tif(path, np.concatenate([data, alpha]), RES)
        with rasterio.open(path, "r+") as dst:
            ci = ColorInterp
            dst.colorinterp = [ci.red, ci.green, ci.blue, ci.undefined, ci.alpha]
    return path, data


@pytest.mark.parametrize("kind", ["nodata", "internal mask", ".msk file", "alpha"])
def test_masked_and_alpha_pixels_reject_patches_as_nodata_does(kind: str, tmp_path: Path) -> None:
    _, data = _tile_with(kind, tmp_path)
    hidden = _hidden()
    cfg = SamplingConfig(patch_size=P, max_nodata_fraction=0.05)
    # by hand: a patch is kept when at most 5 % of its pixels are hidden
    share = {
        (r, c): hidden[r * P : (r + 1) * P, c * P : (c + 1) * P].mean()
        for r in range(4)
        for c in range(4)
    }
    want = {k for k, v in share.items() if v <= 0.05}
    partly = [k for k in want if share[k] > 0]
    assert 0 < len(want) < 16 and partly  # both kinds of patch, one kept with a few hidden

    with Mosaic(tmp_path / "ortho") as mosaic:
        grid, report = sample_patches(DOMAIN, mosaic, _labels(SIDE * RES, SIDE * RES), cfg)
    assert set(zip(grid["row"], grid["col"], strict=True)) == want
    assert report.rejected["nodata"] == 16 - len(want)

    # the IMG of a kept patch: hidden pixels are 0, the others the tile's own values
    surface = _tif(tmp_path / "dsm.tif", np.zeros((1, 64, 64), np.float32), 1.0)
    ds = DatasetLayout(tmp_path / "ds")
    built = build_aerial_patches(grid, tmp_path / "ortho", surface, surface, ds, P, 5.0)
    assert built.written == len(want) and not built.skipped
    r, c = partly[0]
    row = grid[(grid["row"] == r) & (grid["col"] == c)].iloc[0]
    with rasterio.open(ds.img(DOMAIN, row.zone, row.patch_id)) as src:
        img = src.read()
    win = np.s_[r * P : (r + 1) * P, c * P : (c + 1) * P]
    want_img = np.where(hidden[win][None], 0, data[:, win[0], win[1]])
    assert np.array_equal(img[:4], want_img)


def test_an_alpha_band_mapped_as_nir_is_data_and_the_decision_is_recorded(
    tmp_path: Path,
) -> None:
    data = _pixels(4, SIDE, SIDE)
    data[3, :P, :] = 0  # NIR 0 over the first row of patches: dark water, not a hole
    _tif(tmp_path / "ortho" / "a.tif", data, RES)  # GDAL declares band 4 of such a file alpha
    with rasterio.open(tmp_path / "ortho" / "a.tif") as src:
        assert src.colorinterp[3] == ColorInterp.alpha
    with Mosaic(tmp_path / "ortho") as mosaic:
        grid, _ = sample_patches(
            DOMAIN, mosaic, _labels(SIDE * RES, SIDE * RES), SamplingConfig(patch_size=P)
        )
        decisions = mosaic.vrt.decisions
    assert len(grid) == 16  # the mapping says NIR: read as NIR
    assert len(decisions) == 1 and "declared alpha but mapped to NIR" in decisions[0]


# --- a spec domain: multi-product orthos, pixel sizes ---------------------------------


def _spec_domain(raw: Path, ortho: list[dict], width_m: float = 128.0) -> Path:
    folder = RawLayout(raw).domain(DOMAIN)
    folder.mkdir(parents=True, exist_ok=True)
    height_m = 64.0
    dsm = np.full((1, int(height_m), int(width_m)), 12.0, np.float32)
    _tif(folder / "dsm.tif", dsm, 1.0)
    _tif(folder / "dtm.tif", dsm - 10.0, 1.0)
    _labels(width_m, height_m).to_file(folder / "labels.gpkg", layer="labels", driver="GPKG")
    spec = {
        "ortho": ortho,
        "dsm": {"glob": "dsm.tif"},
        "dtm": {"glob": "dtm.tif"},
        "labels": {"glob": "labels.gpkg"},
        "acquisition": {"date": "2021-06-14", "time": "10:30:00", "camera": "UCE-M3"},
    }
    (folder / "domain.yaml").write_text(yaml.safe_dump(spec))
    return folder


def _cfg(**sampling: object) -> object:
    return config_from_dict({"sampling": {"patch_size": P, "zone_size_m": 60, **sampling}})


def test_a_patch_one_product_does_not_cover_is_rejected_and_named(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    folder = RawLayout(raw).domain(DOMAIN)
    rvb = [_pixels(3, 320, 320, seed) for seed in (1, 2)]
    irc = _pixels(3, 320, 320, 3)
    _tif(folder / "ortho" / "rvb_a.tif", rvb[0], RES)
    _tif(folder / "ortho" / "rvb_b.tif", rvb[1], RES, x0=X0 + 64.0)
    _tif(folder / "ortho" / "irc_a.tif", irc, RES)  # IRC over tile a only
    _spec_domain(
        raw,
        [
            {"name": "rvb", "glob": "ortho/rvb_*.tif", "bands": {"R": 1, "G": 2, "B": 3}},
            {"name": "irc", "glob": "ortho/irc_*.tif", "bands": {"NIR": 1}},
        ],
    )
    ds = DatasetLayout(tmp_path / "ds")
    report = build_domain_patches(DomainContext.open(DOMAIN, RawLayout(raw), ds, _cfg()))

    # by hand: tile a is lattice columns 0-4 (64 m / 12.8 m), tile b columns 5-9
    grid = report.grid
    assert grid.patches == 25 and grid.rejected["ortho product irc missing"] == 25
    assert grid.rejected["nodata"] == 0
    lines = [w for w in grid.warnings if "ortho product irc" in w]
    assert len(lines) == 1 and "\n" not in lines[0] and "NIR" in lines[0]
    for r, c in [(0, 5), (0, 9), (1, 5), (1, 9)]:  # the first ten lost ids are named
        assert f"{33:03d}{21:02d}{r:04d}{c:04d}" in lines[0]
    imgs = sorted((ds.root / "aerial").rglob("IMG_*.tif"))
    assert len(imgs) == 25
    for path in imgs:
        with rasterio.open(path) as src:
            img, t = src.read(), src.transform
        r0, c0 = round((Y1 - t.f) / RES), round((t.c - X0) / RES)
        assert c0 + P <= 320  # over tile a
        win = np.s_[r0 : r0 + P, c0 : c0 + P]
        assert np.array_equal(img[:3], rvb[0][:, win[0], win[1]])
        assert np.array_equal(img[3], irc[0][win])  # NIR is IRC's band 1, never zeros


def _two_resolutions(raw: Path) -> tuple[Path, Path, np.ndarray]:
    """Tile a: 0.2 m (320 px, 64 m); tile b next to it: 0.5 m (128 px, 64 m)."""
    folder = RawLayout(raw).domain(DOMAIN)
    fine = _pixels(4, 320, 320, 4)
    a = _tif(folder / "ortho" / "a-0M20.tif", fine, RES)
    b = _tif(folder / "ortho" / "b-0M50.tif", _pixels(4, 128, 128, 5), 0.5, x0=X0 + 64.0)
    bands = {"R": 1, "G": 2, "B": 3, "NIR": 4}
    _spec_domain(raw, [{"name": "rgbn", "glob": "ortho/*.tif", "bands": bands}])
    return a, b, fine


def test_a_tile_at_another_pixel_size_is_refused_up_front(tmp_path: Path) -> None:
    _, b, _ = _two_resolutions(tmp_path / "raw")
    ds = tmp_path / "ds"
    with pytest.raises(InputError) as e:
        build_domain_patches(
            DomainContext.open(DOMAIN, RawLayout(tmp_path / "raw"), DatasetLayout(ds), _cfg())
        )
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(b))
    assert "pixel size 0.5 x 0.5 m" in msg and "sampling.resolution 0.2 m" in msg
    assert "ortho_resampling" in msg
    # nothing written, not even the sources record: only the steps' (empty) build locks
    written = [p for p in ds.rglob("*") if p.is_file()]
    assert all(".locks" in p.relative_to(ds).parts and p.stat().st_size == 0 for p in written)


def test_a_tile_at_another_pixel_size_is_resampled_when_asked(tmp_path: Path) -> None:
    a, b, fine = _two_resolutions(tmp_path / "raw")
    ds = DatasetLayout(tmp_path / "ds")
    report = build_domain_patches(
        DomainContext.open(
            DOMAIN, RawLayout(tmp_path / "raw"), ds, _cfg(ortho_resampling="bilinear")
        )
    )
    assert report.grid.patches == 50  # 10 x 5 patches of 12.8 m over 128 m x 64 m
    with (
        rasterio.open(b) as src,
        WarpedVRT(
            src,
            crs=src.crs,
            transform=from_origin(X0 + 64.0, Y1, RES, RES),
            width=320,
            height=320,
            resampling=Resampling.bilinear,
        ) as view,
    ):
        warped = view.read()  # the 0.5 m tile on the 0.2 m grid, by rasterio's warper
    seen = 0
    for row in gpd.read_file(ds.patch_grid(DOMAIN)).itertuples():
        path = ds.img(DOMAIN, row.zone, row.patch_id)
        msk = ds.msk(DOMAIN, row.zone, row.patch_id)
        with rasterio.open(path) as img_src, rasterio.open(msk) as msk_src:
            img, t = img_src.read(), img_src.transform
            assert (img_src.width, img_src.height) == (P, P) and t.a == pytest.approx(RES)
            assert img_src.bounds == msk_src.bounds and t == msk_src.transform
        r0, c0 = round((Y1 - t.f) / RES), round((t.c - X0) / RES)
        if c0 >= 320:  # over tile b
            c0 -= 320
            want = warped[:, r0 : r0 + P, c0 : c0 + P]
            seen += 1
        else:
            want = fine[:, r0 : r0 + P, c0 : c0 + P]
        assert np.array_equal(img[:4], want), path.name
    assert seen == 25
    decisions = json.loads(ds.domain_metadata(DOMAIN).read_text())["decisions"]
    line = [d for d in decisions if "resampled" in d]
    assert len(line) == 1 and "bilinear" in line[0] and str(b) in line[0]
    assert "0.5 m" in line[0] and "sampling.resolution 0.2 m" in line[0]
    assert str(a) not in line[0]
