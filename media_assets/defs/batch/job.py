"""The batch job: every phase asset of one batch, executed where the EXECUTOR setting says."""

from dagster import AssetSelection, define_asset_job

from media_assets.defs.batch.assets import GROUP
from media_assets.defs.batch.executor import batch_executor

BATCH_JOB_NAME = "media_batch"
#: Backfills launched from the UI run under `__ASSET_JOB`; both kinds are batches.
BATCH_JOB_NAMES = (BATCH_JOB_NAME, "__ASSET_JOB")

media_batch_job = define_asset_job(
    BATCH_JOB_NAME,
    selection=AssetSelection.groups(GROUP),
    # EXECUTOR=in_process by default: phases parallelise across files themselves, and a process per step costs
    # ~4 s each; celery spreads the phases of batches running at once over the Celery workers.
    executor_def=batch_executor,
    description="Run one batch through every phase, from download to verification.",
)
