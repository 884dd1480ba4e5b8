"""The weekly scrub: `verify --full` run by the daemon, its counts an asset check on `library_copies` (the copies
themselves, an asset nothing materializes, so the scrub runs only on its schedule or by hand, never with a batch),
and a Telegram alert when anything differs (`integrity.verify_library`, as the CLI's `verify --full`). Off in
`once` mode (nothing runs unless a person starts it)."""

from dagster import (
    AssetCheckExecutionContext,
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
from media_assets.integrity import verify_library

#: The tag Dagster gives a run its schedule requested.
SCHEDULE_NAME_TAG = "dagster/schedule_name"

library_copies = AssetSpec("library_copies", group_name="library", kinds={"folder"},
                           description="Every kept copy and every copy at a destination, as the catalog records them.")


@asset_check(asset=library_copies.key, description="verify --full: every kept copy and every destination copy re-read "
             "against the catalog (matching, differing, missing, extra, unreadable; in total and per place).")
def scrub(context: AssetCheckExecutionContext, settings: SettingsResource, catalog: CatalogResource
          ) -> AssetCheckResult:
    loaded = settings.load()
    started_by = "schedule" if context.run.tags.get(SCHEDULE_NAME_TAG) else "ui"
    report = verify_library(loaded, catalog.catalog, enabled_destinations(loaded), started_by=started_by)
    return AssetCheckResult(passed=report.ok, description=report.summary(), metadata=report.metadata())


scrub_job = define_asset_job("scrub", selection=AssetSelection.checks(scrub), executor_def=in_process_executor,
                             description="verify --full now (the weekly schedule runs it on Sunday at 03:00 UTC).")


@schedule(job=scrub_job, cron_schedule="0 3 * * 0", default_status=DefaultScheduleStatus.RUNNING,
          description="verify --full every Sunday at 03:00 UTC, unless PIPELINE_EXECUTION_MODE is 'once'.")
def weekly_scrub(context: ScheduleEvaluationContext, settings: SettingsResource) -> RunRequest | SkipReason:
    if settings.load().automation.execution_mode == "once":
        return SkipReason("PIPELINE_EXECUTION_MODE is 'once': verify --full runs only from the CLI or the UI")
    return RunRequest(run_key=f"scrub-{context.scheduled_execution_time:%Y%m%d}")
