"""Which sources the settings ask for."""

from __future__ import annotations

from media_assets.settings import Settings
from media_assets.sources.base import MediaSource
from media_assets.sources.folder import FolderSource


def local_sources(settings: Settings) -> dict[str, MediaSource]:
    """The enabled sources on this machine's disks."""
    if not settings.enable_folder_source:
        return {}
    folder = FolderSource(settings.folder_source_paths)
    return {folder.name: folder}


def enabled_sources(settings: Settings, *, interactive: bool = True) -> dict[str, MediaSource]:
    """The enabled sources; `interactive=False` for callers that must never wait for a person (a 2FA code)."""
    sources = local_sources(settings)
    if settings.enable_icloud_download:
        from media_assets.sources.icloud import icloud_source

        icloud = icloud_source(settings, interactive=interactive)
        sources[icloud.name] = icloud
    return sources
