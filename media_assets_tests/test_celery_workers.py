"""Batches on Celery workers (dagster-celery, a Redis broker): two workers started here from
deploy/celery/executor.yaml, three bounded batches run two at a time, every file verified and at the destination
exactly once, and the batches' steps executed by both workers. Runs only where Redis answers on 127.0.0.1:6379.

The three runs start at once, each in a process of its own holding its locks as `media-pipeline run` does: the
run slots (MAX_CONCURRENT_BATCHES=2) let two run and the third wait; the catalog keeps the concurrent batches
from taking the same file."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance

from media_assets.batches import BatchLifecycle
from media_assets.catalog.repository import Catalog
from media_assets.catalog.states import FileState
from media_assets.media.hashing import sha256_file
from media_assets.media.sample_library import textured_image

from .celery_batch import (
    RunsStopped,
    deployment_environment,
    queue_batches,
    redis_answers,
    run_batches,
    start_workers,
    stop_workers,
)
from .conftest import write_settings

FILES, BATCH_MAX_FILES, BATCHES, MAX_CONCURRENT_BATCHES = 9, 3, 3, 2
WORKERS = ("alpha", "beta")
RUNS_TIMEOUT_S = 240


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not redis_answers(), reason="no Redis broker answers on 127.0.0.1:6379 (the "
                                                              "Celery test needs one; RabbitMQ alone is not used)")]


@pytest.fixture
def environment(tmp_path: Path, catalog_conninfo: str) -> dict[str, str]:
    library = tmp_path / "library"
    library.mkdir()
    for n in range(FILES):
        textured_image((320, 240), seed=1000 + n).save(library / f"photo-{n}.jpg", quality=90)
    settings_file = write_settings(tmp_path, BATCH_MAX_FILES=str(BATCH_MAX_FILES),
                                   MAX_CONCURRENT_BATCHES=str(MAX_CONCURRENT_BATCHES))
    return deployment_environment(settings_file, catalog_conninfo, tmp_path / "dagster_home")


@pytest.fixture
def workers(environment: dict[str, str], tmp_path: Path) -> Iterator[list[subprocess.Popen]]:
    started = start_workers(list(WORKERS), environment, tmp_path)
    yield started
    stop_workers(started)


def test_three_batches_run_on_two_celery_workers(environment: dict[str, str], workers: list[subprocess.Popen],
                                                 tmp_path: Path, catalog_conninfo: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    catalog = Catalog(catalog_conninfo)
    with DagsterInstance.get() as instance:
        batch_ids = [BatchLifecycle(catalog).create() for _ in range(BATCHES)]
        queue_batches(instance, batch_ids)

        try:
            codes = run_batches(batch_ids, environment, tmp_path, workers, BATCHES, RUNS_TIMEOUT_S)
        except RunsStopped as stopped:
            pytest.fail(str(stopped))
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
        # All three were started at once; the run slots let at most MAX_CONCURRENT_BATCHES run at any moment.
        records = instance.get_run_records()
        edges = sorted([(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records],
                       key=lambda edge: (edge[0], edge[1]))
        running = [sum(step for _, step in edges[:n + 1]) for n in range(len(edges))]
        assert max(running) <= MAX_CONCURRENT_BATCHES
        hosts = {str(getattr(entry, "value", entry)) for run in runs
                 for event in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
                 for label, entry in (event.dagster_event.engine_event_data.metadata or {}).items()
                 if label == "Celery worker"}
        assert {host.split("@")[0] for host in hosts} == set(WORKERS), logs
    catalog.close()
