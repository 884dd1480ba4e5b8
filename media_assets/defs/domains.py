"""Every domain under `defs/` merged, with the resources they share: what the runner executes batches with.
`definitions.py` adds the jobs launched by hand from the UI, which run batches through the runner."""

from dagster import Definitions

from media_assets.defs import batch, library, mirror, telegram
from media_assets.defs.batch.executor import batch_executor
from media_assets.defs.icloud import ICloudResource
from media_assets.defs.mirror.supabase import SupabaseResource
from media_assets.defs.resources import CatalogResource, DestinationsResource, SettingsResource
from media_assets.defs.telegram.resources import TelegramResource

_settings = SettingsResource()

domain_defs = Definitions.merge(
    batch.defs, library.defs, telegram.defs, mirror.defs,
    Definitions(
        # UI launches and backfills (`__ASSET_JOB`) run where the batch job does (EXECUTOR), holding its locks.
        executor=batch_executor,
        resources={"settings": _settings, "catalog": CatalogResource(settings=_settings),
                   "telegram": TelegramResource(settings=_settings),
                   "supabase": SupabaseResource(settings=_settings), "icloud": ICloudResource(settings=_settings),
                   "destinations": DestinationsResource(settings=_settings)},
    ),
)
