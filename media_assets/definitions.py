"""The one `Definitions` of the project, assembled from the folders under `defs/`."""

from dagster import Definitions

from media_assets.defs.assets import PHASE_ASSETS
from media_assets.defs.automation import batch_sensor
from media_assets.defs.jobs import media_batch_job
from media_assets.defs.resources import CatalogResource, SettingsResource

_settings = SettingsResource()

defs = Definitions(
    assets=PHASE_ASSETS,
    jobs=[media_batch_job],
    sensors=[batch_sensor],
    resources={"settings": _settings, "catalog": CatalogResource(settings=_settings)},
)
