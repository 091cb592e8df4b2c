"""JPEG 2000 dalles as IGN delivers them (issue 27 item 3): headers only, decode threads.

Dalles are written here small (RVB and IRC products, lossless OpenJPEG); expected pixels come
from the arrays written, never from the reader under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from flair_pipeline.config import SamplingConfig
from flair_pipeline.dataset.mosaic import Mosaic, TileReadError, mosaic_options
from flair_pipeline.errors import InputError
from flair_pipeline.geo.raster_vrt import Product

X0, Y1 = 700000.0, 6600000.0
RES = 0.2
SIDE = 320  # px of a 0.2 m dalle: 64 m


def _jp2(path: Path, arr: np.ndarray, res: float, x0: float) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="JP2OpenJPEG",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype="uint8",
        crs="EPSG:2154",
        transform=from_origin(x0, Y1, res, res),
        REVERSIBLE="YES",
        QUALITY="100",
        YCBCR420="NO",
    ) as dst:
        dst.write(arr)
    return path


def _truncate_codestream(path: Path) -> None:
    """Keep the JP2 boxes and the codestream's main header; cut the tiles' data.

    GDAL still opens the file (size, georeferencing) but cannot decode a pixel of it.
    """
    data = path.read_bytes()
    sot = data.index(b"\xff\x90", data.index(b"jp2c"))  # first tile-part marker
    path.write_bytes(data[: sot + 64])


def _dalles(folder: Path, last_res: float) -> tuple[list[Product], dict[str, np.ndarray]]:
    """Two RVB + IRC dalle pairs named like BD ORTHO's; the second at `last_res` m."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rvb, irc, pixels = [], [], {}
    for k, res in enumerate((RES, last_res)):
        x0 = X0 + k * SIDE * RES
        side = round(SIDE * RES / res)
        arr = rng.integers(1, 255, (4, side, side), dtype=np.uint8)
        stem = f"33-2021-{int(x0):07d}-{int(Y1):07d}-LA93-0M{round(res * 100):02d}"
        rvb.append(_jp2(folder / f"{stem}-E080.jp2", arr[:3], res, x0))
        irc.append(_jp2(folder / f"{stem}-IRC-E080.jp2", arr[[3, 0, 1]], res, x0))
        pixels[stem] = arr
    products = [
        Product("bd_ortho_rvb", rvb, {"R": 1, "G": 2, "B": 3}),
        Product("bd_ortho_irc", irc, {"NIR": 1}),
    ]
    return products, pixels


def test_a_jp2_dalle_at_another_resolution_is_refused_from_its_header(tmp_path: Path) -> None:
    products, _ = _dalles(tmp_path / "ortho", 0.5)
    odd = products[0].files[1]
    for p in (odd, products[1].files[1]):
        _truncate_codestream(p)  # no pixel of the 0.5 m dalles can be decoded
    with pytest.raises(InputError) as e:
        Mosaic(products, resolution=RES)
    msg = str(e.value)
    # the pixel-size refusal, not a decode failure: it came from the header alone
    assert "\n" not in msg and msg.startswith(str(odd.resolve()))
    assert "pixel size 0.5 x 0.5 m (and 1 other tile(s))" in msg
    assert "sampling.resolution 0.2 m" in msg and "ortho_resampling" in msg
    assert "decode" not in msg


def test_a_truncated_jp2_dalle_fails_only_when_its_pixels_are_read(tmp_path: Path) -> None:
    """The control of the test above: the truncation does stop every pixel read."""
    products, pixels = _dalles(tmp_path / "ortho", RES)
    for p in (products[0].files[1], products[1].files[1]):
        _truncate_codestream(p)
    with Mosaic(products, resolution=RES) as mosaic:  # headers only: opens
        first = (X0, Y1 - 12.8, X0 + 12.8, Y1)
        out, valid = mosaic.read(first)
        want = next(iter(pixels.values()))[:, :64, :64]
        assert np.array_equal(out, want) and valid.all()
        second = (X0 + 64.0, Y1 - 12.8, X0 + 76.8, Y1)
        with pytest.raises(TileReadError):
            mosaic.read(second)


@pytest.mark.parametrize("threads", [None, 1, 3])
def test_jp2_decode_threads_read_the_same_pixels_and_are_recorded(
    tmp_path: Path, threads: int | None
) -> None:
    products, pixels = _dalles(tmp_path / "ortho", RES)
    cfg = SamplingConfig(jp2_decode_threads=threads)
    with Mosaic(products, **mosaic_options(cfg)) as mosaic:
        straddle = (X0 + 51.2, Y1 - 25.6, X0 + 76.8, Y1)  # 128 px over both dalles
        out, valid = mosaic.read(straddle)
        lines = [d for d in mosaic.vrt.decisions if "JPEG 2000" in d]
    a, b = pixels.values()
    want = np.concatenate([a[:, :128, 256:], b[:, :128, :64]], axis=2)
    assert np.array_equal(out, want) and valid.all()
    how = "auto (the CPUs of the process)" if threads is None else str(threads)
    assert lines == [
        f"ortho: 4 JPEG 2000 tile(s) (first: {products[0].files[0].name}) decoded by GDAL's "
        f"OpenJPEG with sampling.jp2_decode_threads {how} thread(s) (GDAL_NUM_THREADS)"
    ]


def test_no_jpeg_2000_decision_for_geotiff_tiles(tmp_path: Path) -> None:
    folder = tmp_path / "ortho"
    folder.mkdir()
    with rasterio.open(
        folder / "a.tif",
        "w",
        driver="GTiff",
        width=64,
        height=64,
        count=4,
        dtype="uint8",
        crs="EPSG:2154",
        transform=from_origin(X0, Y1, RES, RES),
    ) as dst:
        dst.write(np.ones((4, 64, 64), dtype=np.uint8))
    with Mosaic(folder, **mosaic_options(SamplingConfig(jp2_decode_threads=2))) as mosaic:
        assert not [d for d in mosaic.vrt.decisions if "JPEG 2000" in d]
