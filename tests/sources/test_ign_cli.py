"""The `ign` flavour from the command line, as a user runs it (docs/inputs.md).

`flair-pipeline synth --flavour ign` writes the tiny world as IGN delivers it; each file is
checked against the plain world of the same seed (the `tiny_world` fixture) read with
rasterio, geopandas and csv, never through the project's readers. Then the documented
`flair-pipeline materialize … --set paths.raw=<ign raw>` builds a domain from it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from rasterio.merge import merge
from rasterio.windows import from_bounds

from flair_pipeline.synthetic.world import WorldSummary
from tests.conftest import REPO

DOMAIN = "D033_2021"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("flair-pipeline", path=str(Path(sys.executable).parent))
    assert exe, "console script flair-pipeline not installed"
    return subprocess.run(
        [exe, *args], cwd=REPO, capture_output=True, text=True, timeout=600, env=env
    )


@pytest.fixture(scope="module")
def ign_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("ign_cli") / "raw"
    r = _cli("synth", "--flavour", "ign", "--scenario", "tiny", "--seed", "0", "--out", str(raw))
    assert r.returncode == 0, r.stderr
    assert "ign flavour: 3 domain(s) rewritten as IGN delivers them" in r.stdout, r.stdout
    return raw


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_synth_flavour_ign_writes_what_ign_delivers(tiny_world: WorldSummary, ign_raw: Path):
    for d in tiny_world.domains:
        plain, ign = tiny_world.out / "domains" / d.domain, ign_raw / "domains" / d.domain
        # no file of the project's raw layout is left: only the products as delivered
        assert not (ign / "domain.json").exists() and not (ign / "dsm.tif").exists()
        assert not (ign / "dtm.tif").exists() and not (ign / "labels.gpkg").exists()
        tiles = sorted((plain / "ortho").glob("*.tif"))
        jp2 = sorted(p.name for p in (ign / "ortho").glob("*.jp2"))
        assert len(jp2) == 2 * len(tiles) > 0
        for tile in tiles:  # 33-2021-0424300-6410202-LA93-0M20.tif
            rgbn = _read(tile)
            stem = tile.stem.removesuffix("-LA93-0M20")
            rvb, irc = (
                ign / "ortho" / f"{stem}-LA93-0M20-E080.jp2",
                ign / "ortho" / f"{stem}-LA93-0M20-IRC-E080.jp2",
            )
            for path, bands in ((rvb, [0, 1, 2]), (irc, [3, 0, 1])):  # IRC's order: NIR, R, G
                with rasterio.open(path) as src, rasterio.open(tile) as ref:
                    assert src.driver == "JP2OpenJPEG" and src.count == 3
                    assert src.transform == ref.transform and src.crs == ref.crs
                    assert np.array_equal(src.read(), rgbn[bands]), path.name  # lossless
        # RGE ALTI: .asc tiles without CRS, the DTM's 1 m grid split in two along x
        asc = sorted((ign / "rge_alti").glob("*.asc"))
        assert len(asc) == 2 and all("_MNT_LAMB93_IGN69_" in p.name for p in asc)
        assert not list((ign / "rge_alti").glob("*.prj"))
        with rasterio.open(plain / "dtm.tif") as ref:
            dtm, t = ref.read(1), ref.transform
        parts = []
        for p in asc:
            with rasterio.open(p) as src:
                assert src.driver == "AAIGrid" and src.crs is None and src.res == ref.res
                parts.append((src.transform.c, src.read(1)))
        joined = np.concatenate([a for _, a in sorted(parts, key=lambda p: p[0])], axis=1)
        assert min(c for c, _ in parts) == t.c
        np.testing.assert_allclose(joined, dtm, atol=1e-6 * np.abs(dtm).max())
        # LiDAR HD: the DSM at 0.5 m, its grid a quarter metre (half a pixel) off the plain one
        (mns,) = (ign / "lidar_hd").glob("*_MNS_O_0M50_LAMB93_IGN69.tif")
        with rasterio.open(plain / "dsm.tif") as ref, rasterio.open(mns) as src:
            assert src.res == (0.5, 0.5) and src.nodata == -9999 and src.crs == ref.crs
            assert (src.transform.c, src.transform.f) == (
                ref.transform.c - 0.25,
                ref.transform.f + 0.25,
            )
        # OCS GE: both codes per polygon, and the table maps each pair back to the FLAIR code
        labels = gpd.read_file(plain / "labels.gpkg")
        ocsge = gpd.read_file(ign / "ocsge" / "OCCUPATION_SOL.gpkg")
        with (ign / "ocsge" / "ocsge_to_flair.csv").open(newline="") as fh:
            table = {(r["code_cs"], r["code_us"]): int(r["flair"]) for r in csv.DictReader(fh)}
        assert len(table) == 19
        back = [table[(cs, us)] for cs, us in zip(ocsge["code_cs"], ocsge["code_us"], strict=True)]
        assert back == [int(c) for c in labels["code"]]
        assert ocsge.geometry.geom_equals(labels.geometry).all()
        # acquisition facts moved from domain.json into the spec
        info = json.loads((plain / "domain.json").read_text())
        spec = yaml.safe_load((ign / "domain.yaml").read_text())
        assert spec["acquisition"] == {k: info[k] for k in ("date", "time", "camera")}
        assert spec["dtm"]["crs"] == "EPSG:2154"


def test_materialize_builds_the_ign_domain(
    tiny_world: WorldSummary, ign_raw: Path, tmp_path: Path
) -> None:
    """The command of docs/inputs.md, one domain: IMG bands R, G, B, NIR are the plain
    world's ortho pixels under each patch (the plain tiles merged by rasterio)."""
    ds = tmp_path / "ds"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    r = _cli(
        "materialize",
        "--select",
        "group:sources or group:dataset",
        "--partition",
        DOMAIN,
        "--set",
        f"paths.raw={ign_raw}",
        "--set",
        f"paths.dataset={ds}",
        "--set",
        "sampling.patch_size=64",
        "--set",
        "sampling.max_patches_per_domain=4",
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    imgs = sorted((ds / "aerial" / DOMAIN).rglob("IMG_*.tif"))
    assert len(imgs) == 4
    tiles = [
        rasterio.open(p)
        for p in sorted((tiny_world.out / "domains" / DOMAIN / "ortho").glob("*.tif"))
    ]
    try:
        mosaic, t = merge(tiles)
    finally:
        for src in tiles:
            src.close()
    for img in imgs:
        with rasterio.open(img) as src:
            got, b = src.read(), src.bounds
        win = from_bounds(*b, transform=t).round_offsets().round_lengths()
        want = mosaic[:, win.row_off : win.row_off + 64, win.col_off : win.col_off + 64]
        assert np.array_equal(got[:4], want), img.name
        msk = (
            ds / "labels" / DOMAIN / img.parent.parent.name / "msk" / img.name.replace("IMG", "MSK")
        )
        assert msk.is_file()
    meta = json.loads((ds / "metadata" / "domains" / f"{DOMAIN}.json").read_text())
    info = json.loads((tiny_world.out / "domains" / DOMAIN / "domain.json").read_text())
    first = next(iter(meta["patches"].values()))
    assert first["camera"] == info["camera"] and first["date"] == info["date"]
