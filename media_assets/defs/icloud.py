"""The iCloud Photos source as a resource: pyicloud sign-ins for what the download phase reads, built from the
settings when an account is configured (the destination comes from `DestinationsResource`)."""

from dagster import ConfigurableResource

from media_assets.defs.resources import SettingsResource
from media_assets.sources.base import MediaSource


class ICloudResource(ConfigurableResource):
    """iCloud Photos through pyicloud (sessions, 2FA over Telegram, pacing); None where no account is set."""

    settings: SettingsResource

    def source(self) -> MediaSource | None:
        loaded = self.settings.load()
        if not loaded.sources.enable_icloud_download:
            return None  # and pyicloud (about 20 MB of the run's process) stays unimported
        from media_assets.sources.icloud import icloud_source

        return icloud_source(loaded)
