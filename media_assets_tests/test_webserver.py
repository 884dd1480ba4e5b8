"""The Dagster UI for real: a dagster-webserver and a dagster-daemon as subprocesses on PostgreSQL storage (the
catalog's database, as in production), talked to over GraphQL like the UI does."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from media_assets.catalog.database import DATABASE_URL_ENV, dagster_storage_url, ensure_database
from media_assets.catalog.migrate import upgrade_to_head
from media_assets.catalog.repository import Catalog
from media_assets.catalog.states import FileState
from media_assets.defs.batch.assets import PHASES
from media_assets.defs.instance import DAGSTER_STORAGE_ENV, REPO_INSTANCE_YAML
from media_assets.media import sample_library as sample
from media_assets.media.hashing import sha256_file

from .conftest import _with_dbname, write_settings

BIN = Path(sys.executable).parent
MODULE = ["-m", "media_assets.definitions"]
LOCATION = "media_assets.definitions"  # the location name Dagster gives `-m media_assets.definitions`
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


@dataclass
class Dagster:
    """A running webserver + daemon and what they work on."""

    url: str
    catalog: Catalog
    folder: Path
    log: Path

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.url}/graphql", method="POST",
                                         data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.load(response)
        assert "errors" not in body, body["errors"]
        return body["data"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dagster-webserver exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"dagster-webserver did not answer in {timeout} s:\n{log.read_text()[-3000:]}")


def dagster_environment(folder: Path, conninfo: str) -> dict[str, str]:
    """What `media-pipeline ui` gives its children: the settings, the catalog and a DAGSTER_HOME holding the
    repository's dagster.yaml (Postgres storage, queued runs, pools)."""
    home = folder / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO_INSTANCE_YAML, home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MEDIA_PIPELINE_", "DAGSTER_"))}
    env.update({"MEDIA_PIPELINE_SETTINGS": str(write_settings(folder)), DATABASE_URL_ENV: conninfo,
                DAGSTER_STORAGE_ENV: dagster_storage_url(conninfo), "DAGSTER_HOME": str(home)})
    return env


@contextmanager
def running_dagster(postgres_admin: str, folder: Path, **extra_env: str) -> Iterator[Dagster]:
    """A webserver and a daemon on a database of their own, stopped and dropped afterwards."""
    database = f"ui_{uuid.uuid4().hex[:10]}"
    ensure_database(postgres_admin, database)
    conninfo = _with_dbname(postgres_admin, database)
    upgrade_to_head(conninfo)
    env = {**dagster_environment(folder, conninfo), **extra_env}
    url = f"http://127.0.0.1:{_free_port()}"
    log = folder / "dagster.log"
    with log.open("w") as out:
        children = [
            subprocess.Popen([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", url.rsplit(":", 1)[1],
                              *MODULE], env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT),
            subprocess.Popen([str(BIN / "dagster-daemon"), "run", *MODULE], env=env, cwd=folder, stdout=out,
                             stderr=subprocess.STDOUT),
        ]
    catalog = Catalog(conninfo)
    try:
        _wait_for(url, children[0], log)
        yield Dagster(url=url, catalog=catalog, folder=folder, log=log)
    finally:
        catalog.close()
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        with psycopg.connect(postgres_admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


@pytest.fixture(scope="module")
def dagster(postgres_admin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dagster]:
    with running_dagster(postgres_admin, tmp_path_factory.mktemp("ui")) as running:
        yield running


ASSET_GRAPH = """
query {
  repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } }
  assetNodes { assetKey { path } groupName dependencyKeys { path } }
}"""


@pytest.mark.slow
def test_the_definitions_load_in_a_real_webserver(dagster: Dagster) -> None:
    data = dagster.graphql(ASSET_GRAPH)
    [repository] = data["repositoriesOrError"]["nodes"]
    assert repository["location"]["name"] == LOCATION
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert set(PHASES) | {"library_stats"} <= set(nodes)
    # The phases form one chain in their order, and the library's numbers hang off the last one.
    for previous, phase in zip(PHASES, PHASES[1:], strict=False):
        assert [d["path"] for d in nodes[phase]["dependencyKeys"]] == [[previous]]
    assert nodes["download"]["dependencyKeys"] == []
    assert [d["path"] for d in nodes["library_stats"]["dependencyKeys"]] == [["verification"]]
    assert {nodes[p]["groupName"] for p in PHASES} == {"media"}


ADD_PARTITION = """
mutation($repo: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: "batch", partitionKey: $key) {
    __typename ... on PythonError { message }
  }
}"""
LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  }
}"""
REEXECUTE = """
mutation($params: ReexecutionParams!) {
  reexecutePartitionBackfill(reexecutionParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  }
}"""
STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
}"""


def _wait_for_backfill(dagster: Dagster, backfill_id: str, timeout: float = 420) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = dagster.graphql(STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]
        if status in FINISHED:
            return status
        time.sleep(3)
    raise AssertionError(f"backfill {backfill_id} still running after {timeout} s:\n"
                         f"{dagster.log.read_text()[-3000:]}")


def _launched(result: dict[str, Any]) -> str:
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


@pytest.mark.slow
def test_a_failed_batch_is_backfilled_from_failure(dagster: Dagster) -> None:
    library = dagster.folder / "library"
    names = ["a.jpg", "b.jpg", "c.jpg"]
    for name in names:
        sample.make_photo(library / name, seed=zlib.crc32(name.encode()), size=(64, 48))
    destination = dagster.folder / "destination"
    (destination / "b.jpg").mkdir(parents=True)  # a real fault: the folder destination cannot write b.jpg
    batch = "20261124-000001"
    repo = {"repositoryName": "__repository__", "repositoryLocationName": LOCATION}
    added = dagster.graphql(ADD_PARTITION, {"repo": repo, "key": batch})["addDynamicPartition"]
    assert added["__typename"] == "AddDynamicPartitionSuccess", added

    first = _launched(dagster.graphql(LAUNCH, {"params": {
        "partitionNames": [batch], "assetSelection": [{"path": [p]} for p in PHASES],
        "title": "backfill test"}})["launchPartitionBackfill"])
    assert _wait_for_backfill(dagster, first) in {"COMPLETED_FAILED", "FAILED"}
    assert dagster.catalog.batch(batch).status == "failed"
    assert dagster.catalog.count_by_state(batch) == {"staged": 1, "uploaded": 2}

    (destination / "b.jpg").rmdir()
    second = _launched(dagster.graphql(REEXECUTE, {"params": {
        "parentRunId": first, "strategy": "FROM_FAILURE"}})["reexecutePartitionBackfill"])
    assert _wait_for_backfill(dagster, second) in {"COMPLETED_SUCCESS", "COMPLETED"}

    catalog = dagster.catalog
    assert catalog.batch(batch).status == "succeeded"
    assert catalog.count_by_state(batch) == {"verified": 3}
    # From failure: download ran once; the upload ran again and sent only what was missing.
    runs = catalog.conn.execute("SELECT phase, count(*) AS n FROM phase_runs WHERE batch_id = %s GROUP BY phase",
                                (batch,)).fetchall()
    assert {row["phase"]: row["n"] for row in runs}["download"] == 1
    assert {row["phase"]: row["n"] for row in runs}["icloud_upload"] == 2
    assert sorted(p.name for p in destination.iterdir()) == names
    for file in catalog.iter_files(batch, FileState.VERIFIED):
        [upload] = catalog.uploads_of(file.id)
        assert upload.verified_at is not None
        assert sha256_file(destination / upload.remote_id) == file.output_hash
    verified = catalog.conn.execute("SELECT count(*) AS n, count(DISTINCT file_id) AS files FROM state_changes"
                                    " WHERE to_state = 'verified'").fetchone()
    assert (verified["n"], verified["files"]) == (3, 3)
    # A fresh Dagster home: the daemon refreshes the dashboard after the batch without anyone starting a sensor.
    metadata = _wait_for_library_stats(dagster)
    assert {"files_verified", "by_capture_month", "by_batch_month"} <= metadata


LATEST_LIBRARY_STATS = """
query {
  assetOrError(assetKey: {path: ["library_stats"]}) {
    ... on Asset { assetMaterializations(limit: 1) { metadataEntries { label } } }
  }
}"""


def _wait_for_library_stats(dagster: Dagster, timeout: float = 300) -> set[str]:
    """The metadata labels of library_stats' first materialization, once the daemon has made one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        asset = dagster.graphql(LATEST_LIBRARY_STATS)["assetOrError"]
        if asset.get("assetMaterializations"):
            return {entry["label"] for entry in asset["assetMaterializations"][0]["metadataEntries"]}
        time.sleep(3)
    raise AssertionError(f"library_stats not refreshed after {timeout} s:\n{dagster.log.read_text()[-3000:]}")


@pytest.mark.slow
def test_a_run_killed_mid_phase_is_noticed_and_backfilled_from_failure(
        postgres_admin: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """SIGKILL the daemon's run worker inside compression; the batch sensor notices the dead worker, the backfill
    ends failed, and re-executing it from failure finishes the batch with nothing done twice."""
    folder = tmp_path_factory.mktemp("killed")
    armed = folder / "kill-armed"
    armed.touch()
    names = ["a.jpg", "b.jpg", "c.jpg"]
    for name in names:
        sample.make_photo(folder / "library" / name, seed=zlib.crc32(name.encode()), size=(64, 48))
    with running_dagster(postgres_admin, folder, MEDIA_PIPELINE_FAULTS="kill@move:compressed:2",
                         MEDIA_PIPELINE_FAULTS_ARMED=str(armed)) as dagster:
        batch = "20261124-000002"
        repo = {"repositoryName": "__repository__", "repositoryLocationName": LOCATION}
        added = dagster.graphql(ADD_PARTITION, {"repo": repo, "key": batch})["addDynamicPartition"]
        assert added["__typename"] == "AddDynamicPartitionSuccess", added
        first = _launched(dagster.graphql(LAUNCH, {"params": {
            "partitionNames": [batch], "assetSelection": [{"path": [p]} for p in PHASES],
            "title": "killed"}})["launchPartitionBackfill"])
        assert _wait_for_backfill(dagster, first) in {"COMPLETED_FAILED", "FAILED"}
        assert not armed.exists(), "the worker was killed"
        deadline = time.monotonic() + 120  # the failure sensor records it in the catalog on its next tick
        while dagster.catalog.batch(batch).status != "failed" and time.monotonic() < deadline:
            time.sleep(2)
        assert dagster.catalog.batch(batch).status == "failed"

        second = _launched(dagster.graphql(REEXECUTE, {"params": {
            "parentRunId": first, "strategy": "FROM_FAILURE"}})["reexecutePartitionBackfill"])
        assert _wait_for_backfill(dagster, second) in {"COMPLETED_SUCCESS", "COMPLETED"}

        catalog = dagster.catalog
        assert catalog.count_by_state(batch) == {"verified": 3}
        destination = folder / "destination"
        assert sorted(p.name for p in destination.iterdir()) == names
        assert not [p for p in folder.rglob(".partial-*")]
        verified = catalog.conn.execute("SELECT count(*) AS n, count(DISTINCT file_id) AS files FROM state_changes"
                                        " WHERE to_state = 'verified'").fetchone()
        assert (verified["n"], verified["files"]) == (3, 3)
