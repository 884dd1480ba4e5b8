"""Batches on Celery workers (dagster-celery, a Redis broker): two workers started here from
deploy/celery/executor.yaml, three bounded batches run two at a time, every file verified and at the destination
exactly once, and the batches' steps executed by both workers. Runs only where Redis answers on 127.0.0.1:6379.

Two runs at a time are kept by the test's own launcher (MAX_CONCURRENT_BATCHES is the daemon queue's limit,
which needs a daemon); the catalog keeps the concurrent batches from taking the same file."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance

from media_assets.batches import BatchLifecycle
from media_assets.catalog.database import DATABASE_URL_ENV, dagster_storage_url
from media_assets.catalog.repository import Catalog
from media_assets.catalog.states import FileState
from media_assets.defs.instance import DAGSTER_STORAGE_ENV
from media_assets.media.hashing import sha256_file
from media_assets.media.sample_library import textured_image

from .conftest import write_settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REDIS = ("127.0.0.1", 6379)
FILES, BATCH_MAX_FILES, BATCHES, MAX_CONCURRENT_BATCHES = 9, 3, 3, 2
WORKERS = ("alpha", "beta")
RUNS_TIMEOUT_S = 240


def _redis_answers() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not _redis_answers(), reason="no Redis broker answers on 127.0.0.1:6379 (the "
                                                              "Celery test needs one; RabbitMQ alone is not used)")]


@pytest.fixture
def environment(tmp_path: Path, catalog_conninfo: str) -> dict[str, str]:
    """What every process of the deployment shares: the settings, the catalog, DAGSTER_HOME and the broker (a
    Redis database of its own, so the test's queue meets no other Celery user's)."""
    library = tmp_path / "library"
    library.mkdir()
    for n in range(FILES):
        textured_image((320, 240), seed=1000 + n).save(library / f"photo-{n}.jpg", quality=90)
    settings_file = write_settings(tmp_path, BATCH_MAX_FILES=str(BATCH_MAX_FILES))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    database = random.randint(1, 15)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MEDIA_PIPELINE_", "DAGSTER_"))}
    env.update({
        "MEDIA_PIPELINE_SETTINGS": str(settings_file), DATABASE_URL_ENV: catalog_conninfo,
        DAGSTER_STORAGE_ENV: dagster_storage_url(catalog_conninfo), "DAGSTER_HOME": str(home),
        "CELERY_BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{database}",
        "CELERY_RESULT_BACKEND": f"redis://{REDIS[0]}:{REDIS[1]}/{database}",
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),  # dagster-celery starts `celery`
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    return env


@pytest.fixture
def workers(environment: dict[str, str], tmp_path: Path) -> Iterator[list[subprocess.Popen]]:
    """Two workers as deployed (`dagster-celery worker start`), one task at a time each; every process they
    start is in their own session and is stopped with it."""
    started = []
    for name in WORKERS:
        log = (tmp_path / f"worker-{name}.log").open("w")
        started.append(subprocess.Popen(
            [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
             "-y", str(ROOT / "deploy/celery/executor.yaml"), "-n", name, "--", "--pool=solo"],
            env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    yield started
    for process in started:
        with_group = process.pid
        try:
            os.killpg(with_group, signal.SIGTERM)
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(with_group, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass


def _run_batches(batch_ids: list[str], environment: dict[str, str], tmp_path: Path,
                 workers: list[subprocess.Popen]) -> list[int]:
    """Run the batches at most MAX_CONCURRENT_BATCHES at a time, each in a run process of its own; stop them
    all if a worker dies or they take longer than RUNS_TIMEOUT_S (a run whose steps no worker takes waits for ever)."""
    pending, running, codes = list(batch_ids), [], []
    deadline = time.monotonic() + RUNS_TIMEOUT_S
    while pending or running:
        if time.monotonic() > deadline or any(worker.poll() is not None for worker in workers):
            for process in running:
                process.kill()
                process.wait()
            pytest.fail("a Celery worker stopped or the runs did not finish: see the logs in " + str(tmp_path))
        while pending and len(running) < MAX_CONCURRENT_BATCHES:
            batch_id = pending.pop(0)
            running.append(subprocess.Popen(
                [sys.executable, "-m", "media_assets_tests.celery_batch", batch_id,
                 str(ROOT / "deploy/celery/executor.yaml")],
                env=environment, cwd=ROOT, stdout=(tmp_path / f"run-{batch_id}.log").open("w"),
                stderr=subprocess.STDOUT))
        time.sleep(0.5)
        for process in [p for p in running if p.poll() is not None]:
            running.remove(process)
            codes.append(process.returncode)
    return codes


def test_three_batches_run_on_two_celery_workers(environment: dict[str, str], workers: list[subprocess.Popen],
                                                 tmp_path: Path, catalog_conninfo: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    catalog = Catalog(catalog_conninfo)
    with DagsterInstance.get() as instance:
        batch_ids = [BatchLifecycle(catalog).create() for _ in range(BATCHES)]
        instance.add_dynamic_partitions("batch", batch_ids)

        codes = _run_batches(batch_ids, environment, tmp_path, workers)
        logs = {path.name: [line for line in path.read_text().splitlines() if " - ERROR - " in line or "Error" in line]
                for path in tmp_path.glob("*.log")}
        assert codes == [0] * BATCHES, logs

        # Every file was taken by one batch, verified, and is at the destination exactly once.
        verified = [file for batch_id in batch_ids for file in catalog.iter_files(batch_id, FileState.VERIFIED)]
        assert sorted(file.original_name for file in verified) == sorted(f"photo-{n}.jpg" for n in range(FILES))
        assert all(sum(catalog.count_by_state(batch_id).values()) <= BATCH_MAX_FILES for batch_id in batch_ids)
        destination = tmp_path / "destination"
        at_destination = sorted(sha256_file(p) for p in destination.rglob("*") if p.is_file())
        assert at_destination == sorted(file.output_hash for file in verified)
        assert len(set(at_destination)) == FILES

        # The steps of the batches ran on both workers (dagster-celery's engine event names the worker).
        runs = instance.get_runs()
        assert len(runs) == BATCHES
        hosts = {str(getattr(entry, "value", entry)) for run in runs
                 for event in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
                 for label, entry in (event.dagster_event.engine_event_data.metadata or {}).items()
                 if label == "Celery worker"}
        assert {host.split("@")[0] for host in hosts} == set(WORKERS), logs
    catalog.close()
