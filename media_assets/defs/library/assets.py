"""The whole library at a glance: one non-partitioned asset whose numeric metadata the UI plots over time.

It refreshes itself through an automation condition rather than a step of the batch job: any new `verification`
materialization (a batch finished, however it was started: the automation sensor, a backfill, the CLI while the
daemon runs) makes `library_stats_sensor` request it once. That sensor is declared running: Dagster's implicit
automation sensor starts stopped, so on a fresh install the dashboard would never refresh. Unlike `eager()`, the
condition does not wait for every upstream partition to exist, so one failed batch never stops the dashboard."""

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from media_assets.catalog.dashboard import MonthTotals, totals_by_month
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.operations import library_stats as compute_library_stats

#: A refresh requested on every tick that sees a new `verification` materialization, even while a refresh runs
#: (the new one queues behind it). `since_last_handled()` gated on "not in progress" lost a batch verified between
#: a refresh's request and its end: the refresh and the batch were new on the same tick, and the reset won.
REFRESH_AFTER_EACH_BATCH = AutomationCondition.any_deps_updated().with_label("after each batch")


@asset(deps=["verification"], group_name="library", kinds={"postgres"},
       automation_condition=REFRESH_AFTER_EACH_BATCH,
       description="Files by state, batches, bytes saved, duplicates, and size and free space of every folder.")
def library_stats(context: AssetExecutionContext, settings: SettingsResource,
                  catalog: CatalogResource) -> MaterializeResult:
    stats = compute_library_stats(catalog.catalog, settings.load())
    context.log.info(f"library: {stats['files_total']} files, {stats['files_verified']} verified")
    by_month = {f"by_{by}_month": month_table(totals_by_month(catalog.catalog, by)) for by in ("capture", "batch")}
    return MaterializeResult(metadata={**stats, **by_month})


_MONTH_SCHEMA = TableSchema(columns=[
    TableColumn("month", "string"), TableColumn("files", "int"), TableColumn("bytes_in", "int"),
    TableColumn("bytes_saved", "int"), TableColumn("duplicates", "int"), TableColumn("quarantined", "int")])


def month_table(months: list[MonthTotals]) -> MetadataValue:
    """A table the asset page shows: one row per month (Dagster plots only plain numbers, not tables)."""
    return MetadataValue.table(records=[TableRecord(vars(m)) for m in months], schema=_MONTH_SCHEMA)


library_stats_sensor = AutomationConditionSensorDefinition(
    "library_stats_sensor", target=AssetSelection.assets(library_stats), default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30, description="Refreshes library_stats after each batch (running from the start).")
