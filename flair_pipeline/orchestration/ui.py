"""Start the Dagster UI (`dagster dev`: webserver + daemon) the way `make ui` does.

Why a wrapper rather than calling `dagster dev` directly: a busy port must be a clear
error before anything starts (not a stack trace from the webserver after the code server
and the daemon are already up, nor a silent fallback to another port that the user's
bookmark does not point at); DAGSTER_HOME must be the persistent one with its
dagster.yaml (telemetry off, PostgreSQL checked when configured), so that the runs of
the CLI and of `dvc repro` show in the UI.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from flair_pipeline.errors import FlairPipelineError


def port_in_use(host: str, port: int) -> bool:
    """True if something already listens on host:port.

    SO_REUSEADDR, as the webserver itself sets, so connections in TIME_WAIT from a server
    that just stopped do not count as busy; a listening socket still does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def dagster_dev_command(host: str, port: int, workspace: Path) -> list[str]:
    """`dagster dev` from this environment's bin folder (webserver + daemon)."""
    exe = Path(sys.executable).parent / "dagster"
    return [str(exe), "dev", "-w", str(workspace), "-h", host, "-p", str(port)]


def start_ui(host: str, port: int, workspace: Path, home: str | Path | None = None) -> None:
    """Check the port and the home, then replace this process with `dagster dev`."""
    if not workspace.is_file():
        raise FlairPipelineError(f"{workspace}: workspace file not found (run from the repo root)")
    if port_in_use(host, port):
        raise FlairPipelineError(
            f"port {port} on {host} is already in use (another `make ui` or web server?): "
            f"stop it, or pick a free port: make ui UI_PORT=3001 / flair-pipeline ui --port 3001"
        )
    from flair_pipeline.orchestration.run import dagster_instance

    # the same home and gpu-pool limit as CLI runs: a run started from the UI on a fresh
    # home must not put two trainings on one GPU
    dagster_instance(home).dispose()
    path = os.environ["DAGSTER_HOME"]
    cmd = dagster_dev_command(host, port, workspace)
    print(f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={path})", file=sys.stderr, flush=True)
    os.execv(cmd[0], cmd)
