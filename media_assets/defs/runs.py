"""Run bookkeeping that needs Dagster: the tags a batch run carries, reclaiming runs whose process died, and the
first failure of a run in one line. The batch statuses themselves are written by `batches.BatchLifecycle`."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from dagster import DagsterEvent, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from media_assets.batches import BatchLifecycle
from media_assets.catalog.locks import (
    RunLocks,
    batch_lock_free,
    orphaned_running_batches,
    process_run_locks,
    waiting_for,
)
from media_assets.catalog.repository import Catalog
from media_assets.phases.common import PhaseFailed
from media_assets.settings import Settings
from media_assets.telegram.notify import send_alert

#: `host:pid` of the process running a batch, set once it holds the batch's lock (for people: whether the run
#: lives is told by the lock).
RUNNER_PROCESS_TAG = "media_pipeline/process"
#: Set on runs whose process sends its own report, so the report sensor does not send it twice.
RUNNER_REPORT_TAG = "media_pipeline/report_sent_by"
#: Dagster's tag for the partition (= batch id) of a run.
PARTITION_TAG = "dagster/partition"
#: How long a run launched by the daemon may take from its start to its executor's, where it takes its lock.
STARTUP_GRACE_SECONDS = 300
#: Why a batch failed when a person stopped its run (Ctrl-C, SIGTERM).
STOPPED = "stopped (Ctrl-C or SIGTERM); re-run it to continue where it stopped"


def this_process() -> str:
    """`host:pid` of the process executing a run: in-process runs and the daemon's run workers alike."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_run(instance: DagsterInstance, run: DagsterRun, settings: Settings, catalog: Catalog, batch_id: str,
              log: object) -> None:
    """At a run's first phase, make sure its process holds the batch's lock and a run slot. The process the run
    is tagged with holds them already: the CLI before `execute_in_process`, the run worker of a run launched by
    the daemon or the UI from its executor's start (`holding_run_locks`), tagging the run before any phase is
    handed out. So a phase executed elsewhere (a Celery worker, a step process) takes nothing; only a run
    executed in process without a tag (`materialize` in tests) takes them here, in its one process.

    The tags are read from the instance: a step process of EXECUTOR=multiprocess is handed the run as it was
    before its run worker tagged it, and would take the locks its run worker holds (LockBusy)."""
    stored = instance.get_run_by_id(run.run_id)
    tags = (stored or run).tags
    if tags.get(RUNNER_PROCESS_TAG, this_process()) != this_process():
        return
    locks = process_run_locks(catalog.conninfo, settings.automation.max_concurrent_batches)
    _take_run_locks(locks, batch_id, log)
    if RUNNER_PROCESS_TAG not in tags:
        instance.add_run_tags(run.run_id, {RUNNER_PROCESS_TAG: this_process()})


@contextmanager
def holding_run_locks(instance: DagsterInstance, run: DagsterRun, settings: Settings, conninfo: str,
                      log: object) -> Iterator[None]:
    """Hold a batch run's locks in this process, the run's own, from before its first phase to after its last,
    and tag the run with this process before any phase starts: another process running the batch fails the run
    naming itself (LockBusy), and a run waits for a slot saying so every minute. A run that is not a batch's
    (no partition) takes nothing."""
    batch_id = run.tags.get(PARTITION_TAG)
    if not batch_id:
        yield
        return
    locks = process_run_locks(conninfo, settings.automation.max_concurrent_batches)
    held_already = locks.batch_id == batch_id  # a process that took them before starting the run keeps them
    _take_run_locks(locks, batch_id, log)
    try:
        instance.add_run_tags(run.run_id, {RUNNER_PROCESS_TAG: this_process()})
        yield
    finally:
        if not held_already:
            locks.release()


def _take_run_locks(locks: RunLocks, batch_id: str, log: object) -> None:
    """The batch's lock at once (LockBusy when another process runs it), then a run slot, waiting for one."""
    locks.take_batch(batch_id, wait=False)
    locks.take_slot(f"batch {batch_id}", wait=True,
                    on_wait=lambda holder: log.info(waiting_for(holder)))  # type: ignore[attr-defined]


def reclaim_dead_runs(instance: DagsterInstance, settings: Settings, catalog: Catalog) -> list[str]:
    """Mark runs whose process died (killed, power cut, lost its host) and their batches as failed, and free their
    pool slots, so `retry-failed` or a backfill can finish the batch and the automation starts the next one.

    A run is dead when the lock of its batch is free: every run's process holds it from before its first phase
    on, and PostgreSQL drops it with the holder's connection, whatever host or pid the run had. A run that has
    not claimed its batch yet (a daemon run starting up) gets STARTUP_GRACE_SECONDS first. Batches a run left
    `running` when it lost the catalog are marked failed the same way."""
    catalog.ensure_connected()
    lifecycle = BatchLifecycle(catalog)
    reclaimed = []
    now = time.time()
    for record in instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING])):
        run = record.dagster_run
        batch_id = run.tags.get(PARTITION_TAG)
        if not batch_id or not batch_lock_free(catalog.conn, batch_id):
            continue
        started = record.start_time or record.create_timestamp.timestamp()
        if RUNNER_PROCESS_TAG not in run.tags and now - started < STARTUP_GRACE_SECONDS:
            continue
        reason = "the process running it is gone (killed, crashed or its host vanished)"
        instance.report_run_failed(run, reason)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        lifecycle.failed(batch_id, reason)
        send_alert(f"dead-run-{run.run_id}", f"Batch {batch_id}: the process running it died (killed or crashed); "
                   "it is re-run now and continues where it stopped.", settings=settings)
        reclaimed.append(run.run_id)
    for batch_id in orphaned_running_batches(catalog.conn):
        lifecycle.failed(batch_id, "its run ended without saying so (it lost the catalog database, or died)")
    return reclaimed


def first_failure(events: Sequence[DagsterEvent]) -> str:
    """The root cause of the first failed step, in one line (Dagster wraps it in its own error)."""
    for event in events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            info = event.step_failure_data.error
            if info.cls_name == "DagsterExecutionInterruptedError":
                return f"{event.step_key}: {STOPPED}"
            while info.cause is not None:
                info = info.cause
            message = info.message.strip()
            if info.cls_name == PhaseFailed.__name__:  # a sentence for people: the class path is noise
                message = message.split(": ", 1)[-1]
            return f"{event.step_key}: {message}"
    return "the run failed before any phase started"
