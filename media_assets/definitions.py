"""The one `Definitions` of the project: every domain under `defs/` (`defs/domains.py`) and the jobs launched by
hand from the UI, which run batches through the runner (itself built on the domains, so no import circle)."""

from dagster import Definitions

from media_assets.defs import domains  # as a module: Dagster refuses two Definitions at this module's scope
from media_assets.defs.batch.by_hand import new_batch, retry_failed_batches

defs = Definitions.merge(domains.domain_defs, Definitions(jobs=[new_batch, retry_failed_batches]))
