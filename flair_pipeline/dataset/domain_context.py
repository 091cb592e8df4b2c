"""What every step of a domain's build reads, gathered once: a :class:`DomainContext`.

A front door opens one context per domain (:meth:`DomainContext.open`): the CLI's
``build-domain`` once for the whole build, each Dagster asset once for its one step. The
steps (:mod:`~flair_pipeline.dataset.sources_record`, :mod:`~flair_pipeline.dataset.domain_steps`,
:mod:`~flair_pipeline.dataset.metadata_step`) take it as their only input. What is costly
or may fail is done on first use and kept: the domain's inputs resolved, its label layer
read and checked over the mosaic's extent only (the labels by extent: a département's layer
is never loaded whole; a step run alone reads only the features its patches touch), its
patch grid (the one the grid step wrote in this context, else the
one on disk). So a whole build resolves and reads each once, and a step run alone reads
only what it uses, in the same order as before (a missing folder is named before a bad
``domain.json``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from flair_pipeline.config import PipelineConfig
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.sources.domain_spec import DomainInputs, resolve

if TYPE_CHECKING:  # geopandas only for the annotations: not imported at run time here
    import geopandas as gpd
    import numpy as np
    import shapely

    from flair_pipeline.dataset.areas import PatchLattice
    from flair_pipeline.dataset.mosaic import Mosaic
    from flair_pipeline.geo.raster_vrt import TileFacts


@dataclass(frozen=True)
class LabelSummary:
    """A domain's label layer over its mosaic, as checked (the features are not kept).

    Attributes:
        features: Features read over the mosaic (polygonal ones, each counted once; on a
            département-size delivery, the features whose envelope meets the mosaic's
            extent, read without geometries).
        repaired: Of them, those whose geometry was repaired; None on a département-size
            delivery, whose codes alone are checked here
            (:mod:`~flair_pipeline.dataset.label_attributes`): its geometries are checked
            and repaired where they are read (the areas scored, the patches' masks).
        layer: The layer read (None: a label raster).
        layer_decision: The decision line when the layer was chosen among several.
    """

    features: int
    repaired: int | None
    layer: str | None
    layer_decision: str | None


def _str_or_none(value: object) -> str | None:
    """`value` as a str, None kept.

    Args:
        value: An attribute of a label read.

    Returns:
        ``str(value)`` or None.
    """
    return None if value is None else str(value)


@dataclass(frozen=True)
class DomainContext:
    """One domain's build: its id, roots, configuration and (on first use) inputs.

    Attributes:
        domain: A domain id such as ``D006_2020``.
        raw: The raw data root (``domains/<domain>/``).
        dataset: The dataset root written to (FLAIR release layout).
        cfg: The configuration (``sampling``, ``dataset``).
    """

    domain: str
    raw: RawLayout
    dataset: DatasetLayout
    cfg: PipelineConfig

    @classmethod
    def open(
        cls, domain: str, raw: RawLayout, dataset: DatasetLayout, cfg: PipelineConfig
    ) -> DomainContext:
        """The context of one domain's build; nothing is read yet.

        Args:
            domain: A domain id such as ``D006_2020``.
            raw: The raw data root.
            dataset: The dataset root.
            cfg: The configuration.

        Returns:
            The :class:`DomainContext`.
        """
        return cls(domain, raw, dataset, cfg)

    @cached_property
    def inputs(self) -> DomainInputs:
        """The domain's inputs, resolved on first use (validates ``domain.json`` or the spec).

        Raises:
            InputError: A missing or unusable input (named by ``resolve``).
        """
        inputs = resolve(self.raw.domain_location(self.domain))
        if inputs.versions and isinstance(inputs.ortho, list):  # a URL raw root
            from dataclasses import replace

            from flair_pipeline.dataset.tile_record import known_facts

            known = known_facts(self.dataset.sources_record(self.domain), inputs.versions)
            if known:  # headers the sources step read, unchanged since: not opened again
                inputs.ortho = [replace(p, known=known) for p in inputs.ortho]
        return inputs

    @cached_property
    def _mosaic_facts(self) -> tuple[shapely.Polygon, int, list[TileFacts]]:
        """The ortho mosaic's bounds, its largest product's tile count, its tiles' facts.

        Raises:
            InputError: An ortho tile the build refuses (named, as the build reads it).
        """
        import shapely

        from flair_pipeline.dataset.coarse_coverage import largest_product
        from flair_pipeline.dataset.mosaic import Mosaic, mosaic_options  # GDAL: not at import

        with Mosaic(self.inputs.ortho, **mosaic_options(self.cfg.sampling)) as mosaic:
            box = shapely.box(*mosaic.bounds)
            return box, largest_product(mosaic)[1], list(mosaic.vrt.tiles)

    @property
    def mosaic_tiles(self) -> list[TileFacts]:
        """The ortho tiles' header facts as the mosaic opened them (headers only).

        Raises:
            InputError: An ortho tile the build refuses (named, as the build reads it).
        """
        return self._mosaic_facts[2]

    @property
    def mosaic_extent(self) -> shapely.Polygon:
        """The ortho mosaic's bounds (EPSG:2154), from the tiles' headers; no pixel read.

        Raises:
            InputError: An ortho tile the build refuses (named, as the build reads it).
        """
        return self._mosaic_facts[0]

    @property
    def departement_size(self) -> bool:
        """Whether an ortho product has more tiles than ``AUTO_OVERVIEW_TILES`` (a département).

        Raises:
            InputError: An ortho tile the build refuses (named, as the build reads it).
        """
        from flair_pipeline.dataset.coarse_coverage import AUTO_OVERVIEW_TILES

        return self._mosaic_facts[1] > AUTO_OVERVIEW_TILES

    @cached_property
    def labels(self) -> gpd.GeoDataFrame:
        """Its label polygons over the mosaic, read and checked on first use.

        Read by extent (``rasterize.read_labels(within=…)``): only the features that
        intersect the mosaic's bounds are read, their codes checked and geometries
        repaired; the rest of a département's layer is never loaded.

        Raises:
            InputError: A missing label file, bad codes or geometries (named).
        """
        from flair_pipeline.dataset.rasterize import read_labels  # OGR: not at import

        inputs = self.inputs
        return read_labels(
            inputs.labels, inputs.labels_layer, inputs.mapping, within=self.mosaic_extent
        )

    @cached_property
    def kept_labels(self) -> gpd.GeoDataFrame:
        """The label polygons the patch grid's patches need, read on first use.

        :attr:`labels` when already read in this context, else only the features that
        intersect the grid's patches (a step run alone, as the ``label_masks`` asset,
        reads what is kept, not the mosaic).

        Raises:
            InputError: No patch grid yet, a missing label file, bad codes (named).
        """
        if "labels" in self.__dict__:  # read by an earlier step of this build
            return self.labels
        import shapely

        from flair_pipeline.dataset.rasterize import read_labels  # OGR: not at import

        inputs, boxes = self.inputs, self.grid.geometry.to_numpy()
        within = shapely.union_all(boxes) if len(boxes) else self.mosaic_extent
        return read_labels(inputs.labels, inputs.labels_layer, inputs.mapping, within=within)

    def cell_scores(self, mosaic: Mosaic) -> np.ndarray:
        """Class areas of every patch cell of `mosaic` (:meth:`score_cells` of its lattice).

        Args:
            mosaic: The domain's open ortho mosaic.

        Returns:
            float64 (lattice cells, 13) class areas in m².

        Raises:
            InputError: A missing label file or bad codes (named by ``read_labels``).
        """
        from flair_pipeline.dataset.areas import PatchLattice

        return self.score_cells(PatchLattice.of(mosaic, self.cfg.sampling))

    def score_cells(self, lattice: PatchLattice) -> np.ndarray:
        """Class areas of the cells of `lattice` (a domain's, or some of its cells).

        :attr:`labels` when already read in this context (or a label raster, read whole),
        else streamed one block of areas at a time, each read by the extent of its cells
        (:func:`~flair_pipeline.dataset.area_scoring.streamed_class_areas`): the build's
        memory follows a block of the label layer, not the département's, and the labels
        read follow the cells scored.

        Args:
            lattice: Patch cells (:class:`~flair_pipeline.dataset.areas.PatchLattice`).

        Returns:
            float64 (cells, 13) class areas in m².

        Raises:
            InputError: A missing label file or bad codes (named by ``read_labels``).
        """
        from flair_pipeline.dataset.area_scoring import cell_class_areas, streamed_class_areas
        from flair_pipeline.geo.label_mapping import is_label_raster

        inputs = self.inputs
        if "labels" in self.__dict__ or is_label_raster(Path(inputs.labels)):
            return cell_class_areas(self.labels, lattice.boxes)
        scores, _ = streamed_class_areas(
            lattice, inputs.labels, inputs.labels_layer, inputs.mapping
        )
        return scores

    @cached_property
    def label_summary(self) -> LabelSummary:
        """The label layer over the mosaic, checked one block at a time and not kept.

        From :attr:`labels` when already read in this context (or a label raster, read
        whole); else the mosaic's extent is cut into squares of
        :data:`~flair_pipeline.dataset.area_scoring.BLOCK_AREAS` zones, each read by extent
        (codes checked, geometries repaired) and dropped, the features counted once by id:
        the same counts as a read of the whole extent, memory of one block.

        Returns:
            The :class:`LabelSummary`.

        Raises:
            InputError: A missing label file, bad codes or geometries (named).
        """
        import numpy as np
        import shapely

        from flair_pipeline.dataset.area_scoring import BLOCK_AREAS
        from flair_pipeline.dataset.rasterize import read_labels  # OGR: not at import
        from flair_pipeline.geo.label_mapping import is_label_raster

        inputs = self.inputs
        if "labels" in self.__dict__ or is_label_raster(Path(inputs.labels)):
            labels = self.labels
            return LabelSummary(
                len(labels),
                int(labels.attrs.get("repaired", 0)),
                _str_or_none(labels.attrs.get("layer")),
                _str_or_none(labels.attrs.get("layer_decision")),
            )
        if self.departement_size:
            from flair_pipeline.dataset.label_attributes import check_label_attributes

            fast = check_label_attributes(
                inputs.labels, inputs.labels_layer, inputs.mapping, self.mosaic_extent
            )
            if fast is not None:  # else the block read below names the bad features
                return LabelSummary(fast.features, None, fast.layer, fast.layer_decision)
        x0, y0, x1, y1 = self.mosaic_extent.bounds
        side = BLOCK_AREAS * self.cfg.sampling.zone_size_m
        xs = [*np.arange(x0, x1, side).tolist()[: max(1, int(np.ceil((x1 - x0) / side)))], x1]
        ys = [*np.arange(y0, y1, side).tolist()[: max(1, int(np.ceil((y1 - y0) / side)))], y1]
        kept: set[int] = set()
        repaired: set[int] = set()
        layer, decision = inputs.labels_layer, None
        for bx0, bx1 in itertools.pairwise(xs):
            for by0, by1 in itertools.pairwise(ys):
                block = read_labels(
                    inputs.labels, layer, inputs.mapping, within=shapely.box(bx0, by0, bx1, by1)
                )
                if layer is None:  # the layer chosen once (and its decision said once)
                    layer = _str_or_none(block.attrs.get("layer"))
                    decision = _str_or_none(block.attrs.get("layer_decision"))
                kept.update(block.index.to_numpy().tolist())
                repaired.update(np.asarray(block.attrs.get("repaired_fids", [])).tolist())
                del block
        return LabelSummary(len(kept), len(repaired), layer, decision)

    @property
    def label_layer(self) -> str | None:
        """The label layer read (None: a label raster); checks the labels if not yet done."""
        return self.label_summary.layer

    @property
    def label_layer_decision(self) -> str | None:
        """The decision line when the layer was chosen by default among several, else None."""
        return self.label_summary.layer_decision

    @cached_property
    def grid(self) -> gpd.GeoDataFrame:
        """The domain's patch grid: the one written in this context, else read from disk.

        Raises:
            InputError: No patch grid yet (run the grid step first).
        """
        from flair_pipeline.dataset.sampling import read_patch_grid
        from flair_pipeline.errors import InputError

        path = self.dataset.patch_grid(self.domain)
        if not path.is_file():
            raise InputError(
                f"{path}: no patch grid for {self.domain}; materialize patch_grid first"
            )
        return read_patch_grid(path)

    def keep_grid(self, grid: gpd.GeoDataFrame) -> None:
        """Keep the grid just written, so the later steps of this context do not read it back.

        Args:
            grid: The patch grid as written to ``metadata/patch_grid/<domain>.gpkg``.
        """
        self.__dict__["grid"] = grid  # the cache of the `grid` property (frozen: no setattr)
