"""The batch job: every phase asset of one batch, run in one process."""

from dagster import AssetSelection, define_asset_job, in_process_executor

from media_assets.defs.batch.assets import GROUP

BATCH_JOB_NAME = "media_batch"
#: Backfills launched from the UI run under `__ASSET_JOB`; both kinds are batches.
BATCH_JOB_NAMES = (BATCH_JOB_NAME, "__ASSET_JOB")

media_batch_job = define_asset_job(
    BATCH_JOB_NAME,
    selection=AssetSelection.groups(GROUP),
    # One process per run: phases parallelise across files themselves, and a step per process costs ~4 s each.
    executor_def=in_process_executor,
    description="Run one batch through every phase, from download to verification.",
)
