"""Synthetic RPG parcels: farmers' declarations over the synthetic world's fields.

For each domain, ``<raw>/rpg/<domain>.gpkg`` (layer ``rpg``, EPSG:2154, ``CODE_CULTU``,
``CODE_GROUP``), the world's agricultural land (11) and plowed land (12) declared as arable
crops, its vineyards (9) as vines and half of its herbaceous vegetation (10) as grassland,
the rest undeclared (as roadsides and lawns are in the real RPG). Parcels are the land-cover
polygons clipped to the mosaic. Beside them, ``lpis_level1.csv``: the table of the codes
used here to IGN's level-1 classes. **That table is this project's, for the synthetic
world only**: IGN does not publish its own (``flair_pipeline/geo/lpis/README.md``).
Deterministic per seed and domain; drawn from its own random stream, so the rest of the
world is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from flair_pipeline.domains import DomainId

#: The GeoPackage timestamp, fixed as the world's (synthetic/world.py) for identical bytes.
FIXED_DATE = "2000-01-01T00:00:00.000Z"

#: (CODE_CULTU, CODE_GROUP, IGN level-1 class): the codes the synthetic RPG declares.
#: Codes and groups as the RPG spells them; the class is this project's reading.
ARABLE = (
    ("BTH", 1, 1),  # blé tendre d'hiver -> wheat
    ("MIS", 2, 3),  # maïs -> maize
    ("ORH", 3, 2),  # orge d'hiver -> barley
    ("TTH", 4, 4),  # triticale d'hiver -> other cereals
    ("CZH", 5, 8),  # colza d'hiver -> rapeseed
    ("TRN", 6, 7),  # tournesol -> sunflower
    ("SOJ", 15, 10),  # soja -> soy
    ("LUZ", 16, 12),  # luzerne -> fodder legumes
    ("BTN", 24, 13),  # betterave non fourragère -> beetroots
    ("PTC", 25, 14),  # pomme de terre de consommation -> potatoes
)
GRASS = (("PPH", 18, 0), ("PTR", 19, 0))  # prairies permanente, temporaire -> grasses
VINE = (("VRC", 21, 16),)  # vigne (raisin de cuve) -> vineyard
#: Every code of the synthetic RPG with its level-1 class (the shipped synthetic table).
LEVEL1_TABLE = {code: cls for code, _, cls in (*ARABLE, *GRASS, *VINE)}
#: The share of herbaceous vegetation declared as grassland.
GRASS_DECLARED = 0.5


def write_rpg(
    folder: Path,
    domain: DomainId,
    geoms: list[shapely.Polygon],
    codes: list[int],
    bounds: tuple[float, float, float, float],
    seed: int,
) -> Path:
    """Write the domain's synthetic RPG under `folder` (``<folder>/<domain>.gpkg``).

    Args:
        folder: ``<raw>/rpg``.
        domain: The domain.
        geoms: The world's land-cover polygons.
        codes: Their FLAIR codes.
        bounds: The mosaic's bounds (parcels are clipped to it).
        seed: The world's seed.

    Returns:
        The GeoPackage written.
    """
    decl = declarations(domain, geoms, codes, bounds, seed)
    parcels = [part for _, _, part in decl]
    rows = [(choice[0], choice[1]) for _, choice, _ in decl]
    folder.mkdir(parents=True, exist_ok=True)
    gdf = gpd.GeoDataFrame(
        {"CODE_CULTU": [r[0] for r in rows], "CODE_GROUP": [str(r[1]) for r in rows]},
        geometry=parcels,
        crs="EPSG:2154",
    )
    path = folder / f"{domain}.gpkg"
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_DATE})  # byte-identical
    gdf.to_file(path, layer="rpg", driver="GPKG", engine="pyogrio")
    return path


def declarations(
    domain: DomainId,
    geoms: list[shapely.Polygon],
    codes: list[int],
    bounds: tuple[float, float, float, float],
    seed: int,
) -> list[tuple[int, tuple[str, int, int], shapely.Geometry]]:
    """The parcels the domain's RPG declares: polygon index, (code, group, class), part.

    Also read by the synthetic Sentinel-1 scenes (their crops follow the declarations).

    Args:
        domain: The domain.
        geoms: The world's land-cover polygons.
        codes: Their FLAIR codes.
        bounds: The mosaic's bounds (parcels are clipped to it).
        seed: The world's seed.

    Returns:
        One (index into `geoms`, RPG row of ``ARABLE``/``GRASS``/``VINE``, clipped parcel)
        per declared parcel, in index order.
    """
    rng = np.random.default_rng([seed, domain.department, domain.year, 7])
    extent = shapely.box(*bounds)
    arr = np.asarray(geoms, dtype=object)
    hit = shapely.STRtree(arr).query(extent, predicate="intersects")
    hit.sort()
    out: list[tuple[int, tuple[str, int, int], shapely.Geometry]] = []
    for i in hit.tolist():
        code = codes[i]
        draw = rng.random()  # one draw per polygon, whatever its class: stable streams
        pick = int(rng.integers(1 << 30))
        if code in (11, 12):
            choice = ARABLE[pick % len(ARABLE)]
        elif code == 9:
            choice = VINE[0]
        elif code == 10 and draw < GRASS_DECLARED:
            choice = GRASS[pick % len(GRASS)]
        else:
            continue
        part = shapely.intersection(arr[i], extent)
        if part.is_empty or part.area < 1.0:
            continue
        out.append((i, choice, part))
    return out


def write_level1_table(folder: Path) -> Path:
    """Write ``lpis_level1.csv``: the synthetic codes to IGN's level-1 classes (ours).

    Args:
        folder: ``<raw>/rpg``.

    Returns:
        The CSV written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lpis_level1.csv"
    lines = ["code_cultu,class"] + [f"{k},{v}" for k, v in sorted(LEVEL1_TABLE.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


__all__ = ["LEVEL1_TABLE", "declarations", "write_level1_table", "write_rpg"]
