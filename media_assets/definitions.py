"""The one `Definitions` of the project, assembled from the folders under `defs/`."""

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

from media_assets.defs.assets import GROUP, PHASE_ASSETS
from media_assets.defs.resources import CatalogResource, SettingsResource

BATCH_JOB_NAME = "media_batch"

media_batch_job = define_asset_job(
    BATCH_JOB_NAME,
    selection=AssetSelection.groups(GROUP),
    # One process per run: phases parallelise across files themselves, and a step per process costs ~4 s each.
    executor_def=in_process_executor,
    description="Run one batch through every phase, from download to verification.",
)

_settings = SettingsResource()

defs = Definitions(
    assets=PHASE_ASSETS,
    jobs=[media_batch_job],
    resources={"settings": _settings, "catalog": CatalogResource(settings=_settings)},
)
