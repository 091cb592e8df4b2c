"""Dagster components of flair_pipeline (``[tool.dg.project] registry_modules``).

:class:`DatasetBuild` lets a user declare, in a ``defs/<name>/defs.yaml``, a named dataset
build: which domains, with which recipe. ``dg check defs`` validates it, ``dg list defs``
shows what it yields, and turning its sensor on in the UI builds the declared domains.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg

from flair_pipeline.defs import assets as assets_package
from flair_pipeline.defs.jobs import domain_build_assets
from flair_pipeline.defs.partitions import DOMAINS, domains_partitions
from flair_pipeline.domains import domain_id_problem
from flair_pipeline.errors import ConfigError
from flair_pipeline.recipes import set_args


class DatasetBuild(dg.Component, dg.Model, dg.Resolvable):
    """A named build of chosen domains' dataset files with a chosen recipe.

    ``defs/<name>/defs.yaml``::

        type: flair_pipeline.components.DatasetBuild
        attributes:
          name: gironde
          domains: [D033_2021, D033_2018]
          recipe: recipes/flair-gpu.yaml   # optional, relative to the project root

    yields the job ``build_<name>`` (the per-domain dataset assets, run with the recipe's
    keys as overrides of params.yaml) and the sensor ``<name>_domains`` (stopped by
    default): once on, it adds the declared domains to the ``domains`` partitions and
    requests one run per domain, once per recipe version.
    """

    name: str
    domains: list[str]
    recipe: str | None = None
    description: str = ""

    def overrides(self, project_root: Path) -> list[str]:
        """The recipe's keys as ``key=value`` overrides of params.yaml, in file order.

        Args:
            project_root: The folder the recipe path is relative to.

        Returns:
            No overrides without a recipe.

        Raises:
            ConfigError: The recipe is unreadable, not a mapping, or has a value the
                configuration schema refuses (one line naming the file, as
                :func:`~flair_pipeline.recipes.set_args`).
        """
        if self.recipe is None:
            return []
        try:
            args = set_args(project_root / self.recipe, project_root / "params.yaml")
            return [a.lstrip("+") for a in args[1::2]]  # `+key`: Hydra's, not --set's
        except ConfigError as exc:  # one line: pydantic's report spans several
            raise ConfigError("; ".join(s.strip() for s in str(exc).splitlines())) from None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The job and the sensor of this build.

        Args:
            context: Dagster's load context (the project root resolves the recipe).

        Returns:
            Definitions with ``build_<name>`` and ``<name>_domains``.

        Raises:
            ConfigError: An empty or invalid domain list, a bad name or a bad recipe (one
                line naming the defs.yaml and what to fix).
        """
        where = context.path / "defs.yaml"
        if not self.name.isidentifier():
            raise ConfigError(f"{where}: name {self.name!r} must be a Python identifier")
        if not self.domains:
            raise ConfigError(f"{where}: domains is empty: list the domain ids to build")
        for i, domain in enumerate(self.domains):
            problem = domain_id_problem(domain)
            if problem:
                raise ConfigError(f"{where}: domains[{i}] {domain!r}: {problem}")
        overrides = self.overrides(Path(context.project_root))
        version = hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:12]
        keys = [
            key
            for a in domain_build_assets(
                [
                    a
                    for a in dg.load_assets_from_package_module(assets_package)
                    if isinstance(a, dg.AssetsDefinition)
                ]
            )
            for key in a.keys
        ]
        tags = {"flair/dataset_build": self.name, "flair/recipe": self.recipe or "params.yaml"}
        job = dg.define_asset_job(
            f"build_{self.name}",
            selection=dg.AssetSelection.assets(*keys),
            config={"resources": {"flair": {"config": {"overrides": overrides}}}},
            tags=tags,
            description=self.description
            or f"Dataset build {self.name}: {', '.join(self.domains)} with "
            f"{self.recipe or 'params.yaml'} (one run per domain partition).",
        )
        domains = list(self.domains)
        name = self.name

        @dg.sensor(
            name=f"{name}_domains",
            job=job,
            default_status=dg.DefaultSensorStatus.STOPPED,
            minimum_interval_seconds=300,
            description=f"Adds and builds the domains of dataset build {name}, once per recipe.",
        )
        def request_domains(context: dg.SensorEvaluationContext) -> dg.SensorResult:
            missing = [d for d in domains if not context.instance.has_dynamic_partition(DOMAINS, d)]
            return dg.SensorResult(
                run_requests=[
                    dg.RunRequest(partition_key=d, run_key=f"{name}:{d}:{version}") for d in domains
                ],
                dynamic_partitions_requests=(
                    [domains_partitions.build_add_request(missing)] if missing else []
                ),
            )

        return dg.Definitions(jobs=[job], sensors=[request_domains])
