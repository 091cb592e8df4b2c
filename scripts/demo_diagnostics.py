"""Diagnostics behind docs/results.md: does the demo's data let a model learn crops vs grass?

``shares``: per split, the share of agricultural land (11) and herbaceous vegetation (10)
in a scenario's mosaics, for several domain sizes (from the land cover alone, seconds).
``separability``: on a built dataset, classify the pure 10 m Sentinel-2 pixels under each
patch (the centre of the window U-T&T fuses) as crop or grass from their monthly NDVI
profile with a nearest-centroid rule fitted on the training split, and score it on the
test split. High accuracy means the series the loader delivers carries the difference.

    .venv/bin/python scripts/demo_diagnostics.py shares --sizes 409.6 512 614.4
    .venv/bin/python scripts/demo_diagnostics.py separability --dataset data/dataset
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import rasterio

from flair_pipeline.config import S2Preprocessing
from flair_pipeline.nomenclature import merge_to_13
from flair_pipeline.sentinel2.series import ndvi
from flair_pipeline.synthetic.world import SCENARIOS, split_class_shares
from flair_pipeline.training.records import by_split, from_dataset
from flair_pipeline.training.samples import ZoneSeries, s2_window

HERB, AGRI = 10, 11  # FLAIR codes
S2_PX = 51  # aerial pixels (0.2 m) per 10 m Sentinel-2 pixel, rounded up
PURE = 0.9  # a Sentinel-2 pixel counts when 90 % of its aerial pixels share one label


def shares(scenario: str, sizes: list[float], seed: int) -> None:
    print(f"scenario {scenario}, seed {seed}: share of the split's mosaic area")
    for size in sizes:
        sc = dataclasses.replace(SCENARIOS[scenario], size_m=size)
        cells = ", ".join(
            f"{split} agri {s[AGRI]:5.1%} herb {s[HERB]:5.1%}"
            for split, s in sorted(split_class_shares(sc, seed).items())
        )
        print(f"  {size:6.1f} m: {cells}")


def pure_pixels(records: list, crop: int, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Monthly NDVI profiles (n, 12) and codes of the pure crop/grass S2 pixels."""
    opts = S2Preprocessing(filter_clouds=True, monthly_average=True)
    series, xs, ys = ZoneSeries(), [], []
    for rec in records:
        win, doy = s2_window(rec, series, opts)
        nd = ndvi(win)
        months = np.full((12, *nd.shape[1:]), np.nan, np.float32)
        months[np.minimum((doy - 1) // 31, 11)] = nd
        with rasterio.open(rec.msk) as src:
            codes = merge_to_13(src.read(1), source=str(rec.msk)) + 1
        c0 = (win.shape[-1] - crop) // 2 + shift
        for i in range(crop):
            for j in range(crop):
                block = codes[i * S2_PX : (i + 1) * S2_PX, j * S2_PX : (j + 1) * S2_PX]
                vals, counts = np.unique(block, return_counts=True)
                label = vals[counts.argmax()]
                if counts.max() >= PURE * block.size and label in (HERB, AGRI):
                    xs.append(months[:, c0 + i, c0 + j])
                    ys.append(label)
    return np.array(xs), np.array(ys)


def separability(dataset: str, crop: int) -> None:
    records = from_dataset(dataset)
    for shift in (0, 1):
        xtr, ytr = pure_pixels(by_split(records, "train"), crop, shift)
        xte, yte = pure_pixels(by_split(records, "test"), crop, shift)
        fill = np.nanmean(np.vstack([xtr, xte]), axis=0)  # months without a clear date
        xtr, xte = np.where(np.isnan(xtr), fill, xtr), np.where(np.isnan(xte), fill, xte)
        centroids = {c: xtr[ytr == c].mean(axis=0) for c in (HERB, AGRI)}
        dist = {c: ((xte - m) ** 2).sum(axis=1) for c, m in centroids.items()}
        pred = np.where(dist[HERB] <= dist[AGRI], HERB, AGRI)
        print(
            f"window shifted by {shift} px: train pixels grass {np.sum(ytr == HERB)} "
            f"crop {np.sum(ytr == AGRI)}; test accuracy {np.mean(pred == yte):.1%}, "
            f"crop recall {np.mean(pred[yte == AGRI] == AGRI):.1%}, "
            f"grass recall {np.mean(pred[yte == HERB] == HERB):.1%}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    sh = sub.add_parser("shares")
    sh.add_argument("--scenario", default="demo", choices=sorted(SCENARIOS))
    sh.add_argument("--sizes", type=float, nargs="+", default=[409.6, 512.0, 614.4, 716.8])
    sh.add_argument("--seed", type=int, default=0)
    se = sub.add_parser("separability")
    se.add_argument("--dataset", default="data/dataset")
    se.add_argument("--crop", type=int, default=10, help="S2 pixels under a patch (side)")
    args = ap.parse_args()
    if args.cmd == "shares":
        shares(args.scenario, args.sizes, args.seed)
    else:
        separability(args.dataset, args.crop)


if __name__ == "__main__":
    main()
