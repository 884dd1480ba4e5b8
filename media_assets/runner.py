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
from media_assets.catalog.locks import Holder, RunLocks, process_run_locks, waiting_for
from media_assets.defs.batch.assets import PHASES
from media_assets.defs.batch.executor import create_pools
from media_assets.defs.batch.job import BATCH_JOB_NAME
from media_assets.defs.batch.pool_wait import PoolWatch
from media_assets.defs.domains import domain_defs
from media_assets.defs.instance import Pipeline
from media_assets.defs.runs import (
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
    log.warning(waiting_for(holder))


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
    # execute_in_process runs Dagster's in-process executor, not the job's (which makes the pools itself)
    create_pools(pipeline.instance, catalog.conninfo)
    started = time.perf_counter()
    watch = RunWatch(pipeline.instance, batch_id)
    with watch:
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


class RunWatch(PoolWatch):
    """Beside a run executing in this process's main thread: says every minute what it waits for between steps
    (`PoolWatch`, into this process's log), and turns Ctrl-C or SIGTERM into KeyboardInterrupt in the main thread,
    where Dagster holds a stop back until the next step starts, which a run waiting for a pool slot never
    reaches."""

    def __init__(self, instance: DagsterInstance, batch_id: str) -> None:
        super().__init__(instance, batch_id, log.warning)
        self.stopped_waiting = False
        self._held_back = 0

    def look(self) -> bool:
        # A stop Dagster captured and no step picked up within a poll: the run is waiting. Stop it.
        self._held_back = self._held_back + 1 if check_captured_interrupt() else 0
        if self._held_back >= 2:
            self.stopped_waiting = True
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.main_thread().ident or 0),
                                                       ctypes.py_object(KeyboardInterrupt))
            return False
        return super().look()


def retry_failed(pipeline: Pipeline) -> list[RunReport]:
    """Re-run every failed batch in this process. Phases continue from each file's recorded state, so files
    already uploaded are not sent again and nothing is lost; returns one report per batch."""
    reclaim_dead_runs(pipeline.instance, pipeline.settings, pipeline.catalog)
    return [run_batch(pipeline, batch_id) for batch_id in pipeline.catalog.failed_batches()]
