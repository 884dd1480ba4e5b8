"""The whole library at a glance: one non-partitioned asset whose numeric metadata the UI plots over time.

It refreshes itself through an automation condition rather than a sensor or a step of the batch job: any new
`verification` materialization (a batch finished, however it was started: the automation sensor, a backfill, the
CLI while the daemon runs) makes the daemon's automation sensor request it once. Unlike `eager()`, the condition
does not wait for every upstream partition to exist, so one failed batch never stops the dashboard."""

from dagster import AssetExecutionContext, AutomationCondition, MaterializeResult, asset

from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.operations import library_stats as compute_library_stats

REFRESH_AFTER_EACH_BATCH = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("after each batch")


@asset(deps=["verification"], group_name="library", kinds={"postgres"},
       automation_condition=REFRESH_AFTER_EACH_BATCH,
       description="Files by state, batches, bytes saved, duplicates, and size and free space of every folder.")
def library_stats(context: AssetExecutionContext, settings: SettingsResource,
                  catalog: CatalogResource) -> MaterializeResult:
    stats = compute_library_stats(catalog.catalog, settings.load())
    context.log.info(f"library: {stats['files_total']} files, {stats['files_verified']} verified")
    return MaterializeResult(metadata=stats)
