"""The Supabase mirror: the resource, the sync asset and job, and the sensor watching the local outbox."""

from dagster import Definitions

from media_assets.defs.mirror.supabase import MIRROR_ASSETS, MIRROR_JOBS, MIRROR_SENSORS

defs = Definitions(assets=MIRROR_ASSETS, jobs=MIRROR_JOBS, sensors=MIRROR_SENSORS)
