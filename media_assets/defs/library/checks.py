"""The library's asset check: free space, beside the dashboard asset."""

from dagster import AssetCheckResult, asset_check

from media_assets.defs.checks import check_result
from media_assets.defs.library.assets import library_stats
from media_assets.defs.resources import SettingsResource
from media_assets.operations import check_free_space


@asset_check(asset=library_stats, description="Every folder the pipeline writes to has FREE_SPACE_ALERT_GB free.")
def free_space(settings: SettingsResource) -> AssetCheckResult:
    return check_result(check_free_space(settings.load()))
