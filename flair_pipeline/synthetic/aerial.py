"""Rendering the synthetic land cover as IGN would deliver it: RGBN orthophoto and DSM/DTM.

Each object gets a colour drawn from its class's palette and a class texture (tree crowns,
vine rows, furrows, roof ridges, grain). Agricultural land (11) and herbaceous vegetation (10)
deliberately share one appearance model: the aerial image cannot tell them apart, only
their Sentinel-2 phenology can (FLAIR paper, A.1). The image is rasterised from polygons
shifted by a fraction of a metre, so boundaries are sharp but not exactly on the labels',
and a per-domain gain, offset and colour cast reproduces FLAIR's domain shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from rasterio.features import rasterize
from rasterio.transform import from_origin
from scipy.ndimage import gaussian_filter

from flair_pipeline.synthetic import noise
from flair_pipeline.synthetic.landcover import LandCover

# code -> palette of R, G, B, NIR colours (0..255) an object's colour is drawn from
_GRASS = [(96, 132, 70, 190), (150, 150, 92, 175), (178, 166, 108, 165), (120, 140, 80, 185)]
PALETTES: dict[int, list[tuple[int, int, int, int]]] = {
    1: [(172, 92, 72, 112), (118, 118, 124, 118), (82, 86, 92, 88), (204, 196, 184, 190)],
    2: [(150, 140, 116, 150), (168, 160, 140, 140), (132, 130, 110, 150)],
    3: [(112, 112, 116, 106), (92, 94, 98, 92), (138, 136, 132, 126)],
    4: [(168, 136, 100, 150), (186, 160, 124, 162), (140, 112, 84, 132)],
    5: [(38, 66, 78, 22), (44, 76, 70, 30), (30, 52, 66, 18)],
    6: [(42, 70, 48, 132), (36, 60, 44, 120)],
    7: [(74, 112, 56, 196), (86, 120, 62, 205), (64, 100, 50, 186)],
    8: [(96, 116, 70, 162), (110, 120, 80, 156)],
    9: [(104, 118, 72, 168), (118, 124, 84, 160)],
    10: _GRASS,
    11: _GRASS,
    12: [(142, 116, 90, 118), (124, 100, 80, 108), (160, 134, 104, 128)],
    13: [(62, 188, 200, 62), (80, 200, 210, 70)],
    14: [(240, 242, 246, 232), (228, 232, 238, 222)],
    15: [(128, 114, 86, 140), (140, 126, 94, 150)],
    16: [(58, 92, 52, 168), (66, 98, 56, 176)],  # mixed forest
    17: [(112, 130, 74, 176), (124, 136, 82, 170)],  # ligneous
    18: [(212, 216, 216, 198), (196, 204, 206, 188)],
    19: [(150, 146, 140, 130), (124, 118, 110, 112), (170, 160, 146, 140)],
}


@dataclass(frozen=True)
class Texture:
    """How an object's pixels vary around its colour (amplitudes are relative)."""

    coarse: float = 0.04  # patchiness, ~8 m features
    fine: float = 0.03  # grain, per pixel
    crowns: float = 0.0  # tree crowns and gaps
    small_crowns: bool = False  # conifers: narrow crowns
    stripes: float = 0.0  # rows / furrows / greenhouse tunnels
    period_m: float = 2.0
    stripes_p: float = 1.0  # share of objects of the class that show stripes
    roof: bool = False  # two-tone ridge


_FIELD = Texture(coarse=0.10, fine=0.035, stripes=0.06, period_m=3.0, stripes_p=0.5)
TEXTURES: dict[int, Texture] = {
    1: Texture(coarse=0.02, fine=0.02, roof=True),
    2: Texture(coarse=0.08, fine=0.06),
    3: Texture(coarse=0.05, fine=0.05),
    4: Texture(coarse=0.10, fine=0.06),
    5: Texture(coarse=0.05, fine=0.015),
    6: Texture(coarse=0.04, fine=0.04, crowns=0.45, small_crowns=True),
    7: Texture(coarse=0.05, fine=0.04, crowns=0.35),
    8: Texture(coarse=0.12, fine=0.06, crowns=0.18, small_crowns=True),
    9: Texture(coarse=0.05, fine=0.04, stripes=0.28, period_m=2.2),
    10: _FIELD,
    11: _FIELD,
    12: Texture(coarse=0.06, fine=0.05, stripes=0.22, period_m=0.8),
    13: Texture(coarse=0.01, fine=0.02),
    14: Texture(coarse=0.03, fine=0.02),
    15: Texture(coarse=0.14, fine=0.10, crowns=0.10, small_crowns=True),
    16: Texture(coarse=0.05, fine=0.04, crowns=0.40),
    17: Texture(coarse=0.06, fine=0.05, crowns=0.25, small_crowns=True),
    18: Texture(coarse=0.02, fine=0.02, stripes=0.12, period_m=4.0),
    19: Texture(coarse=0.16, fine=0.12),
}


@dataclass(frozen=True)
class Radiometry:
    """A domain's acquisition look: per-band gain and offset (RGBN)."""

    gain: tuple[float, float, float, float]
    offset: tuple[float, float, float, float]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Radiometry:
        """Gain 0.82-1.18, offset +-14 DN, plus a colour cast shared by R, G, B.

        Args:
            rng: The domain's generator.

        Returns:
            Per band (R, G, B, NIR) gain and offset (DN).
        """
        overall = rng.uniform(0.86, 1.14)
        cast = rng.normal(0.0, 0.06, 4)
        gain = tuple(float(overall * (1 + c)) for c in cast)
        offset = tuple(float(v) for v in rng.uniform(-14, 14, 4))
        return cls(gain, offset)  # type: ignore[arg-type]


@dataclass
class Appearance:
    """Per-object rendering parameters, index 0 = outside every polygon."""

    rgbn: np.ndarray  # (n+1, 4) float32
    code: np.ndarray  # (n+1,) uint8
    coarse: np.ndarray
    fine: np.ndarray
    crowns: np.ndarray
    small: np.ndarray  # bool
    stripes: np.ndarray
    wave: np.ndarray  # stripe spatial frequency, radians per pixel, (n+1, 2) along x, y
    roof: np.ndarray  # bool
    ridge: np.ndarray  # (n+1, 3): normal x, normal y, offset, for roof halves
    height: np.ndarray


def object_appearance(lc: LandCover, seed: int, res: float) -> Appearance:
    """Draw every object's colour and texture parameters once per domain.

    Args:
        lc: The domain's land cover.
        seed: The domain's seed.
        res: Ground resolution (m) of the ortho, for texture scales.

    Returns:
        Per object (row 0: no object): RGBN base colour, texture weights, roof and wave
        parameters.
    """
    a = lc.arrays()
    n = len(lc)
    idx = np.arange(n)
    jitter = (noise.hash_uniform(seed, idx[:, None], np.arange(4)[None, :]) - 0.5) * 16.0
    rgbn = np.zeros((n + 1, 4), np.float32)
    fields = {k: np.zeros(n + 1, np.float32) for k in ("coarse", "fine", "crowns", "stripes")}
    small = np.zeros(n + 1, bool)
    roof = np.zeros(n + 1, bool)
    wave = np.zeros((n + 1, 2), np.float32)
    ridge = np.zeros((n + 1, 3), np.float32)
    stripe_draw = noise.hash_uniform(seed + 1, idx, np.zeros(n, np.int64))
    for i in range(n):
        code = int(a["code"][i])
        pal = PALETTES[code]
        rgbn[i + 1] = np.asarray(pal[int(a["variant"][i] * len(pal)) % len(pal)]) + jitter[i]
        tex = TEXTURES[code]
        fields["coarse"][i + 1] = tex.coarse
        fields["fine"][i + 1] = tex.fine
        fields["crowns"][i + 1] = tex.crowns
        small[i + 1] = tex.small_crowns
        roof[i + 1] = tex.roof
        if tex.stripes and stripe_draw[i] < tex.stripes_p:
            fields["stripes"][i + 1] = tex.stripes
            k = 2 * np.pi * res / tex.period_m
            th = a["angle"][i]
            wave[i + 1] = (k * -np.sin(th), k * np.cos(th))  # across the long axis
        if tex.roof:
            th = a["angle"][i]
            nx, ny = -np.sin(th), np.cos(th)
            c = lc.geoms[i].centroid
            ridge[i + 1] = (nx, ny, nx * c.x + ny * c.y)
    height = np.concatenate([[0.0], a["height"]]).astype(np.float32)
    codes = np.concatenate([[0], a["code"]]).astype(np.uint8)
    return Appearance(
        rgbn, codes, small=small, roof=roof, wave=wave, ridge=ridge, height=height, **fields
    )


def rasterize_ids(
    lc: LandCover,
    tree: shapely.STRtree,
    bounds: tuple[float, float, float, float],
    res: float,
    shift: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Object index + 1 at each pixel centre of the grid over `bounds` (0 = no object).

    Args:
        lc: The domain's land cover.
        tree: Spatial index of ``lc.geoms``.
        bounds: (left, bottom, right, top) in Lambert-93 m.
        res: Pixel size (m).
        shift: Sub-pixel shift (m) of the sampling grid (x, y).

    Returns:
        int32 (H, W) object index + 1, 0 where no object covers the pixel centre.
    """
    x0, y0, x1, y1 = bounds
    w, h = round((x1 - x0) / res), round((y1 - y0) / res)
    hits = tree.query(shapely.box(*bounds))
    if hits.size == 0:
        return np.zeros((h, w), np.int32)
    transform = from_origin(x0 - shift[0], y1 - shift[1], res, res)
    shapes = ((lc.geoms[i], int(i) + 1) for i in np.sort(hits))
    index: np.ndarray = rasterize(
        shapes, out_shape=(h, w), transform=transform, fill=0, dtype="int32"
    )
    return index


def render_ortho(
    lc: LandCover,
    tree: shapely.STRtree,
    app: Appearance,
    bounds: tuple[float, float, float, float],
    origin: tuple[float, float],
    res: float,
    radiometry: Radiometry,
    seed: int,
    shift: tuple[float, float],
    halo: int = 16,
) -> np.ndarray:
    """RGBN uint8 (4, H, W) for `bounds`; seamless with neighbouring windows.

    `origin` is the domain's top-left corner: noise is keyed on pixel indices from there, so
    any tiling of the domain gives the same pixels.

    Args:
        lc: The domain's land cover.
        tree: Spatial index of ``lc.geoms``.
        app: Per-object appearance.
        bounds: (left, bottom, right, top) of the window, Lambert-93 m.
        origin: The domain's top-left corner (x, y), Lambert-93 m.
        res: Pixel size (m).
        radiometry: The domain's per-band gain and offset.
        seed: The domain's seed.
        shift: Sub-pixel shift (m) of the product's grid (x, y).
        halo: Extra pixels rendered around the window so blurs see their neighbours.

    Returns:
        uint8 (4, H, W) R, G, B, NIR in 1..255.
    """
    x0, y0, x1, y1 = bounds
    hb = (x0 - halo * res, y0 - halo * res, x1 + halo * res, y1 + halo * res)
    ids = rasterize_ids(lc, tree, hb, res, shift)
    h, w = ids.shape
    c0 = round((hb[0] - origin[0]) / res)
    r0 = round((origin[1] - hb[3]) / res)
    cols = np.arange(c0, c0 + w)
    rows = np.arange(r0, r0 + h)
    coarse = noise.fractal(seed + 11, cols, rows, 40.0, octaves=3)
    fine = noise.white(seed + 12, cols, rows)
    crowns = np.where(
        app.small[ids],
        noise.blobs(seed + 13, cols, rows, sigma=2.0),
        noise.blobs(seed + 14, cols, rows, sigma=4.5),
    )
    mod = 1.0 + app.coarse[ids] * coarse + app.fine[ids] * fine
    mod += app.crowns[ids] * np.tanh(1.5 * crowns)
    wave = app.wave[ids]
    phase = wave[..., 0] * cols[None, :] - wave[..., 1] * rows[:, None]
    mod += app.stripes[ids] * np.sin(phase)
    roof = app.roof[ids]
    if roof.any():
        r = app.ridge[ids]
        xm = origin[0] + (cols[None, :] + 0.5) * res
        ym = origin[1] - (rows[:, None] + 0.5) * res
        side = r[..., 0] * xm + r[..., 1] * ym - r[..., 2]
        mod = np.where(roof & (side > 0), mod * 0.8, mod)
    img = app.rgbn[ids].transpose(2, 0, 1) * mod[None]
    img = gaussian_filter(img, sigma=(0, 0.6, 0.6), mode="nearest")
    img = img[:, halo : h - halo, halo : w - halo]
    gain = np.asarray(radiometry.gain, np.float32)[:, None, None]
    offset = np.asarray(radiometry.offset, np.float32)[:, None, None]
    ortho: np.ndarray = np.clip(img * gain + offset, 1, 255).round().astype(np.uint8)
    return ortho


def render_elevation(
    lc: LandCover,
    tree: shapely.STRtree,
    app: Appearance,
    bounds: tuple[float, float, float, float],
    res: float,
    seed: int,
    mountain: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(DSM, DTM) float32 metres on the grid over `bounds` at `res` metres.

    Args:
        lc: The domain's land cover.
        tree: Spatial index of ``lc.geoms``.
        app: Per-object appearance (roof shapes).
        bounds: (left, bottom, right, top), Lambert-93 m.
        res: Pixel size (m).
        seed: The domain's seed.
        mountain: A mountain domain: ground at 700..1500 m with 80..200 m of relief
            (else 15..320 m with 6..30 m).

    Returns:
        (DSM, DTM), each float32 (H, W): surface with buildings and trees, bare ground.
    """
    ids = rasterize_ids(lc, tree, bounds, res)
    h, w = ids.shape
    cols, rows = np.arange(w), np.arange(h)
    rng = np.random.default_rng([seed, 99])
    base = rng.uniform(700, 1500) if mountain else rng.uniform(15, 320)
    relief = rng.uniform(80, 200) if mountain else rng.uniform(6, 30)
    dtm = base + relief * noise.fractal(seed + 21, cols, rows, 400.0 / res, octaves=4)
    canopy = 0.75 + 0.25 * np.tanh(noise.blobs(seed + 22, cols, rows, sigma=1.0))
    code = app.code[ids]
    trees = np.isin(code, (6, 7, 8, 15, 16, 17))
    height = app.height[ids] * np.where(trees, canopy, 1.0)
    # water sits on the terrain; buildings and trees stand on it
    dsm = dtm + np.where(code == 5, 0.0, height)
    return dsm.astype(np.float32), dtm.astype(np.float32)
