"""Asset checks: the pipeline's invariants, visible beside the assets in the UI. The checks on `verification`
are partitioned like it, so each evaluates the batch of the run that executes it."""

import warnings
from collections.abc import Callable
from typing import Any

from dagster import AssetCheckExecutionContext, AssetCheckResult, PreviewWarning, asset_check

from media_assets.batches import BatchLifecycle
from media_assets.defs.batch.assets import verification
from media_assets.defs.batch.partitions import batch_partitions
from media_assets.defs.checks import check_result
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.operations import check_no_file_in_between, check_uploads_verified


def partitioned_check(**kwargs: Any) -> Callable[[Callable[..., AssetCheckResult]], Any]:
    """`asset_check` partitioned by batch. Dagster warns that partitioned checks are a preview each time the
    definitions load (every code server start, dozens of times a day): said once here, silenced at its source."""
    def decorate(fn: Callable[..., AssetCheckResult]) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PreviewWarning)
            return asset_check(asset=verification, partitions_def=batch_partitions, **kwargs)(fn)
    return decorate


@partitioned_check(description="No file of the batch is left in an intermediate state.")
def no_file_in_between(context: AssetCheckExecutionContext, catalog: CatalogResource) -> AssetCheckResult:
    return check_result(check_no_file_in_between(catalog.catalog, context.partition_key))


@partitioned_check(blocking=True, description="Every uploaded file of the batch was verified at its destination; "
                                              "a failure fails the run.")
def uploads_verified(context: AssetCheckExecutionContext, settings: SettingsResource,
                     catalog: CatalogResource) -> AssetCheckResult:
    outcome = check_uploads_verified(catalog.catalog, context.partition_key,
                                     verification_enabled=settings.load().destinations.enable_verification)
    if not outcome.passed:  # however the run was started, `retry-failed` then finds the batch
        BatchLifecycle(catalog.catalog).failed(context.partition_key, outcome.description)
    return check_result(outcome)


CHECKS = [no_file_in_between, uploads_verified]
