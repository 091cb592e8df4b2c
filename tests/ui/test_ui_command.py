"""`flair-pipeline ui` (what `make ui` runs): webserver + daemon, a busy port refused, and a
non-loopback host refused without --expose (issue 30)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flair_pipeline.orchestration.ui import dg_dev_command, is_loopback, project_root

from ..conftest import REPO
from ..scale.helpers import free_port
from .test_browser import graphql

CLI = str(Path(sys.executable).parent / "flair-pipeline")
HEALTH = (
    """{ instance { info daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"""
)


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
        r = subprocess.run(
            [CLI, "ui", "--port", str(port)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "home").exists()  # refused before touching anything


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "ui.example.org"])
def test_a_non_loopback_host_is_refused_without_expose(tmp_path: Path, host: str) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    r = subprocess.run(
        [CLI, "ui", "--host", host, "--port", str(free_port())],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr  # one line, no traceback, no warning
    assert lines[0].startswith(f"error: --host {host} is not a loopback address")
    assert "no authentication" in lines[0] and "--expose" in lines[0]
    assert not (tmp_path / "home").exists()  # refused before touching anything


def test_expose_prints_what_it_opens_before_anything_starts(tmp_path: Path) -> None:
    # a busy port stops the command after the warning, before `dg dev`
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [CLI, "ui", "--host", "0.0.0.0", "--port", str(port), "--expose"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 1, r.stderr
    warning, error = r.stderr.splitlines()
    assert warning.startswith(f"warning: the Dagster UI will listen on 0.0.0.0:{port}")
    assert "NO authentication" in warning and "reverse proxy that authenticates" in warning
    assert f"http://127.0.0.1:{port}" in warning  # where the proxy forwards to
    assert error.startswith(f"error: port {port} on 0.0.0.0 is already in use")
    assert not (tmp_path / "home").exists()  # refused before touching anything


def test_the_ui_is_dg_dev_on_this_checkout() -> None:
    # `make ui` is Dagster's `dg dev` on the project [tool.dg] declares (not `dagster dev`)
    root = project_root()
    assert (root / "pyproject.toml").is_file() and root == REPO
    cmd = dg_dev_command("127.0.0.1", 3999, root)
    assert Path(cmd[0]).name == "dg" and cmd[1] == "dev"
    assert cmd[cmd.index("--target-path") + 1] == str(REPO)
    assert cmd[-4:] == ["-h", "127.0.0.1", "-p", "3999"]


def test_loopback_hosts_need_no_flag() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "myhost", "128.0.0.1"):
        assert not is_loopback(host), host


def test_ui_starts_webserver_and_daemon_on_the_persistent_home(tmp_path: Path) -> None:
    home, port, log = tmp_path / "home", free_port(), tmp_path / "ui.log"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [CLI, "ui", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url, statuses, info = f"http://127.0.0.1:{port}", {}, ""
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                data = graphql(url, HEALTH)["instance"]
            except OSError:  # not listening yet
                time.sleep(1)
                continue
            info = data["info"] or ""
            statuses = {
                s["daemonType"]: s["healthy"]
                for s in data["daemonHealth"]["allDaemonStatuses"]
                if s["required"]
            }
            if statuses and all(statuses.values()):
                break
            time.sleep(2)
        assert proc.poll() is None, log.read_text()[-3000:]
        assert statuses.get("SENSOR") and statuses.get("SCHEDULER"), (statuses, log.read_text())
        assert str(home) in info  # the instance is the DAGSTER_HOME we gave, not a temp one
        assert (home / "dagster.yaml").read_text().startswith("telemetry:")
        locations = graphql(
            url, "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
        )["workspaceOrError"]["locationEntries"]
        assert [e["name"] for e in locations] == ["flair_pipeline"]  # the dg project's location
        assert "superseded" not in log.read_text().lower()  # `dg dev`, not `dagster dev`
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # dg dev and the children it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    # runs launched from the UI share one GPU: the home the UI made limits the gpu pool
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import dagster as dg; s = dg.DagsterInstance.get()"
            ".event_log_storage; print(s.get_concurrency_info('gpu').slot_count)",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr[-2000:]
