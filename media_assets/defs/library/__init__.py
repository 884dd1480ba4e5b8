"""The whole library: the dashboard asset, the sensor that refreshes it, and its free-space check."""

from dagster import Definitions

from media_assets.defs.library.assets import library_stats, library_stats_sensor
from media_assets.defs.library.checks import free_space

defs = Definitions(assets=[library_stats], asset_checks=[free_space], sensors=[library_stats_sensor])
