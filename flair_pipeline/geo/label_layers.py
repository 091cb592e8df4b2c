"""Which layer of a label file is burnt: the named one, the only one, or ``labels``.

A GeoPackage often holds more than the labels: an older vintage a user appended
(``labels_2019`` next to ``labels``) or the ``layer_styles`` table QGIS adds when a style
is saved. OGR reads the *first* layer when none is named, so such a file would burn every
MSK from whichever layer was written first, with no word. The rule, one place for every
reader (the build, the Sentinel-2 plot, ``rasterize-labels``, the domain's CRS line):

1. a layer named by the domain (``labels: {layer: …}`` in ``domain.yaml``,
   ``"labels_layer"`` in ``domain.json``, ``--layer`` on the CLI) is read, or refused in
   one line listing the file's layers when it has no such layer or it holds no geometry;
2. tables without geometry (``layer_styles``, any attribute table) never count as label
   layers;
3. one layer with geometries: it is read, whatever its name (OCS GE's
   ``OCCUPATION_SOL``);
4. several: the one named ``labels`` (:data:`DEFAULT_LAYER`, the raw layout's name) is
   read and the choice is a decision line (recorded in the domain's sources record and
   metadata); with none of that name, the file is refused in one line listing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flair_pipeline.errors import InputError
from flair_pipeline.geo.label_mapping import is_label_raster
from flair_pipeline.storage import is_remote

#: The layer read from a file of several label layers when the domain names none.
DEFAULT_LAYER = "labels"
#: How a user names the layer, quoted in every refusal.
HOW_TO_NAME = (
    "name the layer to read: `layer:` under `labels:` in domain.yaml, "
    '"labels_layer" in domain.json, or --layer for rasterize-labels'
)


@dataclass(frozen=True)
class LayerChoice:
    """The layer read from a label file, and the decision line when a rule chose it.

    `name` is None for a label raster (no layers); `decision` is None when the layer was
    named by the user or is the file's only label layer.
    """

    name: str | None
    decision: str | None = None


def _layers(path: str | Path) -> list[tuple[str, str | None]]:
    """(name, geometry type or None) of every layer of an OGR source, in file order.

    Args:
        path: A vector file (GeoPackage, Shapefile, …).

    Returns:
        The layers, geometry type as OGR names it (``Polygon``, …).

    Raises:
        InputError: The file cannot be read as a vector source.
    """
    import pyogrio  # here, not at import, as rasterize's read

    try:
        return [(str(n), None if g is None else str(g)) for n, g in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises several types for unreadable data
        raise InputError(f"label file {path} cannot be read as a vector layer: {exc}") from exc


def _listed(layers: list[tuple[str, str | None]]) -> str:
    """Layers as listed in messages: ``labels_2019 (Polygon), layer_styles (table, no geometry)``.

    Args:
        layers: (name, geometry type or None) of each layer.

    Returns:
        The layers, comma-separated.
    """
    return ", ".join(f"{n} ({g or 'table, no geometry'})" for n, g in layers)


def choose_label_layer(path: str | Path, layer: str | None = None) -> LayerChoice:
    """The layer of `path` to read as labels (module docstring: the rule).

    Args:
        path: A label file: any OGR vector source or a label raster.
        layer: The layer the domain names, or None.

    Returns:
        The :class:`LayerChoice`.

    Raises:
        InputError: `layer` is given for a raster, is not in the file or holds no
            geometry; the file has no layer with geometries; or it has several and none
            is named :data:`DEFAULT_LAYER` (each one line listing the file's layers).
    """
    if not is_remote(path):  # a Path would collapse a URL's `//`
        path = Path(path)
    if is_label_raster(Path(path)):
        if layer is not None:
            raise InputError(
                f"label file {path} is a raster, it has no layers, but layer {layer!r} is "
                "named; remove the layer setting"
            )
        return LayerChoice(None)
    layers = _layers(path)
    spatial = [n for n, g in layers if g is not None]
    if layer is not None:
        kind = dict(layers).get(layer, "absent")
        if kind == "absent":
            raise InputError(
                f"label file {path} has no layer {layer!r} (layers: {_listed(layers)}); "
                "fix the layer name"
            )
        if kind is None:
            raise InputError(
                f"label file {path}: layer {layer!r} is a table without geometry "
                f"(layers: {_listed(layers)}); name a layer of polygons"
            )
        return LayerChoice(layer)
    if len(spatial) == 1:
        return LayerChoice(spatial[0])
    if not spatial:
        raise InputError(
            f"label file {path} has no layer with geometries (layers: {_listed(layers)}); "
            "it holds no label polygons"
        )
    if DEFAULT_LAYER in spatial:
        others = ", ".join(n for n in spatial if n != DEFAULT_LAYER)
        return LayerChoice(
            DEFAULT_LAYER,
            f"label file {path}: {len(spatial)} layers with geometries; read "
            f"{DEFAULT_LAYER!r}, the default name, not {others}; to read another, {HOW_TO_NAME}",
        )
    raise InputError(
        f"label file {path} has {len(spatial)} layers with geometries and none named "
        f"{DEFAULT_LAYER!r} (layers: {_listed(layers)}); {HOW_TO_NAME}"
    )
