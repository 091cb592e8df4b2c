"""Resources: the pipeline configuration and the data roots it names.

Assets read params.yaml through this resource, so the Dagster UI, the CLI and `dvc repro`
run with exactly the parameters DVC tracks. Relative roots are resolved against the
config file's folder, so the webserver and the CLI agree whatever their working folder.
FLAIR_PARAMS names another params file for processes started without a CLI (webserver, run
workers, Dask workers, k8s pods). Roots may be fsspec URLs: assets then stage them
(flair_pipeline/defs/staging.py), and asking for a local layout of a URL root is an error.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import dagster as dg

from flair_pipeline.config import PipelineConfig, load_config
from flair_pipeline.errors import ConfigError
from flair_pipeline.layout import DatasetLayout, RawLayout
from flair_pipeline.project import Project
from flair_pipeline.storage import is_url


@functools.lru_cache(maxsize=64)
def _parsed(path: str, mtime_ns: int, size: int, overrides: tuple[str, ...]) -> PipelineConfig:
    """``load_config`` memoised on the file's identity and version (mtime, size).

    Returns:
        The parsed configuration, the same object for every call with the same key.
    """
    del mtime_ns, size  # cache key only
    return load_config(Path(path), overrides)


class PipelineConfigResource(dg.ConfigurableResource):
    """Loads params.yaml (+ overrides) and exposes the data layout."""

    config_path: str = os.environ.get("FLAIR_PARAMS", "params.yaml")
    overrides: list[str] = []  # noqa: RUF012  (pydantic copies defaults)
    #: Set by :func:`flair_pipeline.defs.staging.staged` for the steps that read their raw
    #: inputs where they live (``Stage.raw_in_place``): :meth:`raw` then gives a URL root.
    raw_in_place: bool = False

    def load(self) -> PipelineConfig:
        """The configuration, parsed once per version of the params file.

        Every asset asks several times per step (roots, layouts, sections); the file is
        read and validated once, then the same frozen :class:`PipelineConfig` is returned
        while the file's (mtime, size) stay the same, so an edited params.yaml is still
        seen by a long-lived process (the webserver, the daemon).

        Returns:
            The frozen :class:`PipelineConfig` (the defaults plus overrides when the file does
            not exist).

        Raises:
            ConfigError: The file is unreadable or invalid.
        """
        path = Path(self.config_path)
        if not path.exists():  # defaults (or ./params.yaml): cheap, and cwd-dependent
            return load_config(None, self.overrides)
        st = path.stat()
        return _parsed(str(path.resolve()), st.st_mtime_ns, st.st_size, tuple(self.overrides))

    def project(self) -> Project:
        """The project of this configuration: roots resolved against the config's folder.

        Returns:
            The :class:`Project` of the configuration, based in the config file's folder (the
            working folder when the file does not exist), with the file's path if it exists.

        Raises:
            ConfigError: The file is unreadable or invalid.
        """
        cfg = self.load()  # roots already absolute (load_config resolves them)
        path = Path(self.config_path)
        base = path.resolve().parent if path.exists() else Path.cwd().resolve()
        return Project(cfg, base, path.resolve() if path.exists() else None)

    def _root(self, value: str) -> Path:
        if is_url(value):
            raise ConfigError(
                f"{value}: a URL root has no local path; this step must be wrapped in "
                "flair_pipeline.defs.staging.staged to read or write it"
            )
        return self.project().base / value  # absolute values stay as they are

    def resolve(self, value: str) -> Path:
        """A config path resolved against the config file's folder.

        Returns:
            `value` under the project's base folder (an absolute `value` unchanged).

        Raises:
            ConfigError: `value` is a URL (no local path), or the config is invalid.
        """
        return self._root(value)

    def raw(self) -> RawLayout:
        """Where the raw inputs are (``paths.raw``, resolved against the project root).

        Returns:
            A :class:`RawLayout` at the resolved raw root; at the URL itself when the root
            is a URL and this resource is a step's that reads it in place
            (:attr:`raw_in_place`).

        Raises:
            ConfigError: The root is a URL (no local path) and the step does not read it in
                place, or the config is invalid.
        """
        value = self.load().paths.raw
        if self.raw_in_place and is_url(value):
            return RawLayout(value)
        return RawLayout(self._root(value))

    def dataset(self) -> DatasetLayout:
        """Where the dataset is built (``paths.dataset``, resolved against the project root).

        Returns:
            A :class:`DatasetLayout` at the resolved dataset root.

        Raises:
            ConfigError: The root is a URL (no local path), or the config is invalid.
        """
        return DatasetLayout(self._root(self.load().paths.dataset))

    def models_dir(self) -> Path:
        """Where trained models go (``paths.models``), one folder per model.

        Returns:
            The resolved models folder (absolute).

        Raises:
            ConfigError: The root is a URL (no local path), or the config is invalid.
        """
        return self._root(self.load().paths.models)

    def eval_dir(self) -> Path:
        """Where evaluations go (``paths.eval``), one folder per model.

        Returns:
            The resolved evaluations folder (absolute).

        Raises:
            ConfigError: The root is a URL (no local path), or the config is invalid.
        """
        return self._root(self.load().paths.eval)

    def root_urls(self) -> tuple[str, str]:
        """The raw and dataset roots as strings: URLs as given, local paths resolved.

        Returns:
            ``(raw, dataset)``: a URL root unchanged, a local one as its absolute path.

        Raises:
            ConfigError: The config is invalid.
        """
        paths = self.load().paths
        raw, dataset = (v if is_url(v) else str(self._root(v)) for v in (paths.raw, paths.dataset))
        return raw, dataset

    def with_roots(
        self, raw: str, dataset: str, *, raw_in_place: bool = False
    ) -> PipelineConfigResource:
        """The same configuration with other raw and dataset roots (staging folders).

        Args:
            raw: The raw root the step reads: a staging folder, or the URL itself.
            dataset: The dataset root it reads and writes.
            raw_in_place: `raw` is a URL the step reads in place (:meth:`raw` gives it).

        Returns:
            A new resource on the same params file, its overrides extended with
            ``paths.raw=<raw>`` and ``paths.dataset=<dataset>`` (they win over earlier ones).
        """
        return PipelineConfigResource(
            config_path=self.config_path,
            overrides=[*self.overrides, f"paths.raw={raw}", f"paths.dataset={dataset}"],
            raw_in_place=raw_in_place,
        )


class SentinelHubCredentials(dg.ConfigurableResource):
    """Sentinel Hub OAuth client, from the environment (SH_CLIENT_ID, SH_CLIENT_SECRET).

    Only the sentinelhub provider uses it; empty values are fine for the stac provider.
    The secret is never logged or written.
    """

    client_id: str = ""
    client_secret: str = ""


def sentinelhub_credentials() -> SentinelHubCredentials:
    """Credentials bound to the environment with EnvVar where the variables are set.

    EnvVar makes Dagster read the values at run time (never stored in the instance); unset
    variables would fail every run, even those that use the stac provider, so they are
    only bound when present.

    Returns:
        A :class:`SentinelHubCredentials` with a ``dg.EnvVar`` for each variable set and
        empty values for the others.
    """
    kwargs = {}
    for field_name, var in (("client_id", "SH_CLIENT_ID"), ("client_secret", "SH_CLIENT_SECRET")):
        if os.environ.get(var):
            kwargs[field_name] = dg.EnvVar(var)
    return SentinelHubCredentials(**kwargs)
