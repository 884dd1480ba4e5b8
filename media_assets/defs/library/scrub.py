"""The weekly scrub: `verify --full` run by the daemon, its counts an asset check on `library_copies` (the copies
themselves, an asset nothing materializes, so the scrub runs only on its schedule or by hand, never with a batch),
and a Telegram alert when anything differs. Off in `once` mode (nothing runs unless a person starts it)."""

from dagster import (
    AssetCheckResult,
    AssetSelection,
    AssetSpec,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    asset_check,
    define_asset_job,
    in_process_executor,
    schedule,
)

from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.destinations.configured import enabled_destinations
from media_assets.integrity import check_everything
from media_assets.telegram.notify import send_alert

library_copies = AssetSpec("library_copies", group_name="library", kinds={"folder"},
                           description="Every kept copy and every copy at a destination, as the catalog records them.")


@asset_check(asset=library_copies.key, description="verify --full: every kept copy and every destination copy re-read "
             "against the catalog (matching, differing, missing, extra, unreadable).")
def scrub(settings: SettingsResource, catalog: CatalogResource) -> AssetCheckResult:
    loaded = settings.load()
    report = check_everything(loaded, catalog.catalog, enabled_destinations(loaded))
    summary = report.to_text().splitlines()[0]
    if not report.ok:
        send_alert("scrub", "Weekly verify --full found problems: " + "\n".join(report.to_text().splitlines()[:11]),
                   settings=loaded)
    return AssetCheckResult(passed=report.ok, description=summary, metadata=dict(report.counts))


scrub_job = define_asset_job("scrub", selection=AssetSelection.checks(scrub), executor_def=in_process_executor,
                             description="verify --full now (the weekly schedule runs it on Sunday at 03:00 UTC).")


@schedule(job=scrub_job, cron_schedule="0 3 * * 0", default_status=DefaultScheduleStatus.RUNNING,
          description="verify --full every Sunday at 03:00 UTC, unless PIPELINE_EXECUTION_MODE is 'once'.")
def weekly_scrub(context: ScheduleEvaluationContext, settings: SettingsResource) -> RunRequest | SkipReason:
    if settings.load().automation.execution_mode == "once":
        return SkipReason("PIPELINE_EXECUTION_MODE is 'once': verify --full runs only from the CLI or the UI")
    return RunRequest(run_key=f"scrub-{context.scheduled_execution_time:%Y%m%d}")
