"""Which destinations the settings ask for. With no iCloud account configured, the `icloud_upload` phase
writes to LOCAL_DESTINATION_DIR instead, so the embedded default runs end to end with no account."""

from __future__ import annotations

from media_assets.destinations.base import Destination
from media_assets.destinations.folder import FolderDestination
from media_assets.settings import Settings


def icloud_upload_configured(settings: Settings) -> bool:
    return bool(settings.icloud.username or settings.icloud.upload_username)


def local_destination(settings: Settings) -> Destination:
    """Where the `icloud_upload` phase writes when no iCloud account is configured (the embedded default)."""
    return FolderDestination("local", settings.destinations.local_destination_dir, "local folder")


def primary_destination(settings: Settings) -> Destination:
    """The destination of the `icloud_upload` phase: iCloud Photos once an account is configured."""
    if icloud_upload_configured(settings):
        from media_assets.destinations.icloud import icloud_destination

        return icloud_destination(settings)
    return local_destination(settings)


def pixel_destination(settings: Settings) -> Destination | None:
    if settings.destinations.pixel_sync_dir is None:
        return None
    return FolderDestination("pixel", settings.destinations.pixel_sync_dir, "Pixel sync folder")


def enabled_destinations(settings: Settings) -> dict[str, Destination]:
    """The destinations every file must reach (or be declined by) before it is sorted."""
    enabled: dict[str, Destination] = {}
    if settings.destinations.enable_icloud_upload:
        primary = primary_destination(settings)
        enabled[primary.name] = primary
    pixel = pixel_destination(settings) if settings.destinations.enable_pixel_upload else None
    if pixel is not None:
        enabled[pixel.name] = pixel
    return enabled
