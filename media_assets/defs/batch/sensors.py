"""The batch sensors: the automation (a sensor, since schedules cannot add dynamic partitions) that creates the
next batch and requests its run on the configured interval with idempotent run keys, and the one that records
failed batch runs."""

import json
from datetime import datetime, timezone

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from media_assets.automation import NOTHING_NEW, RETRY_BACKOFF, Decision, check_sources, decide_next_batch, retry_due
from media_assets.batches import BatchLifecycle, executions_today
from media_assets.catalog.repository import Catalog
from media_assets.defs.batch.job import BATCH_JOB_NAMES, media_batch_job
from media_assets.defs.batch.partitions import batch_partitions
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.defs.runs import PARTITION_TAG, reclaim_dead_runs
from media_assets.settings import Settings
from media_assets.sources.base import SourceNeedsSettings
from media_assets.sources.configured import SourceUnavailable, enabled_sources, require_sources_available
from media_assets.telegram.notify import send_alert

#: The automatic re-run a run is (1, 2, 3), set by `retry_sensor`.
RETRY_TAG = "media_pipeline/retry"
ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
          DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def batch_running(instance: DagsterInstance) -> bool:
    """Whether a batch (a partitioned run; not, say, the library_stats refresh, also an `__ASSET_JOB`) runs."""
    return any(PARTITION_TAG in run.tags
               for name in BATCH_JOB_NAMES for run in instance.get_runs(RunsFilter(job_name=name, statuses=ACTIVE)))


def next_batch_decision(settings: Settings, catalog: Catalog, instance: DagsterInstance, now: datetime) -> Decision:
    """Whether the automation would start a batch now, before looking at the sources (also `status`'s answer)."""
    last = catalog.recent_batches(1)
    return decide_next_batch(
        mode=settings.automation.execution_mode, interval_minutes=settings.automation.execution_interval_minutes,
        max_per_day=settings.automation.max_executions_per_day, now=now,
        last_batch_at=last[0].created_at if last else None, batches_today=executions_today(catalog, now),
        batch_running=batch_running(instance), backlog=bool(last and last[0].backlog))


@sensor(job=media_batch_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Creates the next batch and runs it on PIPELINE_EXECUTION_INTERVAL_MINUTES, or at once while "
                    "the sources hold more than one batch's worth (backlog).")
def batch_sensor(context: SensorEvaluationContext, settings: SettingsResource,
                 catalog: CatalogResource) -> SensorResult | SkipReason:
    loaded = settings.load()
    now = datetime.now(timezone.utc)
    reclaim_dead_runs(context.instance, loaded, catalog.catalog)
    decision = next_batch_decision(loaded, catalog.catalog, context.instance, now)
    if not decision.start:
        return SkipReason(decision.reason)
    try:
        require_sources_available(loaded, catalog.catalog)
    except SourceUnavailable as error:
        return SkipReason(str(error))
    try:
        sources = check_sources(loaded, catalog.catalog, enabled_sources(loaded, interactive=False))
    except SourceNeedsSettings as error:
        return SkipReason(f"waiting for a settings change: {error}")
    if not sources.start:
        if sources.reason != NOTHING_NEW:
            send_alert("disk-full-batch", f"No batch started: {sources.reason}.", settings=loaded)
        return SkipReason(sources.reason)
    batch_id = BatchLifecycle(catalog.catalog).create(now=now)
    return SensorResult(run_requests=[RunRequest(partition_key=batch_id, run_key=batch_id)],
                        dynamic_partitions_requests=[batch_partitions.build_add_request([batch_id])])



@sensor(job=media_batch_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Re-runs a failed batch after 10 min, 1 h and 6 h (it continues where it stopped), then asks a "
                    "person on Telegram. Dagster's own run retries start at once, without a backoff.")
def retry_sensor(context: SensorEvaluationContext, settings: SettingsResource,
                 catalog: CatalogResource) -> SensorResult | SkipReason:
    loaded = settings.load()
    now = datetime.now(timezone.utc)
    reclaim_dead_runs(context.instance, loaded, catalog.catalog)
    alerted = set(json.loads(context.cursor or "[]"))
    requests, waiting = [], []
    for batch_id in catalog.catalog.failed_batches():
        runs = context.instance.get_runs(RunsFilter(tags={PARTITION_TAG: batch_id}))
        if any(run.status in ACTIVE for run in runs):
            continue
        retries = sum(RETRY_TAG in run.tags for run in runs)
        batch = catalog.catalog.batch(batch_id)
        if batch is None:
            continue
        due = retry_due(batch.finished_at or batch.updated_at, retries, now)
        if due:
            requests.append(RunRequest(partition_key=batch_id, run_key=f"{batch_id}-retry-{retries + 1}",
                                       tags={RETRY_TAG: str(retries + 1)}))
        elif due is None and batch_id not in alerted:
            send_alert(f"needs-a-person-{batch_id}", needs_a_person(catalog.catalog, batch_id), settings=loaded)
            alerted.add(batch_id)
        elif due is False:
            waiting.append(batch_id)
    context.update_cursor(json.dumps(sorted(alerted)))  # each batch's "needs a person" alert goes out once
    if not requests:
        return SkipReason(f"failed batches waiting for their next re-run: {', '.join(waiting)}" if waiting
                          else "no failed batch due for a re-run")
    return SensorResult(run_requests=requests)


def needs_a_person(catalog: Catalog, batch_id: str) -> str:
    """The alert for a batch that failed again after every automatic re-run: why, and what to do."""
    batch = catalog.batch(batch_id)
    why = (batch.error if batch else None) or "its run failed before any phase started"
    return (f"Batch {batch_id} failed {len(RETRY_BACKOFF) + 1} times (re-run after 10 min, 1 h and 6 h) and needs "
            f"a person: {why}. Nothing was lost; fix the cause, then run `media-pipeline retry-failed`.")


@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING,
                    description="Marks a failed batch run's batch failed in the catalog, so retry-failed finds it.")
def failed_batch_sensor(context: RunFailureSensorContext, catalog: CatalogResource) -> None:
    """A run can fail where no phase code runs (its worker killed, the code server gone): record it anyway."""
    run = context.dagster_run
    batch_id = run.tags.get(PARTITION_TAG)
    if batch_id and run.job_name in BATCH_JOB_NAMES and catalog.catalog.batch(batch_id) is not None:
        BatchLifecycle(catalog.catalog).failed(batch_id, context.failure_event.message or "the run failed")
