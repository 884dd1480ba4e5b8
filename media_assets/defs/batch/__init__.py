"""One batch through every phase: the phase assets, their job and partitions, the invariant checks, and the
sensors that start batches, record failed ones and re-run them. The jobs that start or retry batches by
hand (`by_hand.py`) are added in `definitions.py`: they run batches through the runner."""

from dagster import Definitions

from media_assets.defs.batch.assets import PHASE_ASSETS
from media_assets.defs.batch.checks import CHECKS
from media_assets.defs.batch.job import media_batch_job
from media_assets.defs.batch.sensors import batch_sensor, failed_batch_sensor, retry_sensor

defs = Definitions(assets=PHASE_ASSETS, asset_checks=CHECKS, jobs=[media_batch_job],
                   sensors=[batch_sensor, failed_batch_sensor, retry_sensor])
