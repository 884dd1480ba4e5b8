"""Runs never collide: a second `run` while a batch runs names it and exits (or waits with --wait); a run whose
batch lock is free is dead whatever host or pid it had, and is reclaimed with its pool slot and its batch."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import psycopg
import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster_postgres import PostgresEventLogStorage

from media_assets.catalog.database import DATABASE_URL_ENV
from media_assets.catalog.locks import DAGSTER_SETUP, POOL_SETUP, AdvisoryLock, batch_key, is_free, run_slot_key
from media_assets.catalog.repository import Catalog
from media_assets.defs.batch.assets import ICLOUD_POOL
from media_assets.defs.batch.executor import create_pools
from media_assets.defs.instance import Pipeline, open_pipeline
from media_assets.defs.runs import PARTITION_TAG, RUNNER_PROCESS_TAG, reclaim_dead_runs
from media_assets.faults import FAULTS_ENV
from media_assets.media import sample_library as sample
from media_assets.media.hashing import sha256_file
from media_assets.media.sample_library import write_sample_library
from media_assets.runner import run_batch
from media_assets.settings import load_settings

from .conftest import MakePipeline, present, write_settings
from .daemon_runs import storage_instance


def _cli(folder: Path, conninfo: str, *args: str, faults: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MEDIA_PIPELINE_", "DAGSTER_"))}
    env.update(MEDIA_PIPELINE_SETTINGS=str(folder / "settings.env"), MEDIA_PIPELINE_DATABASE_URL=conninfo)
    if faults:
        env[FAULTS_ENV] = faults
    return subprocess.Popen([sys.executable, "-m", "media_assets.cli", *args], env=env, cwd=folder, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 300
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


@pytest.mark.slow
def test_a_second_run_names_the_running_batch_and_exits_or_waits(tmp_path: Path, catalog_conninfo: str) -> None:
    write_settings(tmp_path)
    write_sample_library(tmp_path / "library")
    first = _cli(tmp_path, catalog_conninfo, "run", faults="stop@move:compressed:1")
    try:
        _wait_until(lambda: _stopped(first.pid) or first.poll() is not None, "the first run reaches compression")
        catalog = Catalog(catalog_conninfo)
        [batch] = catalog.recent_batches(1)
        catalog.close()

        second = _cli(tmp_path, catalog_conninfo, "run")
        _out, err = second.communicate(timeout=300)
        assert second.returncode == 75, err[-3000:]
        assert f"media-pipeline: batch {batch.id} is running (since " in err
        assert f", pid {first.pid}); run again with --wait" in err

        again = _cli(tmp_path, catalog_conninfo, "run", "--batch", batch.id)
        _out, err = again.communicate(timeout=300)
        assert again.returncode == 75 and f"batch {batch.id} is running" in err, err[-3000:]

        waiting = _cli(tmp_path, catalog_conninfo, "run", "--wait")
        stderr = waiting.stderr
        assert stderr is not None
        _wait_until(lambda: "waiting: batch" in stderr.readline(), "the waiting run says what it waits for")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out[-2000:] + err[-3000:]
    out, _err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0 and "nothing new in the sources" in out, out[-2000:]


def test_runs_starting_together_on_a_fresh_installation_make_the_pool_once(catalog_conninfo: str,
                                                                          tmp_path: Path) -> None:
    """Dagster makes a pool's row on a step's first claim; two runs doing it at once failed one of them
    (UniqueViolation on concurrency_limits). Each run makes the pools first, one process at a time."""
    instances = [storage_instance(catalog_conninfo, tmp_path / f"home-{n}") for n in range(4)]
    errors: list[BaseException] = []

    def start(instance: DagsterInstance) -> None:
        try:
            create_pools(instance, catalog_conninfo)
        except BaseException as error:  # collected: an exception in a thread would otherwise vanish
            errors.append(error)

    threads = [threading.Thread(target=start, args=(instance,)) for instance in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert instances[0].event_log_storage.get_concurrency_keys() == {ICLOUD_POOL}
        info = instances[0].event_log_storage.get_concurrency_info(ICLOUD_POOL)
        assert info.slot_count == 1
    finally:
        for instance in instances:
            instance.dispose()


def test_processes_starting_on_a_new_installation_make_dagsters_tables_one_at_a_time(
        catalog_conninfo: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster makes its tables when its storage is first opened; two `media-pipeline` commands starting together
    on a new installation both made them and one failed ("type event_logs already exists"). A process opening
    the pipeline while another sets Dagster up waits for it, then finds the tables made."""
    monkeypatch.setenv(DATABASE_URL_ENV, catalog_conninfo)
    settings = load_settings(write_settings(tmp_path))
    opened: list[Pipeline] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(open_pipeline(settings))
        except BaseException as error:  # collected: an exception in a thread would otherwise vanish
            errors.append(error)

    def dagster_tables() -> bool:
        with psycopg.connect(catalog_conninfo) as conn:
            return conn.execute("SELECT to_regclass('event_logs') IS NOT NULL").fetchone() == (True,)

    caplog.set_level(logging.WARNING, logger="media_assets.catalog.locks")
    starting = threading.Thread(target=start)
    with AdvisoryLock(catalog_conninfo, DAGSTER_SETUP, "another process setting up Dagster") as other:
        other.acquire(wait=False)
        starting.start()
        _wait_until(lambda: "setting up Dagster's tables waits" in caplog.text or dagster_tables() or errors,
                    "the starting process waits or makes the tables")
        assert not dagster_tables(), "made while another process sets Dagster up"
    starting.join(timeout=120)
    try:
        assert errors == [] and len(opened) == 1
        assert dagster_tables()
    finally:
        for pipeline in opened:
            pipeline.close()


def test_a_run_in_this_process_makes_the_pools_before_a_step_claims_one(make_pipeline: MakePipeline, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`media-pipeline run` executes its job in process, where Dagster's in-process executor stands in for the
    job's own and so never made the pools: two runs started together on a fresh installation both made the icloud
    pool's row at their first claim, and one failed (UniqueViolation) before any phase started. It makes them
    first, under the pool setup lock, like a daemon run; no step makes one."""
    opened = make_pipeline()
    sample.make_photo(tmp_path / "library" / "a.jpg", seed=1, size=(64, 48))
    pipeline = Pipeline(settings=opened.settings, catalog=opened.catalog,
                        instance=storage_instance(opened.catalog.conninfo, tmp_path / "dagster_home"))
    storage = pipeline.instance.event_log_storage
    made: list[tuple[str, bool]] = []
    make = storage.initialize_concurrency_limit_to_default
    watcher = psycopg.connect(opened.catalog.conninfo, autocommit=True)

    def watched(key: str) -> bool:
        made.append((key, not is_free(watcher, POOL_SETUP)))
        return make(key)

    monkeypatch.setattr(storage, "initialize_concurrency_limit_to_default", watched)
    try:
        report = run_batch(pipeline)
    finally:
        pipeline.instance.dispose()
        watcher.close()
    assert report.success, report.error
    assert made == [(ICLOUD_POOL, True)], "made once, holding the pool setup lock"


def test_a_dead_run_is_found_by_its_free_lock_whatever_host_it_had(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    pipeline = make_pipeline()
    instance = storage_instance(pipeline.catalog.conninfo, tmp_path / "dagster_home")
    try:
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        runs = {}
        for batch_id, host in (("b-dead", "a-container-long-gone:4242"), ("b-alive", "another-host:1")):
            pipeline.catalog.create_batch(batch_id)
            pipeline.catalog.set_batch_status(batch_id, "running")
            run = DagsterRun(job_name="media_batch", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED,
                             tags={PARTITION_TAG: batch_id, RUNNER_PROCESS_TAG: host})
            instance.add_run(run)
            runs[batch_id] = run
        instance.event_log_storage.set_concurrency_slots("icloud", 1)
        instance.event_log_storage.claim_concurrency_slot("icloud", runs["b-dead"].run_id, "download")
        alive = AdvisoryLock(pipeline.catalog.conninfo, batch_key("b-alive"), "batch b-alive")
        assert alive.try_acquire()  # b-alive's process lives (on whatever host): it holds its lock

        reclaimed = reclaim_dead_runs(instance, pipeline.settings, pipeline.catalog)

        assert reclaimed == [runs["b-dead"].run_id]
        assert present(instance.get_run_by_id(runs["b-dead"].run_id)).status is DagsterRunStatus.FAILURE
        assert present(instance.get_run_by_id(runs["b-alive"].run_id)).status is DagsterRunStatus.STARTED
        assert instance.event_log_storage.get_concurrency_info("icloud").active_slot_count == 0, "its slot freed"
        assert present(pipeline.catalog.batch("b-dead")).status == "failed"
        assert present(pipeline.catalog.batch("b-alive")).status == "running"
        alive.release()
    finally:
        instance.dispose()


def test_a_batch_left_running_by_a_run_that_lost_the_catalog_is_marked_failed(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    pipeline.catalog.create_batch("b-lost")
    pipeline.catalog.set_batch_status("b-lost", "running")
    reclaim_dead_runs(pipeline.instance, pipeline.settings, pipeline.catalog)
    assert present(pipeline.catalog.batch("b-lost")).status == "failed"


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_a_run_cleanly(tmp_path: Path, catalog_conninfo: str, stop: signal.Signals) -> None:
    write_settings(tmp_path)
    write_sample_library(tmp_path / "library")
    run = _cli(tmp_path, catalog_conninfo, "run", faults="stop@move:compressed:1")
    _wait_until(lambda: _stopped(run.pid) or run.poll() is not None, "the run reaches compression")
    os.kill(run.pid, stop)
    os.kill(run.pid, signal.SIGCONT)
    out, err = run.communicate(timeout=300)

    assert run.returncode == 128 + stop, out[-2000:] + err[-3000:]
    assert err.strip().splitlines()[-1].startswith(f"media-pipeline: stopped by {stop.name}; the batch is marked "
                                                    "failed"), err[-3000:]
    catalog = Catalog(catalog_conninfo)
    try:
        [batch] = catalog.recent_batches(1)
        assert batch.status == "failed"
    finally:
        catalog.close()
    assert "compression: stopped" in out, "the report says why the batch failed"


def test_re_running_a_batch_reclaims_its_dead_run_and_pool_slot(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    """The re-run holds the batch's lock itself before it looks for dead runs: that lock is not a live run."""
    from media_assets.catalog.locks import process_run_locks

    pipeline = make_pipeline()
    instance = storage_instance(pipeline.catalog.conninfo, tmp_path / "dagster_home")
    try:
        pipeline.catalog.create_batch("b1")
        run = DagsterRun(job_name="media_batch", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED,
                         tags={PARTITION_TAG: "b1", RUNNER_PROCESS_TAG: "this-host:1"})
        instance.add_run(run)
        instance.event_log_storage.set_concurrency_slots("icloud", 1)
        instance.event_log_storage.claim_concurrency_slot("icloud", run.run_id, "download")
        locks = process_run_locks(pipeline.catalog.conninfo, 1)
        locks.take_batch("b1", wait=False)
        try:
            assert reclaim_dead_runs(instance, pipeline.settings, pipeline.catalog) == [run.run_id]
        finally:
            locks.release()
        assert instance.event_log_storage.get_concurrency_info("icloud").active_slot_count == 0
    finally:
        instance.dispose()


class Lines(threading.Thread):
    """The lines a child writes to a pipe, collected as they come."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[str] = []
        self.start()

    def run(self) -> None:
        self.lines.extend(iter(self.stream.readline, ""))

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def text(self) -> str:
        return "".join(self.lines)


@pytest.mark.slow
def test_a_run_waiting_for_a_pool_slot_says_so_every_minute_and_stops_cleanly(tmp_path: Path,
                                                                                catalog_conninfo: str) -> None:
    """Another live run holds the `icloud` pool's one slot: `run` waits at `download`, saying so at once and again
    a minute later naming the holder (Dagster alone says it every 5 minutes, at debug level), and SIGTERM then
    stops it cleanly (Dagster holds a stop back until a step starts): exit 143, its batch failed "stopped", its
    Dagster run failed and no slot left claimed for it."""
    write_settings(tmp_path)
    sample.make_photo(tmp_path / "library" / "a.jpg", seed=1, size=(64, 48))
    instance = storage_instance(catalog_conninfo, tmp_path / "test_home")
    with _icloud_slot_held_by_another_run(instance, catalog_conninfo) as other:
        run = _cli(tmp_path, catalog_conninfo, "run")
        assert run.stdout is not None and run.stderr is not None
        out, err = Lines(run.stdout), Lines(run.stderr)
        waiting = "waits at download for a slot of pool icloud (1 at once), held by batch b-other (run "
        try:
            _wait_until(lambda: err.count(waiting) >= 2 or run.poll() is not None,
                        "the waiting run says so twice within 300 s")
            assert err.count(waiting) >= 2, err.text()[-3000:]
        finally:
            run.send_signal(signal.SIGTERM)
            run.wait(timeout=120)
            out.join()
            err.join()
        assert run.returncode == 128 + signal.SIGTERM, err.text()[-3000:]
        last = err.text().strip().splitlines()[-1]
        assert last.startswith("media-pipeline: stopped by SIGTERM; the batch is marked failed"), last
        assert "Error: stopped (Ctrl-C or SIGTERM)" in out.text(), "the report says why"
        catalog = Catalog(catalog_conninfo)
        try:
            [batch] = catalog.recent_batches(1)
            assert batch.status == "failed" and "stopped" in (batch.error or ""), batch
        finally:
            catalog.close()
        [stopped] = [r for r in instance.get_runs() if r.run_id != other.run_id]
        assert stopped.status is DagsterRunStatus.FAILURE
        info = instance.event_log_storage.get_concurrency_info("icloud")
        assert info.active_run_ids == {other.run_id} and info.pending_step_count == 0


@pytest.mark.slow
def test_two_runs_at_once_split_the_files_and_keep_each_photo_once(tmp_path: Path, catalog_conninfo: str) -> None:
    """Two `media-pipeline run`s started together on one catalog and one source, MAX_CONCURRENT_BATCHES=2 and
    batches of 3 files: both finish, the six files are split across their two batches, the photo that is in both
    halves (byte for byte) is kept once, and every kept photo is at the destination exactly once."""
    write_settings(tmp_path, MAX_CONCURRENT_BATCHES="2", BATCH_MAX_FILES="3")
    library = tmp_path / "library"
    for n in range(5):
        sample.make_photo(library / ("phone" if n < 3 else "camera") / f"IMG_{n}.jpg", seed=n, size=(64, 48))
    shutil.copyfile(library / "phone" / "IMG_0.jpg", library / "camera" / "IMG_0 (copy).jpg")

    runs = [_cli(tmp_path, catalog_conninfo, "run") for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, out[-2000:] + err[-3000:]

    catalog = Catalog(catalog_conninfo)
    try:
        rows = catalog.conn.execute("SELECT batch_id, source_id, state, content_hash FROM media_files").fetchall()
        batches = [b.id for b in catalog.recent_batches(5)]
        assert len(batches) == 2 and all(b.status == "succeeded" for b in catalog.recent_batches(5))
    finally:
        catalog.close()
    assert sorted(Path(r["source_id"]).relative_to(library).as_posix() for r in rows) == sorted(
        p.relative_to(library).as_posix() for p in library.rglob("*.jpg")), "every file exactly once"
    assert Counter(r["batch_id"] for r in rows) == dict.fromkeys(batches, 3), "split across the two batches"
    assert Counter(r["state"] for r in rows) == {"verified": 5, "duplicate": 1}, "the copy is not kept twice"
    kept = Counter(sha256_file(p) for p in (tmp_path / "destination").rglob("*") if p.is_file())
    assert set(kept.values()) == {1} and len(kept) == 5, "each kept photo exactly once at the destination"


@pytest.mark.slow
def test_ctrl_c_stops_a_run_waiting_for_a_run_slot(tmp_path: Path, catalog_conninfo: str) -> None:
    """`run --wait` while another process holds the only run slot: it says what it waits for, and Ctrl-C stops it
    at once with 130, having created no batch, and says so (not "the batch is marked failed")."""
    write_settings(tmp_path)
    sample.make_photo(tmp_path / "library" / "a.jpg", seed=1, size=(64, 48))
    slot = AdvisoryLock(catalog_conninfo, run_slot_key(0), "batch b-other")
    assert slot.try_acquire()
    try:
        run = _cli(tmp_path, catalog_conninfo, "run", "--wait")
        assert run.stdout is not None and run.stderr is not None
        out, err = Lines(run.stdout), Lines(run.stderr)
        try:
            _wait_until(lambda: err.count("waiting: batch b-other is running (since ") >= 1 or run.poll() is not None,
                        "the waiting run says what it waits for")
        finally:
            run.send_signal(signal.SIGINT)
            run.wait(timeout=120)
            out.join()
            err.join()
        assert run.returncode == 128 + signal.SIGINT, err.text()[-3000:]
        last = err.text().strip().splitlines()[-1]
        assert last == ("media-pipeline: stopped by SIGINT before its batch started (waiting for a run slot or a "
                        "lock); nothing is left half done."), err.text()[-3000:]
        catalog = Catalog(catalog_conninfo)
        try:
            assert catalog.recent_batches(1) == [], "no batch was created"
        finally:
            catalog.close()
    finally:
        slot.release()


@pytest.mark.slow
def test_a_run_the_daemon_launched_says_in_its_event_log_what_it_waits_for(make_pipeline: MakePipeline,
                                                                            tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A run executed as the daemon's run workers execute it (the job's own executor, not the CLI's) that waits at
    `download` for the `icloud` pool slot another live run holds says so at INFO in its event log (what the UI
    shows), naming the holder, at once and again a minute later (here at every look); given the slot, it
    finishes."""
    from dagster._core.execution.api import execute_run

    from media_assets.defs.batch import pool_wait
    from media_assets_tests.daemon_runs import new_batch_run

    monkeypatch.setattr(pool_wait, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(pool_wait.PoolWatch, "POOL_CHECK_SECONDS", 0.0)
    monkeypatch.setattr(pool_wait.PoolWatch, "REPORT_SECONDS", 0.0)
    pipeline = make_pipeline()
    sample.make_photo(tmp_path / "library" / "a.jpg", seed=1, size=(64, 48))
    conninfo = pipeline.catalog.conninfo
    instance = storage_instance(conninfo, tmp_path / "dagster_home")
    with _icloud_slot_held_by_another_run(instance, conninfo) as other:
        run, job = new_batch_run(instance, pipeline.catalog)
        batch_id = run.tags[PARTITION_TAG]
        outcome: dict[str, bool] = {}
        worker = threading.Thread(target=lambda: outcome.update(success=execute_run(job, run, instance).success))
        worker.start()
        waiting = (f"batch {batch_id} waits at download for a slot of pool icloud (1 at once), held by batch b-other "
                   f"(run {other.run_id[:8]})")

        def said() -> list[str | int]:
            return [entry.level for entry in instance.all_logs(run.run_id) if waiting in entry.user_message]

        try:
            _wait_until(lambda: len(said()) >= 2 or not worker.is_alive(), "the waiting run says so twice")
            assert set(said()) == {logging.INFO}, [e.user_message for e in instance.all_logs(run.run_id)][-20:]
        finally:
            instance.event_log_storage.free_concurrency_slots_for_run(other.run_id)
            worker.join(timeout=300)
        assert outcome == {"success": True}


@contextmanager
def _icloud_slot_held_by_another_run(instance: DagsterInstance, conninfo: str) -> Iterator[DagsterRun]:
    """A live run of batch b-other (its batch lock held, on another host) holding the `icloud` pool's one slot;
    the instance is disposed of afterwards."""
    holder = AdvisoryLock(conninfo, batch_key("b-other"), "batch b-other")
    try:
        other = DagsterRun(job_name="media_batch", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED,
                           tags={PARTITION_TAG: "b-other", RUNNER_PROCESS_TAG: "another-host:1"})
        instance.add_run(other)
        instance.event_log_storage.set_concurrency_slots(ICLOUD_POOL, 1)
        instance.event_log_storage.claim_concurrency_slot(ICLOUD_POOL, other.run_id, "download")
        assert holder.try_acquire()  # that run is alive, wherever it runs
        yield other
    finally:
        holder.release()
        instance.dispose()
