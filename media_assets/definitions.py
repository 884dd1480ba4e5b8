"""The one `Definitions` of the project, assembled from the folders under `defs/`."""

from dagster import Definitions, in_process_executor

from media_assets.defs.assets import PHASE_ASSETS
from media_assets.defs.automation import batch_sensor, failed_batch_sensor
from media_assets.defs.checks import CHECKS
from media_assets.defs.icloud import ICloudResource
from media_assets.defs.jobs import media_batch_job
from media_assets.defs.library_stats import library_stats
from media_assets.defs.mirror import MIRROR_ASSETS, MIRROR_JOBS, MIRROR_SENSORS, SupabaseResource
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.defs.telegram import TELEGRAM_SENSORS, TelegramResource

_settings = SettingsResource()

defs = Definitions(
    assets=[*PHASE_ASSETS, library_stats, *MIRROR_ASSETS],
    asset_checks=CHECKS,
    jobs=[media_batch_job, *MIRROR_JOBS],
    sensors=[batch_sensor, failed_batch_sensor, *TELEGRAM_SENSORS, *MIRROR_SENSORS],
    # UI launches and backfills (`__ASSET_JOB`) run in one process too, like the batch job.
    executor=in_process_executor,
    resources={"settings": _settings, "catalog": CatalogResource(settings=_settings),
               "telegram": TelegramResource(settings=_settings), "supabase": SupabaseResource(settings=_settings),
               "icloud": ICloudResource(settings=_settings)},
)
