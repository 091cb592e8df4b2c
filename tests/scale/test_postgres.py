"""The Dagster instance on a real PostgreSQL server (initdb + pg_ctl on 127.0.0.1)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from flair_pipeline.defs.resources import PipelineConfigResource
from flair_pipeline.orchestration.instance import InstanceStorageError
from flair_pipeline.orchestration.run import dagster_instance
from flair_pipeline.synthetic.world import WorldSummary

from ..conftest import REPO
from ..services import unavailable
from .helpers import build_in_process, free_port, write_params

DOMAIN = "D033_2021"
POSTGRES_YAML = REPO / "deploy" / "dagster-postgres.yaml"


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def _as_server_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its commands as the `postgres` user then."""
    if os.geteuid() != 0:
        return []
    if (
        shutil.which("runuser") is None
        or subprocess.run(["id", "postgres"], capture_output=True).returncode
    ):
        unavailable("running as root without a `postgres` user to start PostgreSQL as")
    return ["runuser", "-u", "postgres", "--"]


@pytest.fixture(scope="module")
def postgres() -> Iterator[tuple[str, int]]:
    """A throwaway PostgreSQL server on a free loopback port; yields (host, port)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        unavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) not installed: .ci/run installs them"
        )
    prefix = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="flair-pg-"))  # not under pytest's root-only tmp
    shutil.chown(folder, "postgres") if prefix else None
    data, port = folder / "data", free_port()
    subprocess.run(
        [
            *prefix,
            initdb,
            "-D",
            str(data),
            "-U",
            "dagster",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    subprocess.run(
        [
            *prefix,
            pg_ctl,
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(folder / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        check=True,
    )
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE flair_dagster")
        conn.close()
        yield "127.0.0.1", port
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)


def _home(tmp: Path, mp: pytest.MonkeyPatch, host: str, port: int) -> Path:
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(POSTGRES_YAML, home / "dagster.yaml")
    for var, value in (
        ("HOST", host),
        ("PORT", str(port)),
        ("USER", "dagster"),
        ("PASSWORD", "unused-with-trust"),
        ("DB", "flair_dagster"),
    ):
        mp.setenv(f"DAGSTER_PG_{var}", value)
    mp.setenv("DAGSTER_HOME", str(home))  # restored after the test (dagster_instance sets it)
    return home


def test_partitioned_run_is_stored_in_postgres(
    postgres: tuple[str, int],
    tiny_world: WorldSummary,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psycopg2

    host, port = postgres
    home = _home(tmp_path, monkeypatch, host, port)
    flair = PipelineConfigResource(
        config_path=str(write_params(tmp_path, str(tiny_world.out), "dataset"))
    )
    with dagster_instance(home) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        build_in_process(flair, instance, [DOMAIN], split=False)
    # a fresh instance from the same yaml (another process would do the same) reads it back
    with dg.DagsterInstance.from_config(str(home)) as again:
        runs = again.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": DOMAIN}))
        assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
        event = again.get_latest_materialization_event(dg.AssetKey("aerial_patches"))
        assert event.run_id == runs[0].run_id
        assert event.asset_materialization.partition == DOMAIN
        assert again.get_dynamic_partitions("domains") == [DOMAIN]
    with psycopg2.connect(host=host, port=port, user="dagster", dbname="flair_dagster") as conn:
        cur = conn.cursor()
        cur.execute("SELECT run_id FROM runs")
        assert [r[0] for r in cur.fetchall()] == [runs[0].run_id]


def test_unreachable_postgres_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nobody listens there
    home = _home(tmp_path, monkeypatch, "127.0.0.1", port)
    with pytest.raises(InstanceStorageError, match=rf"PostgreSQL at 127\.0\.0\.1:{port} is "):
        dagster_instance(home)
