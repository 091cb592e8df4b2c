"""The Dagster UI in a real headless Chromium, on a real webserver with a real run.

`flair-pipeline ui` (what `make ui` runs: `dg dev`, webserver + daemon) serves our code
location on a tmp instance and the tiny world; one domain
partition is registered and materialized through the webserver's GraphQL API (as the
UI's "Materialize" button does), then the asset pages are opened in Chromium.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from flair_pipeline.synthetic.world import WorldSummary

from ..scale.helpers import free_port
from ..services import unavailable

CHROMIUM = Path("/usr/bin/chromium")
DOMAIN = "D033_2021"
BIN = Path(sys.executable).parent


@dataclass
class Server:
    """A running webserver and what the test needs to talk to it."""

    url: str
    location: str
    dataset: Path
    log: Path


def _chromium() -> Path:
    """The system Chromium (never downloaded by pip, never installed by a test: .ci/run
    installs it); missing, the test skips, or fails under FLAIR_REQUIRE_SERVICES."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} missing: install it (apt-get install chromium) or run .ci/run")
    return CHROMIUM


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST a GraphQL query to the webserver; fails the test on GraphQL errors."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        out = json.loads(resp.read())
    assert not out.get("errors"), out["errors"]
    return out["data"]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"webserver exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"webserver not up after {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tiny_world: WorldSummary, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("ui")
    params = tmp / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "paths": {"raw": str(tiny_world.out), "dataset": str(tmp / "dataset")},
                "sampling": {"patch_size": 64},
            }
        )
    )
    home = tmp / "dagster_home"
    home.mkdir()
    # Runs launched from the webserver start at once (no daemon needed to dequeue them).
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n"
        "  class: DefaultRunCoordinator\ntelemetry:\n  enabled: false\n"
    )
    port, log = free_port(), tmp / "webserver.log"
    env = {**os.environ, "DAGSTER_HOME": str(home), "FLAIR_PARAMS": str(params)}
    cmd = [str(BIN / "flair-pipeline"), "ui", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, proc, log, timeout=300)  # dg dev: daemon, code server, webserver
        data = graphql(
            url, "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
        )
        (location,) = [e["name"] for e in data["workspaceOrError"]["locationEntries"]]
        assert location == "flair_pipeline"  # [tool.dg.project] code_location_name
        yield Server(url, location, tmp / "dataset", log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # dg dev and the webserver, daemon, code server
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    # `dg dev` is Dagster's current launcher: nothing says it is superseded
    assert "superseded" not in log.read_text().lower()


ADD_PARTITION = """
mutation($repo: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: "domains", partitionKey: $key) {
    __typename ... on PythonError { message } ... on UnauthorizedError { message }
  }
}"""
LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }"


def test_materialize_from_the_webserver_then_see_it_in_chromium(
    server: Server, tiny_world: WorldSummary, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    chromium = _chromium()  # skips (with the reason) before any work if there is no browser
    repo = {"repositoryLocationName": server.location, "repositoryName": "__repository__"}
    for d in sorted(x.domain for x in tiny_world.domains):
        out = graphql(server.url, ADD_PARTITION, {"repo": repo, "key": d})
        assert out["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess", out
    params = {
        "selector": {**repo, "jobName": "build_domain"},
        # one process for the run (the default forks one per step: slower on 2 cores)
        "runConfigData": {"execution": {"config": {"in_process": {}}}},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": DOMAIN}]},
    }
    out = graphql(server.url, LAUNCH, {"params": params})["launchRun"]
    assert out["__typename"] == "LaunchRunSuccess", out
    run_id = out["run"]["runId"]
    status, deadline = None, time.monotonic() + 180
    while time.monotonic() < deadline:
        status = graphql(server.url, RUN, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS", server.log.read_text()[-3000:]
    assert len(list((server.dataset / "aerial" / DOMAIN).rglob("IMG_*.tif"))) == 64

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        shots = []

        def show(path: str, name: str, expect: str) -> str:
            page.goto(f"{server.url}{path}", wait_until="domcontentloaded")
            page.get_by_text(expect, exact=False).first.wait_for(timeout=60_000)
            skip = page.get_by_role("button", name="Skip")  # first-visit community dialog
            if skip.count():
                skip.first.click()
            page.wait_for_timeout(500)
            shots.append(tmp_path / f"{name}.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            return page.inner_text("body")

        graph = show(
            f"/locations/{server.location}/asset-groups/dataset/lineage",
            "graph",
            "split_assignment",
        )
        for name in (
            "patch_grid",
            "aerial_patches",
            "label_masks",
            "dataset_metadata",
            "split_assignment",
            "domain_sources",
        ):
            assert name in graph
        overview = show("/assets/aerial_patches", "aerial_patches", "Latest materialization")
        assert DOMAIN in overview  # the partition of the latest materialization
        assert "`IMG_<id>.tif`" not in overview and "IMG_<id>.tif: 5 bands" in overview
        assert "geotiff" in overview and "dataset" in overview  # kinds and group
        partitions = show("/assets/aerial_patches?view=partitions", "partitions", "Materialized (")
        assert "Materialized (1)" in partitions and "Missing (2)" in partitions
        assert all(d.domain in partitions for d in tiny_world.domains)
        browser.close()
    for shot in shots:
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
