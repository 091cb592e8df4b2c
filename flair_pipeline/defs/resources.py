"""Resources: the pipeline configuration and the data roots it names.

Assets read params.yaml through this resource, so the Dagster UI, the CLI and `dvc repro`
run with exactly the parameters DVC tracks. Relative roots are resolved against the
config file's folder, so the webserver and the CLI agree whatever their working folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from flair_pipeline.config import PipelineConfig, load_config
from flair_pipeline.dataset.layout import DatasetLayout, RawLayout


class FlairConfig(dg.ConfigurableResource):
    """Loads params.yaml (+ overrides) and exposes the data layout."""

    config_path: str = "params.yaml"
    overrides: list[str] = []  # noqa: RUF012  (pydantic copies defaults)

    def load(self) -> PipelineConfig:
        path = Path(self.config_path)
        return load_config(path if path.exists() else None, self.overrides)

    def _root(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else Path(self.config_path).resolve().parent / p

    def resolve(self, value: str) -> Path:
        """A config path resolved against the config file's folder."""
        return self._root(value)

    def raw(self) -> RawLayout:
        return RawLayout(self._root(self.load().paths.raw))

    def dataset(self) -> DatasetLayout:
        return DatasetLayout(self._root(self.load().paths.dataset))


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
    """
    kwargs = {}
    for field_name, var in (("client_id", "SH_CLIENT_ID"), ("client_secret", "SH_CLIENT_SECRET")):
        if os.environ.get(var):
            kwargs[field_name] = dg.EnvVar(var)
    return SentinelHubCredentials(**kwargs)
