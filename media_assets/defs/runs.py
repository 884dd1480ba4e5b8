"""Run bookkeeping that needs Dagster: the tags a batch run carries, reclaiming runs whose process died, and the
first failure of a run in one line. The batch statuses themselves are written by `batches.BatchLifecycle`."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

from dagster import DagsterEvent, DagsterInstance, DagsterRunStatus, RunsFilter

from media_assets.batches import BatchLifecycle
from media_assets.catalog.repository import Catalog
from media_assets.settings import Settings
from media_assets.telegram.notify import send_alert

#: `host:pid` of the process running an in-process batch, so a later run can tell it died.
RUNNER_PROCESS_TAG = "media_pipeline/process"
#: Set on runs whose process sends its own report, so the report sensor does not send it twice.
RUNNER_REPORT_TAG = "media_pipeline/report_sent_by"
#: Dagster's tag for the partition (= batch id) of a run.
PARTITION_TAG = "dagster/partition"


def this_process() -> str:
    """`host:pid` of the process executing a run: in-process runs and the daemon's run workers alike."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_run(instance: DagsterInstance, run_id: str, tags: dict[str, str]) -> None:
    """Tag a run launched by the daemon or the UI with the process that executes it (in-process runs come
    tagged), so `reclaim_dead_runs` can tell when that process is gone."""
    if RUNNER_PROCESS_TAG not in tags:
        instance.add_run_tags(run_id, {RUNNER_PROCESS_TAG: this_process()})


def reclaim_dead_runs(instance: DagsterInstance, settings: Settings, catalog: Catalog) -> list[str]:
    """Mark runs whose process died (killed, power cut) and their batches as failed, and free their pool slots,
    so `retry-failed` or a backfill can finish the batch and the automation starts the next one.

    Without this, a killed run keeps its slot in the `icloud` pool forever and counts as running for ever: the
    default run launcher cannot check its workers' health, and nothing watches in-process runs."""
    host = socket.gethostname()
    reclaimed = []
    for record in instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING])):
        run = record.dagster_run
        owner_host, _, pid = run.tags.get(RUNNER_PROCESS_TAG, "").partition(":")
        if owner_host != host or not pid.isdigit() or _process_alive(int(pid)):
            continue
        reason = "the process running it is gone (killed or crashed)"
        instance.report_run_failed(run, reason)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        if run.tags.get(PARTITION_TAG):
            BatchLifecycle(catalog).failed(run.tags[PARTITION_TAG], reason)
        send_alert(f"dead-run-{run.run_id}", f"Batch {run.tags.get(PARTITION_TAG, '?')}: the process running "
                   "it died (killed or crashed); it is re-run now and continues where it stopped.", settings=settings)
        reclaimed.append(run.run_id)
    return reclaimed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def first_failure(events: Sequence[DagsterEvent]) -> str:
    """The root cause of the first failed step, in one line (Dagster wraps it in its own error)."""
    for event in events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            info = event.step_failure_data.error
            while info.cause is not None:
                info = info.cause
            return f"{event.step_key}: {info.message.strip()}"
    return "the run failed before any phase started"
