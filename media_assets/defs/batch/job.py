"""The batch job: every phase asset of one batch, executed where the EXECUTOR setting says."""

from dagster import AssetSelection, define_asset_job
from dagster._core.execution.plan import active as dagster_step_loop

from media_assets.catalog.locks import REPORT_EVERY_SECONDS
from media_assets.defs.batch.assets import GROUP
from media_assets.defs.batch.executor import batch_executor

BATCH_JOB_NAME = "media_batch"
#: Backfills launched from the UI run under `__ASSET_JOB`; both kinds are batches.
BATCH_JOB_NAMES = (BATCH_JOB_NAME, "__ASSET_JOB")

# A step waiting for a pool slot (`icloud`: another run talks to Apple) is logged by Dagster's step loop as
# "Step still blocked by limit for pool icloud" every 5 minutes; a run waiting for anything says so every minute,
# like a run waiting for a lock. Dagster reads this module constant on every pass of the loop of each run process
# (this module is loaded by every process that executes the job: the CLI, the daemon's run workers).
dagster_step_loop.CONCURRENCY_CLAIM_MESSAGE_INTERVAL = int(REPORT_EVERY_SECONDS)

media_batch_job = define_asset_job(
    BATCH_JOB_NAME,
    selection=AssetSelection.groups(GROUP),
    # EXECUTOR=in_process by default: phases parallelise across files themselves, and a process per step costs
    # ~4 s each; celery spreads the phases of batches running at once over the Celery workers.
    executor_def=batch_executor,
    description="Run one batch through every phase, from download to verification.",
)
