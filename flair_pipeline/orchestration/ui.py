"""Start the Dagster UI (`dg dev`: webserver + daemon) the way `make ui` does.

`dg dev` is Dagster's own launcher for a ``dg`` project (``[tool.dg]`` in pyproject.toml;
the code location is :mod:`flair_pipeline.definitions`); it superseded `dagster dev`.
Why a wrapper rather than calling `dg dev` directly: a busy port must be a clear
error before anything starts (not a stack trace from the webserver after the code server
and the daemon are already up, nor a silent fallback to another port that the user's
bookmark does not point at); DAGSTER_HOME must be the persistent one with its
dagster.yaml (telemetry off, PostgreSQL checked when configured), so that the runs of
the CLI and of `dvc repro` show in the UI.

Exposure is a decision (issue 30): Dagster OSS has no authentication, so anyone who reaches
the port can launch, cancel and delete runs as the server's user. A host that is not a
loopback address (127.0.0.0/8, ::1, ``localhost``) is refused in one line unless the caller
passes ``expose=True`` (``flair-pipeline ui --expose``), and then :data:`EXPOSURE_WARNING`
says what is opened and how to put it behind an authenticating reverse proxy.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import socket
import sys
from pathlib import Path

from flair_pipeline.errors import FlairPipelineError

#: Printed before a UI is started on a non-loopback host with ``--expose``.
EXPOSURE_WARNING = (
    "warning: the Dagster UI will listen on {host}:{port}, reachable by every machine that can "
    "reach this one, with NO authentication (Dagster OSS has none): anyone who reaches it can "
    "launch, cancel and delete runs and wipe assets as user {user}. Put it behind a reverse "
    "proxy that authenticates and serves HTTPS (e.g. nginx `auth_basic` or oauth2-proxy "
    "forwarding to http://127.0.0.1:{port}, with the UI left on --host 127.0.0.1) and firewall "
    "the port; for one person, `ssh -L {port}:127.0.0.1:{port} <this host>` needs no exposure "
    "at all."
)


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine.

    Args:
        host: The ``--host`` value: an IPv4/IPv6 address (brackets allowed) or a name.

    Returns:
        True for ``localhost`` and any address in 127.0.0.0/8 or ::1; False for everything
        else, including ``0.0.0.0``/``::`` (every interface) and any other name (it may
        resolve to a public interface).
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, port: int, expose: bool) -> str | None:
    """Refuse a non-loopback host without `expose`; say what it opens with it.

    Args:
        host: The interface the UI would listen on.
        port: Its port.
        expose: The caller's explicit consent (``--expose``).

    Returns:
        None for a loopback host; the warning to print for an exposed one.

    Raises:
        FlairPipelineError: `host` is not a loopback address and `expose` is False.
    """
    if is_loopback(host):
        return None
    if not expose:
        raise FlairPipelineError(
            f"--host {host} is not a loopback address and the Dagster UI has no "
            f"authentication: anyone reaching port {port} could launch runs as this user; "
            "keep --host 127.0.0.1 (reach it through `ssh -L` or an authenticating reverse "
            "proxy, see docs/operations.md), or pass --expose to open it anyway"
        )
    return EXPOSURE_WARNING.format(host=host, port=port, user=_user())


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def port_in_use(host: str, port: int) -> bool:
    """True if something already listens on host:port.

    SO_REUSEADDR, as the webserver itself sets, so connections in TIME_WAIT from a server
    that just stopped do not count as busy; a listening socket still does.

    Args:
        host: The address the webserver would bind.
        port: The TCP port it would bind.

    Returns:
        True if binding ``(host, port)`` fails (the port is taken), False if it is free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def project_root() -> Path:
    """The source checkout that declares this package to ``dg``.

    Returns:
        The folder above the ``flair_pipeline`` package, whose pyproject.toml has ``[tool.dg]``.

    Raises:
        FlairPipelineError: The package is not run from a checkout with that pyproject.toml
            (e.g. installed as a wheel), so ``dg`` could not find the project.
    """
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or "[tool.dg]" not in pyproject.read_text(encoding="utf-8"):
        raise FlairPipelineError(
            f"{pyproject}: no pyproject.toml with [tool.dg] above the flair_pipeline package; "
            "`dg dev` needs the source checkout: run from a clone installed with `make install`"
        )
    return root


def dg_dev_command(host: str, port: int, root: Path) -> list[str]:
    """`dg dev` from this environment's bin folder (webserver + daemon) on the project at `root`.

    Args:
        host: Interface to listen on.
        port: Web server port.
        root: The project root (pyproject.toml with ``[tool.dg]``).

    Returns:
        The command line; ``--check-yaml`` validates the ``defs.yaml`` components first.
    """
    exe = Path(sys.executable).parent / "dg"
    return [
        str(exe),
        "dev",
        "--target-path",
        str(root),
        "--check-yaml",
        "-h",
        host,
        "-p",
        str(port),
    ]


def start_ui(
    host: str,
    port: int,
    home: str | Path | None = None,
    *,
    expose: bool = False,
) -> None:
    """Check the exposure, the port and the home, then replace this process with `dg dev`.

    Args:
        host: Interface to listen on; not a loopback address only with `expose`.
        port: Web server port (must be free).
        home: DAGSTER_HOME (default: the environment's, else ``.dagster_home``).
        expose: Consent to listen on a non-loopback host (prints what that opens).

    Raises:
        FlairPipelineError: A non-loopback host without `expose`, a busy port or no ``dg``
            project above the package (one line each).
    """
    warning = check_exposure(host, port, expose)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if port_in_use(host, port):
        raise FlairPipelineError(
            f"port {port} on {host} is already in use (another `make ui` or web server?): "
            f"stop it, or pick a free port: make ui UI_PORT=3001 / flair-pipeline ui --port 3001"
        )
    root = project_root()
    from flair_pipeline.orchestration.run import dagster_instance

    # the same home and gpu-pool limit as CLI runs: a run started from the UI on a fresh
    # home must not put two trainings on one GPU
    dagster_instance(home).dispose()
    path = os.environ["DAGSTER_HOME"]
    cmd = dg_dev_command(host, port, root)
    print(f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={path})", file=sys.stderr, flush=True)
    os.execv(cmd[0], cmd)
