"""Large-area prediction on real GeoTIFFs with small real torch models."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from flair_pipeline.dataset.patch_writers import Elevation
from flair_pipeline.errors import FlairPipelineError, InputError
from flair_pipeline.evaluation.predict import predict_map
from flair_pipeline.evaluation.raster_input import mosaic_vrt
from flair_pipeline.evaluation.windows import PatchWindow, ramp, starts, weight_window
from flair_pipeline.io import write_geotiff
from flair_pipeline.nomenclature import BY_CODE

X0, Y0, RES = 700_000.0, 6_600_000.0, 0.2
T = from_origin(X0, Y0, RES, RES)
MEAN4, STD4 = [110.0, 100.0, 90.0, 120.0], [40.0, 35.0, 30.0, 45.0]
MEAN5, STD5 = [*MEAN4, 20.0], [*STD4, 15.0]


class PixelModel(torch.nn.Module):
    """A 1x1 convolution: each pixel's logits depend on that pixel only (the seam test)."""

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(channels, 13, 1)
        with torch.no_grad():
            self.conv.weight.mul_(4.0)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.conv(batch["img"])}


def _image(h: int, w: int, bands: int = 4, seed: int = 0) -> np.ndarray:
    """Smooth fields plus noise, so classes form regions and windows matter."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for b in range(bands):
        f = 127 + 90 * np.sin(xx / (11 + 3 * b) + b) * np.cos(yy / (13 + 2 * b))
        out.append(np.clip(f + rng.normal(0, 12, (h, w)), 0, 255))
    return np.stack(out).astype(np.uint8)


def _write(path: Path, arr: np.ndarray, transform=T, crs: str = "EPSG:2154") -> Path:
    return write_geotiff(path, arr, transform, crs)


def _per_pixel(model: PixelModel, img: np.ndarray, mean, std) -> tuple[np.ndarray, np.ndarray]:
    """Map (codes) and softmax probabilities computed on the whole image at once."""
    x = torch.from_numpy(img).float()[None]
    x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad():
        p = torch.softmax(model({"img": x})["logits"], 1)[0]
    return (p.argmax(0) + 1).numpy().astype(np.uint8), p.numpy()


def _predict(model, image, out: Path, **kw):
    args = dict(
        patch_size=32,
        overlap=0.25,
        batch_size=4,
        mean=MEAN4,
        std=STD4,
        device="cpu",
        block_size=32,
        stripe_width=64,
    )
    args.update(kw)
    return predict_map(model, image, out, **args)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def test_windows_cover_and_blend_to_one() -> None:
    assert starts(100, 32, 24) == [0, 24, 48, 68]
    assert starts(20, 32, 24) == [0]
    r = ramp(32, 8)
    assert r.min() > 0 and r.max() == 1.0
    np.testing.assert_allclose(r[24:] + r[:8], 1.0)  # two windows 24 px apart sum to 1
    assert weight_window(32, 32).min() == 1.0  # no overlap: no ramp


def test_output_grid_format_and_colours(tmp_path: Path) -> None:
    img = _image(150, 130)
    src = _write(tmp_path / "ortho.tif", img)
    out = tmp_path / "maps" / "map.tif"
    report = _predict(PixelModel(4), src, out)
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert b.transform == a.transform and b.crs == a.crs and b.shape == a.shape
        assert b.count == 1 and b.dtypes == ("uint8",)
        assert b.profile["tiled"] and b.profile["compress"] == "deflate"
        assert b.block_shapes == [(32, 32)]
        assert b.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert b.colormap(1)[1][:3] == BY_CODE[1].rgb and b.colormap(1)[12][:3] == BY_CODE[12].rgb
        assert b.colormap(1)[13] == (0, 0, 0, 255)  # 13 is "other" in a map, not a pool
        assert b.nodata == 0 and b.tags()["FLAIR_VOID_PIXELS"] == "0"
        codes = b.read(1)
    assert codes.min() >= 1 and codes.max() <= 13
    assert report.height == 150 and report.width == 130
    assert sum(report.class_pixels.values()) == 150 * 130
    assert report.km2 == pytest.approx(150 * 130 * 0.04 / 1e6)
    assert report.void_pixels == 0 and report.style == out.with_suffix(".qml")
    # no temp files left: the map and its QGIS style
    assert sorted(p.name for p in out.parent.iterdir()) == ["map.qml", "map.tif"]


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_no_seams_blended_map_equals_per_pixel_argmax(tmp_path: Path, overlap: float) -> None:
    """A per-pixel model must give, through overlapping blended windows, its own argmax."""
    img = _image(150, 130)
    model = PixelModel(4)
    out = tmp_path / "map.tif"
    _predict(model, _write(tmp_path / "ortho.tif", img), out, overlap=overlap)
    expected, _ = _per_pixel(model, img, MEAN4, STD4)
    np.testing.assert_array_equal(_read(out), expected)


def test_streaming_is_exact_and_memory_does_not_grow_with_height(tmp_path: Path) -> None:
    model = PixelModel(4)
    short, tall = _image(96, 100), _image(400, 100)
    r_short = _predict(model, _write(tmp_path / "s.tif", short), tmp_path / "s_map.tif")
    r_tall = _predict(model, _write(tmp_path / "t.tif", tall), tmp_path / "t_map.tif")
    one_pass = _predict(
        model, tmp_path / "t.tif", tmp_path / "t_one.tif", block_size=512, stripe_width=512
    )
    # the tall image is 12 blocks high and 2 stripes wide, yet buffers as much as the short
    assert r_tall.buffer_bytes == r_short.buffer_bytes < one_pass.buffer_bytes
    tall_map = _read(tmp_path / "t_map.tif")
    np.testing.assert_array_equal(tall_map, _read(tmp_path / "t_one.tif"))
    np.testing.assert_array_equal(tall_map, _per_pixel(model, tall, MEAN4, STD4)[0])


def test_folder_list_and_vrt_of_tiles_give_the_single_image_map(tmp_path: Path) -> None:
    img = _image(128, 96)
    model = PixelModel(4)
    _predict(model, _write(tmp_path / "whole.tif", img), tmp_path / "whole_map.tif")
    tiles = []
    for r in (0, 64):
        for c in (0, 48):
            t = from_origin(X0 + c * RES, Y0 - r * RES, RES, RES)
            tiles.append(
                _write(tmp_path / "tiles" / f"t{r}_{c}.tif", img[:, r : r + 64, c : c + 48], t)
            )
    (tmp_path / "mosaic.vrt").write_text(mosaic_vrt(tiles))
    expected = _read(tmp_path / "whole_map.tif")
    for name, source in (
        ("dir", tmp_path / "tiles"),
        ("list", tiles),
        ("vrt", tmp_path / "mosaic.vrt"),
    ):
        out = tmp_path / f"{name}_map.tif"
        _predict(model, source, out)
        np.testing.assert_array_equal(_read(out), expected, err_msg=name)
        with rasterio.open(out) as b:
            assert b.transform.almost_equals(T) and b.shape == (128, 96)


def test_off_grid_tile_is_named(tmp_path: Path) -> None:
    img = _image(64, 64)
    _write(tmp_path / "tiles" / "a.tif", img)
    _write(tmp_path / "tiles" / "b.tif", img, from_origin(X0 + 64 * RES + 0.1, Y0, RES, RES))
    with pytest.raises(InputError, match=r"b\.tif: tile is not on the pixel grid"):
        _predict(PixelModel(4), tmp_path / "tiles", tmp_path / "map.tif")
    assert not (tmp_path / "map.tif").exists()


def _surfaces(tmp_path: Path, h: int, w: int, crs: str = "EPSG:2154") -> tuple[Path, Path]:
    """DSM/DTM at 1 m (5 image pixels), a little larger than the image, as in the raw data."""
    rng = np.random.default_rng(1)
    hh, ww = h // 5 + 4, w // 5 + 4
    dtm = (200 + rng.normal(0, 1, (hh, ww))).astype(np.float32)
    dsm = dtm + np.clip(rng.normal(4, 6, (hh, ww)), 0, None).astype(np.float32)
    t = from_origin(X0 - 2.0, Y0 + 2.0, 1.0, 1.0)
    return (
        write_geotiff(tmp_path / "dsm.tif", dsm, t, crs),
        write_geotiff(tmp_path / "dtm.tif", dtm, t, crs),
    )


def test_elevation_from_dsm_dtm_as_in_img_patches(tmp_path: Path) -> None:
    img = _image(96, 80)
    dsm, dtm = _surfaces(tmp_path, 96, 80)
    elev = Elevation(dsm, dtm, 5.0)
    try:  # the elevation band exactly as dataset/patch_writers.py encodes it for the whole image
        band = elev.patch((X0, Y0 - 96 * RES, X0 + 80 * RES, Y0), (96, 80))
    finally:
        elev.close()
    assert band.std() > 5  # the model really sees varying elevation
    model = PixelModel(5)
    out = tmp_path / "map.tif"
    _predict(model, _write(tmp_path / "o.tif", img), out, mean=MEAN5, std=STD5, dsm=dsm, dtm=dtm)
    expected, _ = _per_pixel(model, np.concatenate([img, band[None]]), MEAN5, STD5)
    np.testing.assert_array_equal(_read(out), expected)
    # a 5-band image (an IMG patch) carries its own elevation
    _write(tmp_path / "img5.tif", np.concatenate([img, band[None]]))
    _predict(model, tmp_path / "img5.tif", tmp_path / "map5.tif", mean=MEAN5, std=STD5)
    np.testing.assert_array_equal(_read(tmp_path / "map5.tif"), expected)


def test_probabilities_output(tmp_path: Path) -> None:
    img = _image(70, 90)
    model = PixelModel(4)
    probs = tmp_path / "probs.tif"
    _predict(model, _write(tmp_path / "o.tif", img), tmp_path / "map.tif", probabilities=probs)
    _, p = _per_pixel(model, img, MEAN4, STD4)
    with rasterio.open(probs) as src:
        assert src.count == 13 and src.dtypes[0] == "uint8" and src.transform == T
        assert src.descriptions[0] == "p(building) x 255"
        q = src.read()
    assert np.abs(q.astype(int) - np.round(p * 255)).max() <= 1


def test_extra_inputs_get_each_window_and_its_extent(tmp_path: Path) -> None:
    seen: list[PatchWindow] = []

    class Biased(PixelModel):
        def forward(self, batch):
            return {"logits": self.conv(batch["img"]) * 0 + batch["bias"]}

    def extra(windows):
        seen.extend(windows)
        bias = torch.zeros(len(windows), 13, 1, 1)
        bias[:, 5] = 1.0  # everything is coniferous (code 6)
        return {"bias": bias}

    _predict(
        Biased(4),
        _write(tmp_path / "o.tif", _image(64, 64)),
        tmp_path / "m.tif",
        extra_inputs=extra,
        stripe_width=512,
    )
    assert (_read(tmp_path / "m.tif") == 6).all()
    assert sorted((w.row, w.col) for w in seen) == [
        (r, c) for r in (0, 24, 32) for c in (0, 24, 32)
    ]
    w = next(w for w in seen if (w.row, w.col) == (24, 32))
    assert w.bounds == pytest.approx((X0 + 32 * RES, Y0 - 56 * RES, X0 + 64 * RES, Y0 - 24 * RES))


def test_downsampled_model_maps_the_full_resolution_grid(tmp_path: Path) -> None:
    img = _image(100, 90)
    r = _predict(
        PixelModel(4),
        _write(tmp_path / "o.tif", img),
        tmp_path / "m.tif",
        patch_size=16,
        downsample=2,
    )
    with rasterio.open(tmp_path / "m.tif") as b:
        assert b.shape == (100, 90) and b.transform == T
    # 32 px windows at stride 24: 4 rows x (4 windows touching stripe [0, 64) + 2 [64, 90))
    assert r.n_windows == 4 * (4 + 2)


def _no_output(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith((".map", "map"))]


@pytest.mark.parametrize(
    ("bands", "channels", "message"),
    [
        (3, 4, "3 band(s), the model needs 4"),
        (4, 5, "4 bands and no --dsm/--dtm, but the model needs 5 channels"),
    ],
)
def test_image_without_the_bands_the_model_needs(tmp_path, bands, channels, message) -> None:
    src = _write(tmp_path / "o.tif", _image(40, 40, bands))
    mean, std = (MEAN4, STD4) if channels == 4 else (MEAN5, STD5)
    with pytest.raises(InputError, match=r"o\.tif: " + re.escape(message)):
        _predict(
            PixelModel(channels),
            src,
            tmp_path / "map.tif",
            mean=mean,
            std=std,
            probabilities=tmp_path / "map_p.tif",
        )
    _no_output(tmp_path)


def test_bad_surface_models_are_named(tmp_path: Path) -> None:
    src = _write(tmp_path / "o.tif", _image(40, 40))
    model, kw = PixelModel(5), {"mean": MEAN5, "std": STD5}
    dsm, dtm = _surfaces(tmp_path / "l93", 40, 40)
    with pytest.raises(InputError, match="both a DSM and a DTM"):
        _predict(model, src, tmp_path / "map.tif", dsm=dsm, **kw)
    utm, _ = _surfaces(tmp_path / "utm", 40, 40, crs="EPSG:32631")
    # another CRS is reprojected on the fly; this one lies elsewhere on Earth
    with pytest.raises(
        InputError, match=r"utm/dsm\.tif: extent .* \(reprojected from EPSG:32631\) does not cover"
    ):
        _predict(model, src, tmp_path / "map.tif", dsm=utm, dtm=dtm, **kw)
    small = write_geotiff(
        tmp_path / "small.tif",
        np.zeros((3, 3), np.float32),
        from_origin(X0, Y0, 1.0, 1.0),
        "EPSG:2154",
    )
    with pytest.raises(InputError, match=r"small\.tif: extent .* does not cover the image"):
        _predict(model, src, tmp_path / "map.tif", dsm=dsm, dtm=small, **kw)
    with pytest.raises(InputError, match=r"nope\.tif: surface model not found"):
        _predict(model, src, tmp_path / "map.tif", dsm=dsm, dtm=tmp_path / "nope.tif", **kw)
    _no_output(tmp_path)


def test_missing_image_and_bad_model_output(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"none\.tif: image not found"):
        _predict(PixelModel(4), tmp_path / "none.tif", tmp_path / "map.tif")

    class Wrong(PixelModel):
        def forward(self, batch):
            return {"logits": self.conv(batch["img"])[:, :12]}

    src = _write(tmp_path / "o.tif", _image(40, 40))
    with pytest.raises(FlairPipelineError, match=r"logits' is \(4, 12, 32, 32\), expected"):
        _predict(Wrong(4), src, tmp_path / "map.tif")
    _no_output(tmp_path)


@pytest.mark.gpu
def test_cuda_matches_cpu(tmp_path: Path) -> None:
    img = _image(300, 260)
    model = PixelModel(4)
    src = _write(tmp_path / "o.tif", img)
    _predict(model, src, tmp_path / "cpu.tif")
    _predict(model, src, tmp_path / "gpu.tif", device="cuda")
    agree = (_read(tmp_path / "cpu.tif") == _read(tmp_path / "gpu.tif")).mean()
    assert agree > 0.99  # bf16 autocast may flip near-ties only


def _checkpoint(path: Path) -> Path:
    """A real, untrained 4-band U-Net checkpoint in Lightning's format (no training run)."""
    import lightning

    from flair_pipeline.training.module import FlairModule

    torch.manual_seed(0)
    module = FlairModule(
        "unet", {"in_channels": 4}, {"mean": MEAN4, "std": STD4}, patch_size=64, elevation_scale=5.0
    )
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    return path


def test_cli_predict_with_a_checkpoint(tmp_path: Path, capsys) -> None:
    from flair_pipeline.cli import main
    from flair_pipeline.training.checkpoint import load_inference

    ckpt = _checkpoint(tmp_path / "unet.ckpt")
    src = _write(tmp_path / "o.tif", _image(100, 120))
    out = tmp_path / "cli_map.tif"
    rc = main(
        [
            "predict",
            "--checkpoint",
            str(ckpt),
            "--image",
            str(src),
            "--out",
            str(out),
            "--overlap",
            "0.5",
            "--batch-size",
            "3",
            "--device",
            "cpu",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "wrote" in captured.out and "patches/s" in captured.out
    inf = load_inference(ckpt)
    predict_map(
        inf.model,
        src,
        tmp_path / "direct.tif",
        patch_size=64,
        overlap=0.5,
        batch_size=3,
        mean=MEAN4,
        std=STD4,
        device="cpu",
    )
    np.testing.assert_array_equal(_read(out), _read(tmp_path / "direct.tif"))
    with rasterio.open(out) as b:
        assert b.transform == T and b.shape == (100, 120)

    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    rc = main(
        [
            "predict",
            "--checkpoint",
            str(tmp_path / "bad.ckpt"),
            "--image",
            str(src),
            "--out",
            str(tmp_path / "bad_map.tif"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "bad.ckpt: not a readable PyTorch checkpoint" in err
    assert not (tmp_path / "bad_map.tif").exists()


@pytest.mark.parametrize(
    ("args", "windows"),
    [
        # 100 x 120 px, 64 px windows. overlap 0.5: stride 32, rows at 0, 32, 36 (flush) and
        # columns at 0, 32, 56 (flush): 9 windows; overlap 0.25: stride 48, rows 0, 36 and
        # columns 0, 48, 56: 6 windows.
        (["--set", "eval.overlap=0.5"], 9),
        (["--set", "eval.overlap=0.25"], 6),
        (["--set", "eval.overlap=0.25", "--overlap", "0.5"], 9),  # the option wins
    ],
)
def test_cli_predict_takes_overlap_from_the_eval_section(
    tmp_path: Path, capsys, args: list[str], windows: int
) -> None:
    # `predict` used its own defaults where `demo_map` read eval.* (issue 28)
    from flair_pipeline.cli import main

    ckpt = _checkpoint(tmp_path / "unet.ckpt")
    src = _write(tmp_path / "o.tif", _image(100, 120))
    rc = main(
        [
            *("predict", "--checkpoint", str(ckpt), "--image", str(src)),
            *("--out", str(tmp_path / "m.tif"), "--device", "cpu", *args),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f": {windows} windows in " in captured.out, captured.out
