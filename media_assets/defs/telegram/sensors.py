"""Telegram in Dagster: the sensors that report batches run by the daemon or the UI, alert on
every failed run (backfills too) and watch free space. The work is in `media_assets.telegram`."""

from __future__ import annotations

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from media_assets.defs.batch.assets import PHASES
from media_assets.defs.batch.job import BATCH_JOB_NAMES
from media_assets.defs.resources import CatalogResource
from media_assets.defs.runs import PARTITION_TAG, RUNNER_REPORT_TAG, first_failure
from media_assets.defs.telegram.resources import TelegramResource
from media_assets.reporting import build_report
from media_assets.telegram.config import TelegramConfig
from media_assets.telegram.messages import run_failure_text
from media_assets.telegram.notify import alert, check_free_space, send_report


def _not_ours(context: RunStatusSensorContext, config: TelegramConfig) -> str | None:
    """Why this sensor leaves the run alone, if it does."""
    if not config.enabled:
        return "ENABLE_TELEGRAM is false"
    if context.dagster_run.tags.get(RUNNER_REPORT_TAG):
        return "the process that ran this batch reported it itself"
    return None


@run_failure_sensor(name="telegram_run_failure_alert", monitor_all_code_locations=True,
                    default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
                    description="Telegram alert for every failed run, backfills (__ASSET_JOB) included.")
def telegram_run_failure_alert(context: RunFailureSensorContext, telegram: TelegramResource) -> SkipReason | None:
    config = telegram.config()
    if reason := _not_ours(context, config):
        return SkipReason(reason)
    run = context.dagster_run
    steps = context.get_step_failure_events()
    cause = first_failure(steps) if steps else (context.failure_event.message or "the run failed")
    text = run_failure_text(job_name=run.job_name, partition=run.tags.get(PARTITION_TAG), cause=cause,
                            run_url=config.run_url(run.run_id))
    if not alert(config, f"run-failure:{run.job_name}:{cause.splitlines()[0][:200]}", text):
        return SkipReason("alert throttled or Telegram unreachable (see the log)")
    return None


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, name="telegram_batch_report",
                   default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
                   description="Telegram report of each batch the daemon or the UI ran.")
def telegram_batch_report(context: RunStatusSensorContext, telegram: TelegramResource,
                          catalog: CatalogResource) -> SkipReason | None:
    config = telegram.config()
    run = context.dagster_run
    batch_id = run.tags.get(PARTITION_TAG)
    if reason := _not_ours(context, config):
        return SkipReason(reason)
    if run.job_name not in BATCH_JOB_NAMES or not batch_id:
        return SkipReason(f"{run.job_name} is not a batch run")
    record = context.instance.get_run_record_by_id(run.run_id)
    duration = (record.end_time - record.start_time) if record and record.start_time and record.end_time else 0.0
    report = build_report(catalog.catalog, batch_id, PHASES, success=True, duration_seconds=duration,
                          source_folders=telegram.settings.load().sources.folder_source_paths)
    if not send_report(config, report, run.run_id):
        return SkipReason("Telegram unreachable (see the log)")
    return None


@sensor(name="telegram_free_space_alert", minimum_interval_seconds=600, default_status=DefaultSensorStatus.RUNNING,
        description="Telegram alert when MEDIA_ROOT has less than FREE_SPACE_ALERT_GB free.")
def telegram_free_space_alert(context: SensorEvaluationContext, telegram: TelegramResource) -> SkipReason:
    if not telegram.config().enabled:
        return SkipReason("ENABLE_TELEGRAM is false")
    low = check_free_space(telegram.settings.load())
    return SkipReason("free space is low: the owner was alerted (throttled)" if low else "enough free space")


TELEGRAM_SENSORS = [telegram_run_failure_alert, telegram_batch_report, telegram_free_space_alert]
