"""Running batches in this process (no daemon needed): what `media-pipeline run`, `interval` and `retry-failed` do.

The only module that imports the `Definitions` (the domains', `defs/domains.py`); everything else of a run
lives in `defs/` and `batches`."""

from __future__ import annotations

import ctypes
import logging
import threading
import time

from dagster import DagsterInstance
from dagster._utils.interrupts import check_captured_interrupt

from media_assets.automation import Decision, check_sources
from media_assets.batches import BatchLifecycle, BatchStopped
from media_assets.catalog.locks import POLL_SECONDS, REPORT_EVERY_SECONDS, Holder, RunLocks, process_run_locks
from media_assets.defs.batch.assets import ICLOUD_POOL, PHASES
from media_assets.defs.batch.job import BATCH_JOB_NAME
from media_assets.defs.domains import domain_defs
from media_assets.defs.instance import Pipeline
from media_assets.defs.runs import (
    PARTITION_TAG,
    RUNNER_PROCESS_TAG,
    RUNNER_REPORT_TAG,
    STOPPED,
    first_failure,
    reclaim_dead_runs,
    this_process,
)
from media_assets.reporting import RunReport, build_report, write_report
from media_assets.settings import use_settings
from media_assets.sources.configured import enabled_sources, require_sources_available
from media_assets.telegram import notify_batch_finished

log = logging.getLogger(__name__)


def run_next_batch(pipeline: Pipeline, *, wait: bool = False) -> tuple[Decision, RunReport | None]:
    """Take the next batch's worth of new files through every phase, unless the sources hold nothing new or
    the disk has no room for it: then no batch is created. Why (or what), and the report of the batch run.
    Raises LockBusy when MAX_CONCURRENT_BATCHES batches already run (unless `wait`)."""
    pipeline.catalog.ensure_connected()
    require_sources_available(pipeline.settings, pipeline.catalog)
    locks = run_locks(pipeline)
    locks.take_slot("a new batch", wait=wait, on_wait=_say_waiting)
    try:
        reclaim_dead_runs(pipeline.instance, pipeline.settings, pipeline.catalog)  # even when nothing is new
        decision = check_sources(pipeline.settings, pipeline.catalog, enabled_sources(pipeline.settings))
        if not decision.start:
            return decision, None
        return decision, run_batch(pipeline, wait=wait)
    finally:
        locks.release()


def run_locks(pipeline: Pipeline) -> RunLocks:
    return process_run_locks(pipeline.catalog.conninfo, pipeline.settings.automation.max_concurrent_batches)


def _say_waiting(holder: Holder | None) -> None:
    running = f"{holder.what} is running ({holder.describe()})" if holder else "another batch is running"
    log.warning(f"waiting: {running}")


def run_batch(pipeline: Pipeline, batch_id: str | None = None, *, wait: bool = False) -> RunReport:
    """Create (or re-run) a batch and take it through every phase in this process; returns its report.

    Raises SourceUnavailable, before any batch exists, when a source folder is missing or looks unmounted. The
    run's phases use `pipeline.settings` itself: the settings are read once per run, not once per phase. The
    run holds a run slot and the batch's lock (catalog advisory locks) from before the batch is created to its
    end: LockBusy names the running batch when there is no room (unless `wait`)."""
    catalog = pipeline.catalog
    catalog.ensure_connected()
    use_settings(pipeline.settings)
    require_sources_available(pipeline.settings, catalog)
    locks = run_locks(pipeline)
    if batch_id is not None:
        locks.take_batch(batch_id, wait=wait, on_wait=_say_waiting)
    locks.take_slot(f"batch {batch_id}" if batch_id else "a new batch", wait=wait, on_wait=_say_waiting)
    lifecycle = BatchLifecycle(catalog)
    try:
        batch_id = lifecycle.create(batch_id)
        locks.take_batch(batch_id, wait=False)
        if locks.slot is not None:
            locks.slot.rename(f"batch {batch_id}")
        return _run_holding_locks(pipeline, batch_id)
    except KeyboardInterrupt:  # SIGINT/SIGTERM outside the run itself (Dagster fails the run for those inside)
        if batch_id is None:
            raise
        catalog.ensure_connected()
        lifecycle.failed(batch_id, STOPPED)
        raise BatchStopped(batch_id) from None
    finally:
        locks.release()


def _run_holding_locks(pipeline: Pipeline, batch_id: str) -> RunReport:
    catalog = pipeline.catalog
    if not pipeline.instance.has_dynamic_partition("batch", batch_id):
        pipeline.instance.add_dynamic_partitions("batch", [batch_id])
    reclaim_dead_runs(pipeline.instance, pipeline.settings, catalog)
    started = time.perf_counter()
    with RunWatch(pipeline.instance, batch_id) as watch:
        result = domain_defs.resolve_job_def(BATCH_JOB_NAME).execute_in_process(
            partition_key=batch_id, instance=pipeline.instance, raise_on_error=False,
            tags={RUNNER_REPORT_TAG: "runner", RUNNER_PROCESS_TAG: this_process()},
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}})
    error = None
    if not result.success:
        catalog.ensure_connected()  # the failure may have been the database going away
        error = STOPPED if watch.stopped_waiting else first_failure(result.all_events)
        BatchLifecycle(catalog).failed(batch_id, error)
    report = build_report(catalog, batch_id, PHASES, success=result.success,
                          duration_seconds=time.perf_counter() - started, error=error,
                          source_folders=pipeline.settings.sources.folder_source_paths)
    write_report(report, pipeline.settings.storage.reports_dir, pipeline.settings.storage.reports_keep)
    notify_batch_finished(pipeline.settings, report, result.run_id)
    return report


class RunWatch(threading.Thread):
    """Beside a run executing in this process's main thread, while it waits between steps (for a pool slot:
    `icloud` lets one run talk to Apple at a time): says every minute what it waits for, which Dagster logs only
    at debug level every 5 minutes; and turns Ctrl-C or SIGTERM into KeyboardInterrupt in the main thread, where
    Dagster holds a stop back until the next step starts, which a waiting run never reaches."""

    #: Seconds between looks at the pools (one query), so a wait is reported within this long.
    POOL_CHECK_SECONDS = 10.0

    def __init__(self, instance: DagsterInstance, batch_id: str) -> None:
        super().__init__(name=f"watch batch {batch_id}", daemon=True)
        self.instance = instance
        self.batch_id = batch_id
        self.stopped_waiting = False
        #: Pools exist only where Dagster keeps them (its PostgreSQL storage; not an in-memory test instance).
        self.pools_kept = instance.event_log_storage.supports_global_concurrency_limits
        self._done = threading.Event()

    def __enter__(self) -> RunWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        next_check = next_report = 0.0
        held_back = 0
        while not self._done.wait(POLL_SECONDS):
            # A stop Dagster captured and no step picked up within a poll: the run is waiting. Stop it.
            held_back = held_back + 1 if check_captured_interrupt() else 0
            if held_back >= 2:
                self.stopped_waiting = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.main_thread().ident or 0),
                                                           ctypes.py_object(KeyboardInterrupt))
                return
            if self.pools_kept and time.monotonic() >= next_check:
                next_check = time.monotonic() + self.POOL_CHECK_SECONDS
                try:
                    waiting = self._pool_wait()
                except Exception:  # the catalog went away: the run itself says so; a watcher stays quiet
                    waiting = None
                if waiting and time.monotonic() >= next_report:
                    log.warning(waiting)
                    next_report = time.monotonic() + REPORT_EVERY_SECONDS

    def _pool_wait(self) -> str | None:
        """What this process's run waits for, naming the batches holding the pool's slots; None if it does not."""
        info = self.instance.event_log_storage.get_concurrency_info(ICLOUD_POOL)
        mine = [step for step in info.pending_steps if step.assigned_timestamp is None
                and (run := self.instance.get_run_by_id(step.run_id)) is not None
                and run.tags.get(RUNNER_PROCESS_TAG) == this_process()]
        if not mine:
            return None
        holders = []
        for run_id in sorted(info.active_run_ids):
            run = self.instance.get_run_by_id(run_id)
            holders.append(f"batch {run.tags.get(PARTITION_TAG, '?') if run else '?'} (run {run_id[:8]})")
        return (f"batch {self.batch_id} waits at {mine[0].step_key} for a slot of pool {ICLOUD_POOL} "
                f"({info.slot_count} at once), held by {', '.join(holders) or 'no one (being freed)'}")


def retry_failed(pipeline: Pipeline) -> list[RunReport]:
    """Re-run every failed batch in this process. Phases continue from each file's recorded state, so files
    already uploaded are not sent again and nothing is lost; returns one report per batch."""
    reclaim_dead_runs(pipeline.instance, pipeline.settings, pipeline.catalog)
    return [run_batch(pipeline, batch_id) for batch_id in pipeline.catalog.failed_batches()]
