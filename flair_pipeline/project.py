"""One project context: the configuration, its base folder, every layout, the provider.

Each front door (the CLI, the Dagster resource ``PipelineConfigResource``, the DVC stages
through the CLI, ``demo.py``, the benchmarks) builds ONE :class:`Project` from a params
file (or a :class:`~flair_pipeline.config.PipelineConfig` and its base folder) and takes
every root from it, so a relative root means the same folder whatever the front door and
the working folder: **a relative ``paths.*`` (and ``sentinel2.source.catalog`` /
``cache``) is relative to the folder of the config file that holds it** (``--set`` values
included); without a config file, to the working folder
(:func:`flair_pipeline.config.resolve_roots`). URLs and absolute paths are kept as given.

Why above the Sentinel-2 layer (import layers, pyproject): the project builds the
configured Sentinel-2 provider, so it imports ``sentinel2.factory`` (when one is built:
the CLI starts without numpy).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flair_pipeline import model_registry
from flair_pipeline.config import DEFAULT_PARAMS, PipelineConfig, load_config, resolve_roots
from flair_pipeline.errors import ConfigError
from flair_pipeline.layout import DatasetLayout, ModelFiles, RawLayout
from flair_pipeline.storage import is_url

if TYPE_CHECKING:  # the provider's modules are imported when one is built
    from flair_pipeline.sentinel2.factory import Credentials
    from flair_pipeline.sentinel2.provider import Sentinel2Provider


@dataclass(frozen=True)
class Project:
    """A validated configuration whose roots are absolute, and what it names.

    Attributes:
        config: the configuration, every relative root resolved against :attr:`base`.
        base: the folder relative roots were resolved against (the config file's folder).
        config_path: the params file read, or None (defaults).
    """

    config: PipelineConfig
    base: Path
    config_path: Path | None = None

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: Iterable[str] = ()) -> Project:
        """The project of a params file (default ``./params.yaml`` if present) plus overrides.

        Args:
            path: the params YAML file; None: ``./params.yaml`` if present, else defaults.
            overrides: ``key.sub=value`` strings (``--set``), applied in order.

        Returns:
            The project; its roots relative to the file's folder (the working folder
            without a file).

        Raises:
            ConfigError: the file is missing, unreadable or invalid, or an override is.
        """
        if path is None and DEFAULT_PARAMS.exists():
            path = DEFAULT_PARAMS
        cfg = load_config(path, overrides)
        file = Path(path).resolve() if path is not None else None
        base = file.parent if file is not None else Path.cwd().resolve()
        return cls(cfg, base, file)

    @classmethod
    def of(cls, cfg: PipelineConfig, base: str | Path) -> Project:
        """The project of a configuration built in code, relative roots against `base`.

        Args:
            cfg: a validated configuration.
            base: the folder its relative roots are relative to.

        Returns:
            The project (`cfg` itself is not changed).
        """
        root = Path(base).resolve()
        return cls(resolve_roots(cfg, root), root)

    def _local(self, key: str, value: str) -> Path:
        if is_url(value):
            raise ConfigError(
                f"{key}: {value} is a URL root with no local path; this step reads and writes "
                "local files (stage it: flair_pipeline/defs/staging.py, or set a local path)"
            )
        return Path(value)

    @property
    def raw(self) -> RawLayout:
        """The raw inputs (``paths.raw``).

        Raises:
            ConfigError: the root is a URL.
        """
        return RawLayout(self._local("paths.raw", self.config.paths.raw))

    @property
    def dataset(self) -> DatasetLayout:
        """The dataset built (``paths.dataset``).

        Raises:
            ConfigError: the root is a URL.
        """
        return DatasetLayout(self._local("paths.dataset", self.config.paths.dataset))

    @property
    def models(self) -> Path:
        """Where trained models go (``paths.models``), one folder per model.

        Raises:
            ConfigError: the root is a URL.
        """
        return self._local("paths.models", self.config.paths.models)

    @property
    def evaluations(self) -> Path:
        """Where evaluations and maps go (``paths.eval``).

        Raises:
            ConfigError: the root is a URL.
        """
        return self._local("paths.eval", self.config.paths.eval)

    def model_files(self, name: str) -> ModelFiles:
        """The files of a trained model (``<paths.models>/<folder of name>``).

        Args:
            name: a model name of the registry (``unet``, ``unet-meta``, ``utt``).

        Returns:
            Its :class:`~flair_pipeline.layout.ModelFiles`.

        Raises:
            ConfigError: the name is not in the registry, or the root is a URL.
        """
        return ModelFiles.of(self.models, model_registry.get_model(name).folder)

    @property
    def registry(self) -> dict[str, model_registry.ModelSpec]:
        """The model registry (:data:`flair_pipeline.model_registry.MODELS`)."""
        return model_registry.MODELS

    def provider(self, credentials: Credentials | None = None) -> Sentinel2Provider:
        """The Sentinel-2 provider ``sentinel2.source`` configures.

        Args:
            credentials: the Sentinel Hub OAuth client, from the environment (never from
                params.yaml); unused by STAC.

        Returns:
            The provider; a STAC source without a catalog reads
            ``<paths.raw>/sentinel2/catalog.json``.

        Raises:
            ConfigError: the provider's settings are unusable, or ``paths.raw`` is a URL.
        """
        from flair_pipeline.sentinel2.factory import build_provider

        return build_provider(
            self.config.sentinel2.source, self.raw.sentinel2_catalog(), credentials
        )
