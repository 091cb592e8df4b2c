"""The ``departement`` world: thousands of IGN-named dalles that reuse a few files.

A tiny département (6 × 6 dalles of 100 m, 4 archetypes) is generated once; the names,
positions and pixels of its dalles are checked against the naming rule and the reused
files read by hand, its labels against the density asked, and the pipeline's mosaic and
area choice against the dalles' footprints.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from click.testing import CliRunner

from flair_pipeline.cli import cli
from flair_pipeline.config import SamplingConfig
from flair_pipeline.dataset.areas import footprint_coverage
from flair_pipeline.dataset.mosaic import Mosaic
from flair_pipeline.dataset.patch_writers import build_aerial_patches, build_label_masks
from flair_pipeline.dataset.rasterize import read_labels
from flair_pipeline.dataset.sampling import sample_patches
from flair_pipeline.errors import FlairPipelineError
from flair_pipeline.geo.vrt_index import vrt_sources
from flair_pipeline.layout import DatasetLayout
from flair_pipeline.nomenclature import FLAIR_SHARES
from flair_pipeline.sentinel2.provider import Grid
from flair_pipeline.sentinel2.stac import StacProvider
from flair_pipeline.sources.domain_spec import resolve
from flair_pipeline.synthetic.departement import (
    generate_departement,
    make_archetype,
    make_plan,
)

N, PX = 6, 500  # 6 x 6 dalles of 500 px (100 m)
SCALE = (N * PX * 0.2 / 78_000) ** 2


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("dept")
    s = generate_departement(raw, SCALE, 0, dalle_px=PX, archetypes=4, s2_dates=2)
    assert s.plan.n == N and s.labels == N * N * 25
    return raw


def _folder(raw: Path) -> Path:
    return raw / "domains" / "D049_2022"


def test_dalle_names_and_positions_follow_igns_rule(world: Path) -> None:
    """Names from the rule by hand: <dept>-<year>-<x>-<y>-LA93-0M20[-IRC]-E080, x/y the
    upper-left corner (metres for 100 m dalles, km for IGN's 1 km). Planted bug (the
    lower-left corner in the name): the names differ."""
    plan = make_plan(SCALE, 0, PX, 4)
    dalles = pyogrio.read_dataframe(_folder(world) / "ortho/dalles.gpkg")
    assert len(dalles) == 2 * N * N
    for row in dalles.itertuples():
        x0, y0, x1, y1 = row.geometry.bounds
        assert (x1 - x0, y1 - y0) == (100.0, 100.0)
        irc = "-IRC" if row.produit == "IRC" else ""
        assert row.nom == f"49-2022-{round(x0):07d}-{round(y1):07d}-LA93-0M20{irc}-E080.jp2"
        assert (x0 - plan.left) % 100 == 0 and (plan.top - y1) % 100 == 0
    assert {(r.geometry.bounds[0], r.geometry.bounds[3]) for r in dalles.itertuples()} == {
        (plan.left + 100 * c, plan.top - 100 * r) for r in range(N) for c in range(N)
    }
    km = make_plan(1.0)  # IGN's dalles: 1 km, 5000 px, km on 4 digits
    x, y = round(km.left / 1000) + 2, round(km.top / 1000) - 1
    assert km.dalle_name(1, 2) == f"49-2022-{x:04d}-{y:04d}-LA93-0M20-E080"
    assert km.dalle_name(1, 2, irc=True) == f"49-2022-{x:04d}-{y:04d}-LA93-0M20-IRC-E080"
    assert km.n == 78 and km.dalle_m == 1000.0
    # the VRT index places the same dalles (footprints from its XML)
    vrt = next((_folder(world) / "ortho").glob("*-LA93-0M20-E080.vrt"))
    foot = {t.bounds for t in vrt_sources(vrt)}
    assert foot == {tuple(r.geometry.bounds) for r in dalles[dalles.produit == "RVB"].itertuples()}
    assert len(list((_folder(world) / "ortho/sources").glob("*.jp2"))) == 8  # 4 x RVB, IRC


def test_a_pixel_through_the_index_is_the_reused_files_pixel(world: Path) -> None:
    """The pixel at (row, col) of the mosaic is pixel (row - 500 r, col - 500 c) of the file
    dalle (r, c) reuses (by hand, rasterio on that file); NIR is IRC's band 1."""
    folder = _folder(world)
    dalles = pyogrio.read_dataframe(folder / "ortho/dalles.gpkg")
    plan = make_plan(SCALE, 0, PX, 4)
    rng = np.random.default_rng(1)
    with Mosaic(resolve(folder).ortho, resolution=0.2) as m:
        for row, col in rng.integers(0, N * PX, (6, 2)).tolist():
            r, c = row // PX, col // PX
            x, y = plan.left + col * 0.2, plan.top - row * 0.2
            px, ok = m.read((x, y - 0.2, x + 0.2, y))
            for product, bands in (("RVB", [0, 1, 2]), ("IRC", [3])):
                hit = dalles[
                    (dalles.produit == product)
                    & dalles.geometry.contains_properly(
                        shapely.Point(plan.left + 100 * c + 50, plan.top - 100 * r - 50)
                    )
                ]
                (source,) = hit["source"].tolist()
                with rasterio.open(folder / "ortho" / source) as src:
                    want = src.read(
                        window=((row - PX * r, row - PX * r + 1), (col - PX * c, col - PX * c + 1))
                    )[:, 0, 0]
                assert px[bands, 0, 0].tolist() == (want if product == "RVB" else want[:1]).tolist()
            assert ok.all()


def test_labels_are_at_the_density_asked_with_flair_like_shares(world: Path) -> None:
    """2,500 polygons per km² (exact for 100 m dalles: 5 x 5 parcels), tiling the dalles;
    class shares of a 1 km archetype set near FLAIR's (merged classes, by parcel area).
    Planted bug (parcels per row rounded down by one): the count fails."""
    labels = pyogrio.read_dataframe(_folder(world) / "labels.gpkg", layer="labels")
    area_km2 = (N * 0.1) ** 2
    assert abs(len(labels) / area_km2 - 2500) / 2500 < 0.02
    assert labels["code"].dtype == np.int32 and labels["code"].between(1, 19).all()
    assert abs(labels.area.sum() - area_km2 * 1e6) < 1e-3  # the parcels tile the dalles
    assert pyogrio.read_info(_folder(world) / "labels.gpkg")["capabilities"]["fast_spatial_filter"]
    plan = make_plan(1.0, 0)
    archs = [make_archetype(plan, k, 2500.0) for k in range(16)]
    area = np.zeros(13)
    for a in archs:
        w = (a.boxes[:, 2] - a.boxes[:, 0]) * (a.boxes[:, 3] - a.boxes[:, 1])
        for code, ar in zip(a.codes.tolist(), w.tolist(), strict=True):
            area[min(code, 13) - 1] += ar
        assert len(a.codes) == 2500
    shares = area / area.sum()
    want = np.array(list(FLAIR_SHARES.values())) / sum(FLAIR_SHARES.values())
    assert np.abs(shares - want).max() < 0.04, (shares.round(3), want.round(3))


def test_the_mosaic_and_the_areas_see_the_dalles_footprints(world: Path, tmp_path: Path) -> None:
    """The pipeline opens the domain through domain.yaml; the mosaic lists 36 dalles per
    product from the VRTs' XML; a dalle removed from the indexes is a hole the areas'
    coverage sees, no pixel read. Planted bug (the VRT taken as one tile): the hole is
    covered and the area over it chosen."""
    copy = tmp_path / "D049_2022"
    shutil.copytree(_folder(world), copy)
    with Mosaic(resolve(copy).ortho, resolution=0.2) as m:
        assert {k: len(v) for k, v in m.vrt.product_tiles.items()} == {
            "bd_ortho_rvb": N * N,
            "bd_ortho_irc": N * N,
        }
    plan = make_plan(SCALE, 0, PX, 4)
    for vrt in (copy / "ortho").glob("*.vrt"):  # drop dalle (0, 0) from every band
        xml = vrt.read_text()
        xml = re.sub(
            r'<SimpleSource>((?!</SimpleSource>).)*?<DstRect xOff="0" yOff="0"'
            r"[^>]*/></SimpleSource>",
            "",
            xml,
        )
        vrt.write_text(xml)
    labels = pyogrio.read_dataframe(copy / "labels.gpkg")
    cfg = SamplingConfig(
        patch_size=250, zone_size_m=100.0, areas_per_domain=2, area_strategy="grid"
    )
    with Mosaic(resolve(copy).ortho, resolution=0.2) as m:
        assert len(m.vrt.product_tiles["bd_ortho_rvb"]) == N * N - 1
        boxes = shapely.box(
            np.array([plan.left, plan.left + 100]),
            plan.top - 100,
            np.array([plan.left + 100, plan.left + 200]),
            plan.top,
        )
        assert footprint_coverage(m, boxes).tolist() == [0.0, 1.0]
        grid, report = sample_patches("D049_2022", m, labels, cfg)
    assert report.areas.chosen == ((0, 1), (0, 2))  # area (0, 0) is the hole
    assert len(grid) == 8  # 2 areas of 2 x 2 patches of 50 m


def test_sentinel2_covers_the_departement(world: Path) -> None:
    """The catalogue's items cover the mosaic: the project's STAC reader fills a grid at
    its far corner with every date."""
    plan = make_plan(SCALE, 0, PX, 4)
    x1, y0 = plan.bounds[2], plan.bounds[1]
    grid = Grid.around((x1 - 100, y0, x1, y0 + 100))
    (series,) = StacProvider(catalog=world / "sentinel2/catalog.json").fetch(
        [grid], dt.date(2022, 1, 1), dt.date(2022, 12, 31)
    )
    assert len(series.dates) == 2 and series.data.shape[1:] == (10, 10, 10)
    assert (series.data > 0).all()


def test_the_cli_writes_a_departement(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli,
        [
            "synth",
            "--out",
            str(tmp_path),
            "--scenario",
            "departement",
            "--scale",
            "1e-5",
            "--dalle-px",
            "250",
            "--archetypes",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "5 × 5 dalles of 50 m" in res.output
    assert (tmp_path / "domains/D049_2022/domain.yaml").is_file()


def test_another_worlds_raw_root_is_refused(tmp_path: Path) -> None:
    """Its sentinel2/ catalogue would be replaced: one line naming the folder and the fix."""
    (tmp_path / "domains/D033_2021").mkdir(parents=True)
    with pytest.raises(FlairPipelineError, match=r"another world's domains \(D033_2021.*--out"):
        generate_departement(tmp_path, 1e-5, dalle_px=250, archetypes=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["domains"]  # nothing written


def test_patches_built_from_it_have_the_labels_of_their_dalles_archetype(
    world: Path, tmp_path: Path
) -> None:
    """IMG and MSK are written through the VRTs (ortho, DSM, DTM); a MSK pixel is the code of
    the parcel of the reused archetype under it (by hand: the pixel centre in the dalle's
    frame against the archetype's boxes), so pixels and labels agree everywhere."""
    folder = _folder(world)
    inputs = resolve(folder)
    labels = read_labels(inputs.labels, mapping=inputs.mapping)
    cfg = SamplingConfig(patch_size=250, zone_size_m=100.0, areas_per_domain=2)
    with Mosaic(inputs.ortho, resolution=0.2) as m:
        grid, _ = sample_patches("D049_2022", m, labels, cfg)
    layout = DatasetLayout(tmp_path / "ds")
    a = build_aerial_patches(grid, inputs.ortho, inputs.dsm, inputs.dtm, layout, 250, 5.0)
    b = build_label_masks(grid, inputs.labels, layout, 250, 0.2, mapping=inputs.mapping)
    assert a.written == b.written == len(grid) == 8 and not a.skipped and not b.skipped
    plan = make_plan(SCALE, 0, PX, 4)
    archs = [make_archetype(plan, k, 2500.0) for k in range(4)]
    kinds = plan.archetype_of()
    msks = sorted((tmp_path / "ds").rglob("MSK_*.tif"))
    assert len(msks) == 8
    for path in msks[:3]:
        with rasterio.open(path) as src:
            msk, t = src.read(1), src.transform
        for i, j in ((0, 0), (125, 77), (249, 249)):
            x, y = t.c + (j + 0.5) * 0.2, t.f - (i + 0.5) * 0.2
            c, r = int((x - plan.left) // 100), int((plan.top - y) // 100)
            u, v = x - plan.left - 100 * c, plan.top - y - 100 * r  # in the dalle's frame
            bx = archs[kinds[r, c]].boxes
            inside = (bx[:, 0] <= u) & (u < bx[:, 2]) & (bx[:, 1] <= v) & (v < bx[:, 3])
            (k,) = np.flatnonzero(inside)
            assert msk[i, j] == archs[kinds[r, c]].codes[k]


def test_dalles_behind_the_vrt_are_decoded_with_the_configured_threads(world: Path) -> None:
    """The products are one VRT each, their dalles JPEG 2000: sampling.jp2_decode_threads
    applies to them and is recorded. Planted bug (only the products' own files looked at,
    as before): no decision line, GDAL's default threads."""
    with Mosaic(resolve(_folder(world)).ortho, resolution=0.2, decode_threads=1) as m:
        lines = [d for d in m.vrt.decisions if "JPEG 2000" in d]
    assert len(lines) == 1 and f"{2 * N * N} JPEG 2000 tile(s)" in lines[0], lines
    assert "jp2_decode_threads 1 thread(s)" in lines[0]
