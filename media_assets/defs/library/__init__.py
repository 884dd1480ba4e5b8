"""The whole library: the dashboard asset, the sensor that refreshes it, its free-space check, and the weekly
scrub (verify --full) as a check on the copies themselves."""

from dagster import Definitions

from media_assets.defs.library.assets import library_stats, library_stats_sensor
from media_assets.defs.library.checks import free_space
from media_assets.defs.library.scrub import library_copies, scrub, scrub_job, weekly_scrub

defs = Definitions(assets=[library_stats, library_copies], asset_checks=[free_space, scrub],
                   sensors=[library_stats_sensor], jobs=[scrub_job], schedules=[weekly_scrub])
