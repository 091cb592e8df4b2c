"""What the synthetic world must hold for the models to have something real to learn."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import box

from flair_pipeline.domains import DomainId
from flair_pipeline.synthetic.aerial import Radiometry, object_appearance, render_ortho
from flair_pipeline.synthetic.landcover import LandCover
from flair_pipeline.synthetic.s2_spectra import object_spectra
from flair_pipeline.synthetic.world import SCENARIOS, domain_landcover


def _ndvi(s: np.ndarray) -> np.ndarray:
    return (s[:, 6] - s[:, 2]) / (s[:, 6] + s[:, 2])


def test_herbaceous_and_agricultural_alike_in_the_air() -> None:
    # many parcels of each class: their aerial colour distributions must match
    rng = np.random.default_rng(0)
    lc = LandCover()
    for i in range(20):
        for j in range(20):
            lc.add(box(i * 10, j * 10, i * 10 + 10, j * 10 + 10), 10 if (i + j) % 2 else 11, rng)
    app = object_appearance(lc, 3, 0.2)
    img = render_ortho(
        lc,
        shapely.STRtree(lc.geoms),
        app,
        (0, 0, 200, 200),
        (0, 200),
        0.2,
        Radiometry((1, 1, 1, 1), (0, 0, 0, 0)),
        3,
        (0, 0),
    )
    code = np.zeros(img.shape[1:], int)
    for i in range(20):
        for j in range(20):
            code[(19 - j) * 50 + 5 : (20 - j) * 50 - 5, i * 50 + 5 : (i + 1) * 50 - 5] = (
                10 if (i + j) % 2 else 11
            )
    for band in range(4):
        a = img[band][code == 10].astype(float)
        b = img[band][code == 11].astype(float)
        assert abs(a.mean() - b.mean()) < 0.1 * a.std() + 3
        assert abs(a.std() - b.std()) < 0.25 * a.std()


def test_herbaceous_and_agricultural_differ_through_the_year() -> None:
    n = 200
    phase = np.random.default_rng(1).random(n)
    variant = np.full(n, 0.5)
    doys = np.arange(5, 365, 10)
    herb = np.array([_ndvi(object_spectra(d, np.full(n, 10), phase, variant, False)) for d in doys])
    crop = np.array([_ndvi(object_spectra(d, np.full(n, 11), phase, variant, False)) for d in doys])
    # grassland green all year; crops bare for months
    assert herb.min(axis=0).mean() > 0.45
    assert crop.min(axis=0).mean() < 0.35
    assert (herb.std(axis=0) < crop.std(axis=0)).mean() > 0.9


def test_deciduous_leaf_off_in_winter_and_water_dark_in_nir() -> None:
    code = np.array([7, 6, 5])
    ph, var = np.full(3, 0.5), np.full(3, 0.5)
    winter, summer = (
        object_spectra(20, code, ph, var, False),
        object_spectra(200, code, ph, var, False),
    )
    assert _ndvi(summer)[0] > _ndvi(winter)[0] + 0.3  # deciduous
    assert abs(_ndvi(summer)[1] - _ndvi(winter)[1]) < 0.05  # coniferous
    assert summer[2, 6] < 0.05 and summer[2, 6] < summer[2, 1]  # water: NIR < green


def test_bench_holds_every_code_with_flair_like_shares() -> None:
    sc = SCENARIOS["bench"]
    area: dict[int, float] = {}
    for d in sc.domains:
        lc, bounds, _ = domain_landcover(DomainId.parse(d), sc, 0)
        extent = box(*bounds)
        for g, c in zip(lc.geoms, lc.codes, strict=True):
            if g.intersects(extent):
                area[c] = area.get(c, 0.0) + g.intersection(extent).area
    assert set(area) == set(range(1, 20))
    total = sum(area.values())
    share = {c: 100 * a / total for c, a in area.items()}
    # the big classes of FLAIR are big here too
    for code in (3, 7, 10, 11):
        assert share[code] > 5, (code, share[code])
    assert share[19] < 3 and share[13] < 2
