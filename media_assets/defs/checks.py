"""Asset checks: the pipeline's invariants, visible beside the assets in the UI. The checks on `verification`
are partitioned like it, so each evaluates the batch of the run that executes it."""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, asset_check

from media_assets.defs.assets import verification
from media_assets.defs.library_stats import library_stats
from media_assets.defs.partitions import batch_partitions
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.operations import CheckOutcome, check_free_space, check_no_file_in_between, check_uploads_verified


def _result(outcome: CheckOutcome, severity: AssetCheckSeverity = AssetCheckSeverity.ERROR) -> AssetCheckResult:
    return AssetCheckResult(passed=outcome.passed, severity=severity, description=outcome.description,
                            metadata=outcome.metadata)


@asset_check(asset=verification, partitions_def=batch_partitions,
             description="No file of the batch is left in an intermediate state.")
def no_file_in_between(context: AssetCheckExecutionContext, catalog: CatalogResource) -> AssetCheckResult:
    return _result(check_no_file_in_between(catalog.catalog, context.partition_key))


@asset_check(asset=verification, partitions_def=batch_partitions, blocking=True,
             description="Every uploaded file of the batch was verified at its destination; a failure fails the run.")
def uploads_verified(context: AssetCheckExecutionContext, settings: SettingsResource,
                     catalog: CatalogResource) -> AssetCheckResult:
    outcome = check_uploads_verified(catalog.catalog, context.partition_key,
                                     verification_enabled=settings.load().enable_verification)
    if not outcome.passed:  # however the run was started, `retry-failed` then finds the batch
        catalog.catalog.set_batch_status(context.partition_key, "failed")
    return _result(outcome)


@asset_check(asset=library_stats, description="Every folder the pipeline writes to has FREE_SPACE_ALERT_GB free.")
def free_space(settings: SettingsResource) -> AssetCheckResult:
    return _result(check_free_space(settings.load()))


CHECKS = [no_file_in_between, uploads_verified, free_space]
