"""The batch sensors: the automation (a sensor, since schedules cannot add dynamic partitions) that creates the
next batch and requests its run on the configured interval with idempotent run keys, and the one that records
failed batch runs."""

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

from media_assets.automation import NOTHING_NEW, Decision, check_sources, decide_next_batch
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
        last_batch_at=last[0]["created_at"] if last else None, batches_today=executions_today(catalog, now),
        batch_running=batch_running(instance), backlog=bool(last and last[0]["backlog"]))


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


@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING,
                    description="Marks a failed batch run's batch failed in the catalog, so retry-failed finds it.")
def failed_batch_sensor(context: RunFailureSensorContext, catalog: CatalogResource) -> None:
    """A run can fail where no phase code runs (its worker killed, the code server gone): record it anyway."""
    run = context.dagster_run
    batch_id = run.tags.get(PARTITION_TAG)
    if batch_id and run.job_name in BATCH_JOB_NAMES and catalog.catalog.batch(batch_id) is not None:
        BatchLifecycle(catalog.catalog).failed(batch_id, context.failure_event.message or "the run failed")
