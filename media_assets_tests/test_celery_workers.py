"""Batches on Celery workers through the daemon's run queue, as deployed: EXECUTOR=celery in the settings (no code
edit), two workers started with `media-pipeline worker`, a `dagster-daemon` whose queue takes
MAX_CONCURRENT_BATCHES runs at once, and three bounded batches queued as a backfill. Every file is verified and
at the destination exactly once, the batches' steps ran on both workers, at most MAX_CONCURRENT_BATCHES ran at
once, and each run's locks were held by the run's own process and let go at its end: no worker keeps one (with
one run slot, a slot kept by a worker made the next run wait for ever). Runs only where Redis answers on
127.0.0.1:6379; tiny photos, so the cost is the steps' start-up."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from media_assets.batches import BatchLifecycle
from media_assets.catalog.locks import batch_key, holder_of, run_slot_key
from media_assets.catalog.repository import Catalog
from media_assets.catalog.states import FileState
from media_assets.defs.runs import RUNNER_PROCESS_TAG
from media_assets.media.hashing import sha256_file
from media_assets.media.sample_library import textured_image

from .celery_deployment import (
    RunsStopped,
    celery_settings,
    deployment_environment,
    processes_of,
    queue_batches,
    redis_answers,
    running_deployment,
    wait_for_runs,
)
from .conftest import write_settings

FILES, BATCH_MAX_FILES, BATCHES = 9, 3, 3
WORKERS = ("alpha", "beta")
RUNS_TIMEOUT_S = 600

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not redis_answers(), reason="no Redis broker answers on 127.0.0.1:6379 (the "
                                                              "Celery test needs one; RabbitMQ alone is not used)")]


@pytest.mark.parametrize("max_concurrent_batches", [1, 2])
def test_three_queued_batches_run_on_two_celery_workers(tmp_path: Path, catalog_conninfo: str,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        max_concurrent_batches: int) -> None:
    (tmp_path / "library").mkdir()
    for n in range(FILES):
        textured_image((160, 120), seed=1000 + n).save(tmp_path / "library" / f"photo-{n}.jpg", quality=90)
    settings_file = write_settings(tmp_path, BATCH_MAX_FILES=str(BATCH_MAX_FILES),
                                   MAX_CONCURRENT_BATCHES=str(max_concurrent_batches), **celery_settings())
    home = tmp_path / "dagster_home"
    env = deployment_environment(settings_file, catalog_conninfo, home)
    for key in ("DAGSTER_HOME", "MEDIA_PIPELINE_DAGSTER_STORAGE_URL"):
        monkeypatch.setenv(key, env[key])
    catalog = Catalog(catalog_conninfo)
    batch_ids = [BatchLifecycle(catalog).create() for _ in range(BATCHES)]
    with DagsterInstance.get() as instance, running_deployment(list(WORKERS), env, tmp_path) as deployment:
        queue_batches(instance, batch_ids, deployment, env, tmp_path)
        try:
            runs = wait_for_runs(instance, BATCHES, deployment, tmp_path, RUNS_TIMEOUT_S)
        except RunsStopped as stopped:
            pytest.fail(str(stopped))
        logs = {path.name: [line for line in path.read_text().splitlines() if "ERROR" in line or "Error" in line]
                for path in tmp_path.glob("*.log")}
        assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS] * BATCHES, logs

        # Each run's process held its locks and let go of them at its end, while the workers still live.
        with psycopg.connect(catalog_conninfo, autocommit=True) as conn:
            held = {key: holder_of(conn, key) for key in [*map(run_slot_key, range(max_concurrent_batches)),
                                                           *map(batch_key, batch_ids)]}
        assert {key: holder for key, holder in held.items() if holder is not None} == {}
        assert len({run.tags[RUNNER_PROCESS_TAG] for run in runs}) == BATCHES  # one process per run

        # At most MAX_CONCURRENT_BATCHES ran at any moment (the run queue and the run slots).
        # The batches' runs only: the daemon may have started a library_stats refresh still running.
        records = instance.get_run_records(filters=RunsFilter(run_ids=[run.run_id for run in runs]))
        edges = sorted([(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records],
                       key=lambda edge: (edge[0], edge[1]))
        running = [sum(step for _, step in edges[:n + 1]) for n in range(len(edges))]
        assert max(running) <= max_concurrent_batches

        # The steps of the batches ran on both workers (dagster-celery's engine event names the worker).
        hosts = {str(getattr(entry, "value", entry)) for run in runs
                 for event in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
                 if event.dagster_event is not None
                 for label, entry in (event.dagster_event.engine_event_data.metadata or {}).items()
                 if label == "Celery worker"}
        assert {host.split("@")[0] for host in hosts} == set(WORKERS), logs

    # Every file was taken by one batch, verified, and is at the destination exactly once.
    verified = [file for batch_id in batch_ids for file in catalog.iter_files(batch_id, FileState.VERIFIED)]
    assert sorted(file.original_name for file in verified) == sorted(f"photo-{n}.jpg" for n in range(FILES))
    assert all(sum(catalog.count_by_state(batch_id).values()) <= BATCH_MAX_FILES for batch_id in batch_ids)
    at_destination = sorted(sha256_file(p) for p in (tmp_path / "destination").rglob("*") if p.is_file())
    assert at_destination == sorted(file.output_hash or "" for file in verified)
    assert len(set(at_destination)) == FILES
    catalog.close()
    assert processes_of(home) == [], "the daemon, the workers and the runs' processes are all gone"
