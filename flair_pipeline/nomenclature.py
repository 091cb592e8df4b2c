"""The FLAIR land-cover nomenclature: 19 codes, their names and colours, the 13-class merge.

Raw labels and MSK files hold codes 1..19. Training and metrics use 13 classes: codes 1..12
keep their meaning (class index = code - 1) and codes 13..19 merge into "other" (index 12),
as in the FLAIR paper and its public code. Colours are those of FLAIR's figures.

Codes 16 and 17 are named as IGN describes the released MSK files (dataset page and card,
FLAIR-1 README and config, FLAIR-2 display code): 16 "mixed", 17 "ligneous". IGN's FLAIR-HUB
QGIS style and the FLAIR #1 datapaper's table give them the other way round; the choice and
its sources are in docs/data-format.md. Both merge into "other", so training and metrics do
not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flair_pipeline.errors import InputError


@dataclass(frozen=True)
class LandCoverClass:
    """One class of the 19-code nomenclature."""

    code: int
    name: str
    colour: str  # "#rrggbb"

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as an (r, g, b) triple of 0..255 ints."""
        h = self.colour.lstrip("#")
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


CLASSES: tuple[LandCoverClass, ...] = (
    LandCoverClass(1, "building", "#db0e9a"),
    LandCoverClass(2, "pervious surface", "#938e7b"),
    LandCoverClass(3, "impervious surface", "#f80c00"),
    LandCoverClass(4, "bare soil", "#a97101"),
    LandCoverClass(5, "water", "#1553ae"),
    LandCoverClass(6, "coniferous", "#194a26"),
    LandCoverClass(7, "deciduous", "#46e483"),
    LandCoverClass(8, "brushwood", "#f3a60d"),
    LandCoverClass(9, "vineyard", "#660082"),
    LandCoverClass(10, "herbaceous vegetation", "#55ff00"),
    LandCoverClass(11, "agricultural land", "#fff30d"),
    LandCoverClass(12, "plowed land", "#e4df7c"),
    LandCoverClass(13, "swimming pool", "#3de6eb"),
    LandCoverClass(14, "snow", "#ffffff"),
    LandCoverClass(15, "clear-cut", "#8ab3a0"),
    LandCoverClass(16, "mixed", "#6b714f"),  # 16/17: as FLAIR's release, not its datapaper
    LandCoverClass(17, "ligneous", "#c5dc42"),  # (docs/data-format.md, "Codes 16 and 17")
    LandCoverClass(18, "greenhouse", "#9999ff"),
    LandCoverClass(19, "other", "#000000"),
)
BY_CODE: dict[int, LandCoverClass] = {c.code: c for c in CLASSES}
CODES: tuple[int, ...] = tuple(c.code for c in CLASSES)

N_CLASSES_MERGED = 13
OTHER_INDEX = 12
#: Names of the 13 training classes, by class index.
MERGED_NAMES: tuple[str, ...] = (*(BY_CODE[c].name for c in range(1, 13)), "other")
#: Colours of the 13 training classes ("other" keeps FLAIR's black).
MERGED_COLOURS: tuple[str, ...] = (*(BY_CODE[c].colour for c in range(1, 13)), "#000000")

#: Pixel share (%) of each merged class over the FLAIR dataset (FLAIR #1 datapaper, Garioud et al. 2022).
FLAIR_SHARES: dict[str, float] = dict(
    zip(
        MERGED_NAMES,
        (7.13, 7.33, 12.1, 3.09, 4.52, 4.28, 17.32, 6.3, 3.01, 18.24, 12.47, 3.45, 0.75),
        strict=True,
    )
)

#: Lookup table code -> merged index; 255 marks values that are not FLAIR codes.
INVALID = 255
_MERGE_LUT = np.full(256, INVALID, dtype=np.uint8)
_MERGE_LUT[1:13] = np.arange(12, dtype=np.uint8)
_MERGE_LUT[13:20] = OTHER_INDEX


#: MSK value of pixels no label polygon covers (issue 15): merged to INVALID, so the loss
#: (``ignore_index``) and the metrics skip them. A departure from the FLAIR release, whose
#: masks have no unlabelled pixel (docs/data-format.md).
UNLABELLED = 0


def merge_to_13(
    codes: np.ndarray, *, source: str = "array", unlabelled_ok: bool = False
) -> np.ndarray:
    """Map FLAIR codes 1..19 to the 13 training classes 0..12.

    With `unlabelled_ok` (reference masks), UNLABELLED (0) becomes INVALID, which the loss
    and the metrics ignore.

    Args:
        codes: FLAIR codes, any shape and integer dtype.
        source: What the codes come from (a file), named in the error.
        unlabelled_ok: Accept 0 (unlabelled) and map it to INVALID (255).

    Returns:
        uint8 array of `codes`' shape: merged classes 0..12, or INVALID (255) for 0.

    Raises:
        InputError: A value is not 1..19 (nor 0 with `unlabelled_ok`), naming `source`
            and up to 10 offending values: a silently mapped unknown code would poison
            training and metrics.
    """
    arr = np.asarray(codes)
    allowed = "0..19 (0 = unlabelled)" if unlabelled_ok else "1..19"
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            bad = np.unique(arr[(arr < 1) | (arr > 19)])[:10].tolist()
            raise InputError(f"{source}: label codes must be {allowed}, found {bad}")
        arr = arr.astype(np.uint8)
    merged: np.ndarray = _MERGE_LUT[arr]
    wrong = merged == INVALID
    if unlabelled_ok and wrong.any():
        wrong &= arr != UNLABELLED
    if wrong.any():
        bad = np.unique(arr[wrong])[:10].tolist()
        raise InputError(f"{source}: label codes must be {allowed}, found {bad}")
    return merged


def colormap() -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table for a uint8 raster of FLAIR codes (code -> RGBA).

    Returns:
        Code 0 -> transparent; codes 1..19 -> their FLAIR colour, opaque.
    """
    table = {0: (0, 0, 0, 0)}
    for c in CLASSES:
        table[c.code] = (*c.rgb, 255)
    return table
