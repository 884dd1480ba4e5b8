"""The Dagster UI for real: `media-pipeline ui` (a code server, the webserver and the daemon) as a subprocess on
PostgreSQL storage (the catalog's database, as in production), talked to over GraphQL like the UI does."""

from __future__ import annotations

import json
import logging
import os
import re
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

from media_assets.batches import is_batch_id
from media_assets.catalog.database import DATABASE_URL_ENV, dagster_storage_url, ensure_database
from media_assets.catalog.migrate import upgrade_to_head
from media_assets.catalog.phase_totals import phase_totals
from media_assets.catalog.repository import Catalog
from media_assets.catalog.states import FileState
from media_assets.defs.batch.assets import PHASES
from media_assets.defs.daemon import AUTOMATION_LOGGER, SENSOR_LOGGER, QuietSensorTicks
from media_assets.defs.instance import DAGSTER_STORAGE_ENV, REPO_INSTANCE_YAML
from media_assets.media import sample_library as sample
from media_assets.media.hashing import sha256_file

from .conftest import _with_dbname, present, write_settings

BIN = Path(sys.executable).parent
LOCATION = "media_assets.definitions"  # the code location's name (as Dagster named `-m media_assets.definitions`)
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


@dataclass
class Dagster:
    """A running webserver + daemon and what they work on."""

    url: str
    catalog: Catalog
    folder: Path
    log: Path
    started: float  # time.monotonic() when the UI answered

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
            raise AssertionError(f"media-pipeline ui exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"the webserver did not answer in {timeout} s:\n{log.read_text()[-3000:]}")


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
    """`media-pipeline ui` (code server, webserver, daemon) on a database of its own, stopped and dropped
    afterwards."""
    database = f"ui_{uuid.uuid4().hex[:10]}"
    ensure_database(postgres_admin, database)
    conninfo = _with_dbname(postgres_admin, database)
    upgrade_to_head(conninfo)
    env = {**dagster_environment(folder, conninfo), **extra_env}
    url = f"http://127.0.0.1:{_free_port()}"
    log = folder / "dagster.log"
    with log.open("w") as out:
        ui = subprocess.Popen([str(BIN / "media-pipeline"), "ui", "--port", url.rsplit(":", 1)[1]], env=env,
                              cwd=folder, stdout=out, stderr=subprocess.STDOUT)
    catalog = Catalog(conninfo)
    try:
        _wait_for(url, ui, log)
        yield Dagster(url=url, catalog=catalog, folder=folder, log=log, started=time.monotonic())
    finally:
        catalog.close()
        ui.terminate()  # it stops its code server, webserver and daemon
        try:
            ui.wait(timeout=120)
        except subprocess.TimeoutExpired:
            ui.kill()
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
    added = dagster.graphql(ADD_PARTITION, {"repo": REPO, "key": batch})["addDynamicPartition"]
    assert added["__typename"] == "AddDynamicPartitionSuccess", added

    first = _launched(dagster.graphql(LAUNCH, {"params": {
        "partitionNames": [batch], "assetSelection": [{"path": [p]} for p in PHASES],
        "title": "backfill test"}})["launchPartitionBackfill"])
    assert _wait_for_backfill(dagster, first) in {"COMPLETED_FAILED", "FAILED"}
    assert present(dagster.catalog.batch(batch)).status == "failed"
    assert dagster.catalog.count_by_state(batch) == {"staged": 1, "uploaded": 2}

    (destination / "b.jpg").rmdir()
    second = _launched(dagster.graphql(REEXECUTE, {"params": {
        "parentRunId": first, "strategy": "FROM_FAILURE"}})["reexecutePartitionBackfill"])
    assert _wait_for_backfill(dagster, second) in {"COMPLETED_SUCCESS", "COMPLETED"}

    catalog = dagster.catalog
    assert present(catalog.batch(batch)).status == "succeeded"
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
        assert sha256_file(destination / present(upload.remote_id)) == file.output_hash
    verified = present(catalog.conn.execute("SELECT count(*) AS n, count(DISTINCT file_id) AS files FROM state_changes"
                                            " WHERE to_state = 'verified'").fetchone())
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


LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  }
}"""
RUN_STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
RUN_FAILURES = """
query($id: ID!) {
  logsForRun(runId: $id) {
    ... on EventConnection { events { __typename ... on ExecutionStepFailureEvent { error { message } } } }
  }
}"""
PARTITION_METADATA = """
query($key: [String!]!, $partition: String!) {
  assetOrError(assetKey: {path: $key}) {
    ... on Asset { assetMaterializations(partitions: [$partition], limit: 1) { metadataEntries {
      label ... on IntMetadataEntry { intRepr } ... on FloatMetadataEntry { floatValue } } } }
  }
}"""
REPO = {"repositoryName": "__repository__", "repositoryLocationName": LOCATION}


def _launch_job(dagster: Dagster, job: str, tags: dict[str, str] | None = None) -> str:
    """Launch a job the way the launchpad's *Launch run* does; returns the run id."""
    result = dagster.graphql(LAUNCH_RUN, {"params": {
        "selector": {**REPO, "jobName": job},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}}})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def _wait_for_run(dagster: Dagster, run_id: str, timeout: float = 420) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = dagster.graphql(RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        if status in {"SUCCESS", "FAILURE", "CANCELED"}:
            return status
        time.sleep(3)
    raise AssertionError(f"run {run_id} still going after {timeout} s:\n{dagster.log.read_text()[-3000:]}")


def _partition_metadata(dagster: Dagster, phase: str, batch: str) -> dict[str, float]:
    asset = dagster.graphql(PARTITION_METADATA, {"key": [phase], "partition": batch})["assetOrError"]
    [materialization] = asset["assetMaterializations"]
    return {entry["label"]: float(entry["intRepr"]) if "intRepr" in entry else entry["floatValue"]
            for entry in materialization["metadataEntries"] if "intRepr" in entry or "floatValue" in entry}


@pytest.mark.slow
def test_batches_started_from_the_ui_and_recovered_with_the_retry_job(dagster: Dagster) -> None:
    """The README's paths, as the launchpad calls them: `new_batch` twice (each batch fails on a file its
    destination cannot take), then `retry_failed_batches` finishes both without redoing finished files, and
    every phase's numbers for each batch are the batch's totals, not the retry's."""
    library, destination = dagster.folder / "library", dagster.folder / "destination"
    catalog = dagster.catalog
    before = {batch.id for batch in catalog.recent_batches(100)}
    failed: list[str] = []
    sources: dict[str, list[str]] = {}
    for names in (["ui-d.jpg", "ui-e.jpg"], ["ui-f.jpg", "ui-g.jpg"]):
        for name in names:
            sample.make_photo(library / name, seed=zlib.crc32(name.encode()), size=(64, 48))
        (destination / names[1]).mkdir(parents=True)  # a real fault: the folder destination cannot write it
        assert _wait_for_run(dagster, _launch_job(dagster, "new_batch")) == "FAILURE"
        [batch] = {b.id for b in catalog.recent_batches(100)} - before - set(failed)
        assert is_batch_id(batch) and present(catalog.batch(batch)).status == "failed"
        failed.append(batch)
        sources[batch] = names
    assert catalog.failed_batches() == failed
    for names in sources.values():
        (destination / names[1]).rmdir()

    assert _wait_for_run(dagster, _launch_job(dagster, "retry_failed_batches")) == "SUCCESS"
    assert catalog.failed_batches() == []
    for batch, names in sources.items():
        assert present(catalog.batch(batch)).status == "succeeded"
        assert catalog.count_by_state(batch) == {"verified": 2}
        moves = catalog.conn.execute(
            "SELECT c.to_state, count(*) AS n FROM state_changes c JOIN media_files f ON f.id = c.file_id"
            " WHERE f.batch_id = %s AND c.to_state IN ('downloaded', 'uploaded', 'verified') GROUP BY c.to_state",
            (batch,)).fetchall()
        assert {row["to_state"]: row["n"] for row in moves} == {"downloaded": 2, "uploaded": 2, "verified": 2}
        for phase in PHASES:
            numbers, totals = _partition_metadata(dagster, phase, batch), phase_totals(catalog, batch, phase)
            assert (numbers["files"], numbers["failed"], numbers["bytes_in"], numbers["bytes_out"]) == (
                totals.files, totals.failed, totals.bytes_in, totals.bytes_out), (batch, phase)
        download = _partition_metadata(dagster, "download", batch)
        assert download["files"] == 2 and download["bytes_in"] == sum((library / n).stat().st_size for n in names)
        for phase in ("deduplication", "compression", "file_preparation", "icloud_upload", "sorting",
                      "verification"):
            assert _partition_metadata(dagster, phase, batch)["files"] == 2, (batch, phase)
    assert sorted(p.name for p in destination.iterdir() if p.name.startswith("ui-")) == sorted(
        name for names in sources.values() for name in names)


@pytest.mark.slow
def test_a_partition_key_that_is_not_a_batch_id_is_refused_in_the_ui(dagster: Dagster) -> None:
    added = dagster.graphql(ADD_PARTITION, {"repo": REPO, "key": "ui-test-1"})["addDynamicPartition"]
    assert added["__typename"] == "AddDynamicPartitionSuccess", added
    run_id = _launch_job(dagster, "media_batch", {"dagster/partition": "ui-test-1"})
    assert _wait_for_run(dagster, run_id) == "FAILURE"
    events = dagster.graphql(RUN_FAILURES, {"id": run_id})["logsForRun"]["events"]
    messages = [e["error"]["message"] for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
    assert any("'ui-test-1' is not a batch id" in m and "new_batch" in m for m in messages), messages
    assert dagster.catalog.batch("ui-test-1") is None


@pytest.mark.slow
def test_the_ui_logs_no_replaced_code_server_nor_repeated_sensor_ticks(dagster: Dagster) -> None:
    """After two minutes (and the runs of the tests above): the daemon used to replace its own code server every
    minute, each replaced one logging "No heartbeat received in 20 seconds, shutting down", and every sensor
    tick logged two lines; each sensor now logs a skip only when its reason changes."""
    time.sleep(max(0.0, dagster.started + 120 - time.monotonic()))
    log = dagster.log.read_text()
    assert "No heartbeat received" not in log
    assert "Checking for new runs for sensor" not in log
    assert "PreviewWarning" not in log
    last: dict[str, str] = {}
    for sensor, reason in re.findall(r"Sensor (\S+) skipped: (.*)", log):
        assert last.get(sensor) != reason, f"{sensor} logged '{reason}' twice in a row"
        last[sensor] = reason
    assert last["batch_sensor"] == "PIPELINE_EXECUTION_MODE is 'once': batches start only from the CLI or the UI"
    assert "Tick produced 0 runs" not in log


def test_the_daemon_filter_passes_a_sensor_tick_when_it_acts_or_its_reason_changes() -> None:
    quiet = QuietSensorTicks()

    def passes(logger: str, message: str, level: int = logging.INFO) -> bool:
        return quiet.filter(logging.LogRecord(logger, level, __file__, 1, message, None, None))

    ticks = [passes(SENSOR_LOGGER, "Checking for new runs for sensor: retry_sensor"),
             passes(SENSOR_LOGGER, "Sensor retry_sensor skipped: no failed batch due for a re-run"),
             passes(SENSOR_LOGGER, "Checking for new runs for sensor: retry_sensor"),
             passes(SENSOR_LOGGER, "Sensor retry_sensor skipped: no failed batch due for a re-run"),
             passes(SENSOR_LOGGER, "Sensor batch_sensor skipped: no failed batch due for a re-run"),
             passes(SENSOR_LOGGER, "Sensor retry_sensor skipped: failed batches waiting for their next re-run: x"),
             passes(SENSOR_LOGGER, "Launching run for retry_sensor"),
             passes(SENSOR_LOGGER, "Sensor retry_sensor skipped: no failed batch due for a re-run"),
             passes(SENSOR_LOGGER, "No run requests returned for mirror, skipping"),
             passes(SENSOR_LOGGER, "No run requests returned for mirror, skipping"),
             passes(SENSOR_LOGGER, "Sensor retry_sensor skipped: no failed batch due for a re-run", logging.WARNING)]
    assert ticks == [False, True, False, False, True, True, True, True, True, False, True]
    automation = ["Checking 1 assets/checks and 0 observable source assets for library_stats_sensor",
                  "Prefetching asset records for 2 records.", "Done prefetching asset records.",
                  "Tick produced 0 runs and 1 asset evaluation for evaluation ID 2 for library_stats_sensor",
                  "Adding 1 asset evaluations for evaluation 2", "Submitting 0 runs for evaluation 2",
                  "Finished auto-materialization tick for library_stats_sensor"]
    assert not any(passes(AUTOMATION_LOGGER, message) for message in automation)
    assert passes(AUTOMATION_LOGGER, "Tick produced 1 run and 1 asset evaluation for evaluation ID 9")
    assert passes(AUTOMATION_LOGGER, "Submitting 1 run for evaluation 9 for library_stats_sensor")


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
        added = dagster.graphql(ADD_PARTITION, {"repo": REPO, "key": batch})["addDynamicPartition"]
        assert added["__typename"] == "AddDynamicPartitionSuccess", added
        first = _launched(dagster.graphql(LAUNCH, {"params": {
            "partitionNames": [batch], "assetSelection": [{"path": [p]} for p in PHASES],
            "title": "killed"}})["launchPartitionBackfill"])
        assert _wait_for_backfill(dagster, first) in {"COMPLETED_FAILED", "FAILED"}
        assert not armed.exists(), "the worker was killed"
        deadline = time.monotonic() + 120  # the failure sensor records it in the catalog on its next tick
        while present(dagster.catalog.batch(batch)).status != "failed" and time.monotonic() < deadline:
            time.sleep(2)
        assert present(dagster.catalog.batch(batch)).status == "failed"

        second = _launched(dagster.graphql(REEXECUTE, {"params": {
            "parentRunId": first, "strategy": "FROM_FAILURE"}})["reexecutePartitionBackfill"])
        assert _wait_for_backfill(dagster, second) in {"COMPLETED_SUCCESS", "COMPLETED"}

        catalog = dagster.catalog
        assert catalog.count_by_state(batch) == {"verified": 3}
        destination = folder / "destination"
        assert sorted(p.name for p in destination.iterdir()) == names
        assert not [p for p in folder.rglob(".partial-*")]
        verified = present(catalog.conn.execute(
            "SELECT count(*) AS n, count(DISTINCT file_id) AS files FROM state_changes WHERE to_state = 'verified'"
        ).fetchone())
        assert (verified["n"], verified["files"]) == (3, 3)
