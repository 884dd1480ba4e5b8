"""The iCloud Photos resource: pyicloud sign-ins for the source the download phase reads and the destination
the icloud_upload phase writes, built from the settings when an account is configured."""

from dagster import ConfigurableResource

from media_assets.defs.resources import SettingsResource
from media_assets.destinations.base import Destination
from media_assets.destinations.configured import icloud_upload_configured
from media_assets.sources.base import MediaSource


class ICloudResource(ConfigurableResource):
    """iCloud Photos through pyicloud (sessions, 2FA over Telegram, pacing); None where no account is set."""

    settings: SettingsResource

    def source(self) -> MediaSource | None:
        from media_assets.sources.icloud import icloud_source

        loaded = self.settings.load()
        return icloud_source(loaded) if loaded.sources.enable_icloud_download else None

    def destination(self) -> Destination | None:
        from media_assets.destinations.icloud import icloud_destination

        loaded = self.settings.load()
        return icloud_destination(loaded) if icloud_upload_configured(loaded) else None
