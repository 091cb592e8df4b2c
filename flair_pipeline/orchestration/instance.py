"""The Dagster instance: its generated dagster.yaml and checks on its storage.

The Dagster instance: its generated dagster.yaml (run monitoring, retries, queue) and
checks on its storage before it is used (PostgreSQL reachability).

Why: with ``deploy/dagster-postgres.yaml`` as ``$DAGSTER_HOME/dagster.yaml``, an
unreachable database otherwise surfaces as a long SQLAlchemy/psycopg2 traceback after
dagster-postgres has retried for a while, deep inside whichever front door touched the
instance first. Checking the TCP endpoint first turns that into one line naming
host:port and the variables that set them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from flair_pipeline.errors import ConfigError, FlairPipelineError

PG_VARS = "DAGSTER_PG_HOST, DAGSTER_PG_PORT, DAGSTER_PG_USER, DAGSTER_PG_PASSWORD, DAGSTER_PG_DB"


class InstanceStorageError(FlairPipelineError):
    """The instance's database cannot be reached."""


def _value(v: Any, where: Path) -> Any:
    """A config value, with Dagster's ``{env: NAME}`` form read from the environment.

    Args:
        v: A value of dagster.yaml.
        where: The dagster.yaml, named in the error.

    Returns:
        The environment variable's value for ``{env: NAME}``, else `v` unchanged.

    Raises:
        ConfigError: The variable is not set.
    """
    if isinstance(v, Mapping) and set(v) == {"env"}:
        name = str(v["env"])
        if name not in os.environ:
            raise ConfigError(f"{where}: environment variable {name} is not set ({PG_VARS})")
        return os.environ[name]
    return v


def _postgres_blocks(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every mapping of the config that holds postgres_db or postgres_url.

    Args:
        node: A parsed YAML value.

    Yields:
        Those mappings, depth first.
    """
    if isinstance(node, Mapping):
        if "postgres_db" in node or "postgres_url" in node:
            yield node
        for child in node.values():
            yield from _postgres_blocks(child)
    elif isinstance(node, list):
        for child in node:
            yield from _postgres_blocks(child)


def postgres_endpoints(config_file: Path) -> list[tuple[str, int]]:
    """(host, port) of every PostgreSQL database a dagster.yaml names (empty for SQLite).

    Args:
        config_file: A dagster.yaml (may be absent).

    Returns:
        The distinct endpoints, in file order (port 5432 unless given).

    Raises:
        ConfigError: The file is not valid YAML, an ``{env: NAME}`` value is unset, or a
            port is not a number.
    """
    if not config_file.is_file():
        return []
    try:
        data = yaml.safe_load(config_file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_file}: not valid YAML: {exc}") from None
    found: list[tuple[str, int]] = []
    for block in _postgres_blocks(data):
        if block.get("postgres_url"):
            url = urlsplit(str(_value(block["postgres_url"], config_file)))
            host, port = url.hostname or "localhost", url.port or 5432
        else:
            db = block["postgres_db"] or {}
            host = str(_value(db.get("hostname", "localhost"), config_file))
            port_text = _value(db.get("port", 5432), config_file)
            try:
                port = int(port_text)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{config_file}: PostgreSQL port must be a number, got {port_text!r}"
                ) from None
        if (host, port) not in found:
            found.append((host, port))
    return found


def check_instance_storage(home: str | Path, timeout: float = 3.0) -> None:
    """Raise InstanceStorageError if a PostgreSQL server named by home/dagster.yaml is down.

    Args:
        home: DAGSTER_HOME.
        timeout: Seconds to wait for each TCP connection.

    Raises:
        InstanceStorageError: A server does not accept a connection: one line naming it, the
            dagster.yaml and the variables to check.
    """
    config_file = Path(home) / "dagster.yaml"
    for host, port in postgres_endpoints(config_file):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            raise InstanceStorageError(
                f"PostgreSQL at {host}:{port} is unreachable ({exc.strerror or exc}); it is the "
                f"Dagster instance storage configured in {config_file}. Start the server or fix "
                f"the connection settings ({PG_VARS})."
            ) from None


#: The dagster.yaml older versions generated; upgraded in place to GENERATED_YAML.
OLD_GENERATED_YAML = "telemetry:\n  enabled: false\n"

#: The generated dagster.yaml of the first "runs that end" version (no run launcher block).
_GENERATED_YAML_V2 = """\
telemetry:
  enabled: false
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  cancel_timeout_seconds: 300
  poll_interval_seconds: 60
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
run_queue:
  tag_concurrency_limits:
    - key: dagster/partition
      value:
        applyLimitPerUniqueValue: true
      limit: 1
"""


#: Earlier generated files, upgraded in place to GENERATED_YAML by :func:`prepare_home`.
OLD_GENERATED_YAMLS = (OLD_GENERATED_YAML, _GENERATED_YAML_V2)

#: The generated instance config (issue 15, "runs that end"):
#: * telemetry off: offline machines, no banner about it;
#: * run launcher: :class:`flair_pipeline.orchestration.launcher.FlairRunLauncher`, the default
#:   launcher plus a run-worker health check (the default one has none), so that run
#:   monitoring fails a STARTED run whose worker process is gone;
#: * run monitoring: every 60 s a STARTED run's worker is probed (dead: the run is marked
#:   FAILURE), a run stuck STARTING or CANCELING is failed after 5 min, and a run past
#:   ``dagster/max_runtime_seconds`` is failed; no resume (the launcher cannot resume);
#: * run retries: a run that failed for an infrastructure reason (worker lost, launcher
#:   error) is retried twice, from its failed steps; a step failure (bad input, a bug) is not;
#: * run queue: at most one queued run per ``dagster/partition`` value at a time, so two
#:   materializations of one domain (sensor + UI, two sensors ticks) never write the same
#:   folder together.
GENERATED_YAML = """\
telemetry:
  enabled: false
run_launcher:
  module: flair_pipeline.orchestration.launcher
  class: FlairRunLauncher
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  cancel_timeout_seconds: 300
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
run_queue:
  tag_concurrency_limits:
    - key: dagster/partition
      value:
        applyLimitPerUniqueValue: true
      limit: 1
"""


def prepare_home(home: str | Path | None) -> Path:
    """The persistent DAGSTER_HOME (default ./.dagster_home), created with a dagster.yaml.

    A missing dagster.yaml, or one identical to what an older version generated, becomes
    :data:`GENERATED_YAML`; a dagster.yaml someone wrote (``deploy/``) is never touched.

    Args:
        home: The folder, or None for ``$DAGSTER_HOME``, else ``./.dagster_home``.

    Returns:
        Its absolute path.
    """
    path = Path(home or os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists() or config.read_text() in OLD_GENERATED_YAMLS:
        tmp = config.with_name(f".dagster.yaml.{os.getpid()}.tmp")
        tmp.write_text(GENERATED_YAML)
        tmp.replace(config)
    check_instance_storage(path)
    return path
