"""A FLAIR-2-shaped release made in the test from the five real patches of ../shared.

Layout and formats as IGNF/FLAIR-2 ships them (``flair-2-config.yml``, ``src/load_data.py``):
``flair_aerial_train`` / ``flair_labels_train`` / ``flair_sen_train`` (the validation
domain D004_2021 inside the train folders), ``flair_2_aerial_test`` / ``flair_2_labels_test``
/ ``flair_2_sen_test``, ``SEN2_sp_<domain>-<zone>_{data,masks}.npy`` and ``_products.txt``
(ESA product names, one a line), ``flair-2_centroids_sp_to_patch.json`` keyed
``IMG_<id>.tif`` → ``[row, col]`` and ``flair-2_aerial_metadata.json`` keyed ``IMG_<id>``
with ``time`` as ``HHhMM``, camera strings and negative / float ``patch_centroid_z``.
The Sentinel-2 arrays are random (no real super-area is public, see
``../shared/real-samples/flair-metadata/SOURCES.md``); their shapes and dtypes are real.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Super-area side (S2 px) and each patch's [row, col] in it; 040 px windows fit inside.
SP_SIZE = 48
CENTROIDS = {
    "036294": (24, 24),
    "034217": (20, 27),
    "050549": (28, 22),
    "000473": (24, 20),
    "084558": (23, 25),
}
#: Release-format metadata quirks: HHhMM time, camera strings, negative and float z.
TIMES = {
    "036294": "08h06",
    "034217": "10h41",
    "050549": "11h28",
    "000473": "09h15",
    "084558": "07h50",
}
Z = {
    "036294": 164.82,
    "034217": -1.7000000477,
    "050549": 1661.9399414062,
    "000473": 297.15,
    "084558": 42.0,
}
PRODUCTS = [
    "S2A_MSIL2A_20210115T104321_N0214_R008_T31TGJ_20210115T120000",
    "S2B_MSIL2A_20210415T103619_N0300_R008_T31TGJ_20210415T134210",
    "S2A_MSIL2A_20210704T103631_N0301_R008_T31TGJ_20210704T140105",
    "S2B_MSIL2A_20211012T104019_N0301_R008_T31TGJ_20211012T131530",
]


@dataclass(frozen=True)
class Flair2Release:
    root: Path
    facts: dict[str, dict]  # patch id → samples.json entry
    series: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]  # (domain, zone) → data, masks


def make_flair2_release(real_flair: Path, out: Path, seed: int = 0) -> Flair2Release:
    """Write the release under `out` and return what was written (for expected values)."""
    facts = {
        s["image"].removeprefix("IMG_"): s
        for s in json.loads((real_flair / "samples.json").read_text())
    }
    rng = np.random.default_rng(seed)
    series: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    meta: dict[str, dict] = {}
    for img in sorted(real_flair.rglob("IMG_*.tif")):
        pid = img.stem.removeprefix("IMG_")
        f = facts[pid]
        test = f["source_split"] == "test"
        d, z = f["domain"], f["zone"]
        aerial = "flair_2_aerial_test" if test else "flair_aerial_train"
        labels = "flair_2_labels_test" if test else "flair_labels_train"
        sen = "flair_2_sen_test" if test else "flair_sen_train"
        for src, top, kind in (
            (img, aerial, "img"),
            (next(real_flair.rglob(f"MSK_{pid}.tif")), labels, "msk"),
        ):
            dst = out / top / d / z / kind / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        t = len(PRODUCTS)
        data = rng.integers(0, 10_000, (t, 10, SP_SIZE, SP_SIZE), dtype=np.uint16)
        masks = rng.integers(0, 101, (t, 2, SP_SIZE, SP_SIZE), dtype=np.uint8)
        prefix = out / sen / d / z / "sen" / f"SEN2_sp_{d}-{z}"
        prefix.parent.mkdir(parents=True, exist_ok=True)
        np.save(f"{prefix}_data.npy", data)
        np.save(f"{prefix}_masks.npy", masks)
        Path(f"{prefix}_products.txt").write_text("\n".join(PRODUCTS) + "\n")
        series[(d, z)] = (data, masks)
        meta[f"IMG_{pid}"] = {
            "domain": d,
            "zone": z,
            "patch_centroid_x": f["centroid_x"],
            "patch_centroid_y": f["centroid_y"],
            "patch_centroid_z": Z[pid],
            "date": f["acquired_utc"][:10],
            "time": TIMES[pid],
            "camera": f["camera"],
        }
    cents = {f"IMG_{pid}.tif": list(rc) for pid, rc in CENTROIDS.items()}
    (out / "flair-2_centroids_sp_to_patch.json").write_text(json.dumps(cents))
    (out / "flair-2_aerial_metadata.json").write_text(json.dumps(meta, indent=4))
    return Flair2Release(out, facts, series)
