"""Paths of the FLAIR release layout (DESIGN §4), in one place.

Every stage and every front door (Dagster assets, CLI, dvc.yaml) asks this module where a
file goes, so the layout cannot drift between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RawLayout:
    """Where a domain's raw inputs are (``data/raw``)."""

    root: Path

    def domain(self, domain: str) -> Path:
        """Folder of `domain`'s raw inputs: ``domains/<domain>``."""
        return self.root / "domains" / domain

    def ortho_dir(self, domain: str) -> Path:
        """Folder of the domain's orthophoto tiles (R, G, B, NIR GeoTIFFs)."""
        return self.domain(domain) / "ortho"

    def dsm(self, domain: str) -> Path:
        """The domain's digital surface model GeoTIFF (heights, m)."""
        return self.domain(domain) / "dsm.tif"

    def dtm(self, domain: str) -> Path:
        """The domain's digital terrain model GeoTIFF (ground heights, m)."""
        return self.domain(domain) / "dtm.tif"

    def labels(self, domain: str) -> Path:
        """The domain's label polygons (GeoPackage, integer ``code`` 1..19)."""
        return self.domain(domain) / "labels.gpkg"

    def domain_json(self, domain: str) -> Path:
        """The domain's flight facts (``domain.json``, see sources/domain_info.py)."""
        return self.domain(domain) / "domain.json"

    def sentinel2_catalog(self) -> Path:
        """The local STAC catalog of the Sentinel-2 archive."""
        return self.root / "sentinel2" / "catalog.json"


@dataclass(frozen=True)
class DatasetLayout:
    """Where the product goes (``data/dataset``), as in FLAIR's releases."""

    root: Path

    def img(self, domain: str, zone: str, patch_id: str) -> Path:
        """``aerial/<domain>/<zone>/img/IMG_<id>.tif``, as in FLAIR's releases."""
        return self.root / "aerial" / domain / zone / "img" / f"IMG_{patch_id}.tif"

    def msk(self, domain: str, zone: str, patch_id: str) -> Path:
        """``labels/<domain>/<zone>/msk/MSK_<id>.tif``, as in FLAIR's releases."""
        return self.root / "labels" / domain / zone / "msk" / f"MSK_{patch_id}.tif"

    def sen_dir(self, domain: str, zone: str) -> Path:
        """``sentinel/<domain>/<zone>/sen``: the zone's Sentinel-2 series files."""
        return self.root / "sentinel" / domain / zone / "sen"

    def sen_prefix(self, domain: str, zone: str) -> Path:
        """Prefix of the zone's series files: ``SEN2_sp_<domain>-<zone>`` (+ ``_data.npy``, …)."""
        return self.sen_dir(domain, zone) / f"SEN2_sp_{domain}-{zone}"

    @property
    def metadata_dir(self) -> Path:
        """``metadata/``: JSON, splits and per-domain records."""
        return self.root / "metadata"

    def sources_record(self, domain: str) -> Path:
        """The record of a domain's raw inputs and their fingerprint (JSON)."""
        return self.metadata_dir / "sources" / f"{domain}.json"

    def patch_grid(self, domain: str) -> Path:
        """The domain's patch grid (GeoPackage of patch footprints, Lambert-93)."""
        return self.metadata_dir / "patch_grid" / f"{domain}.gpkg"

    def domain_metadata(self, domain: str) -> Path:
        """The domain's metadata JSON: patches, class distribution, problems, decisions."""
        return self.metadata_dir / "domains" / f"{domain}.json"

    @property
    def aerial_metadata(self) -> Path:
        """FLAIR's ``aerial_metadata.json`` over every built domain."""
        return self.metadata_dir / "aerial_metadata.json"

    @property
    def centroids(self) -> Path:
        """FLAIR's ``centroids_sp_to_patch.json``: each patch's pixel in its super-area."""
        return self.metadata_dir / "centroids_sp_to_patch.json"

    @property
    def splits(self) -> Path:
        """``splits.csv``: the split of every domain."""
        return self.metadata_dir / "splits.csv"
