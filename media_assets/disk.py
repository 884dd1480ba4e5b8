"""Bounded disk: how much room a batch needs before it starts, and how long originals are kept after it.

A batch briefly holds several copies of its bytes (the original, the compressed output, the staged copy that
becomes the kept one, and folder destinations on the same disk); once it is verified the intermediate copies
are removed and the originals follow KEEP_ORIGINALS, so the library costs about one kept copy plus each
destination's copy, not four."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from media_assets.destinations.configured import icloud_upload_configured
from media_assets.settings import GB, Settings
from media_assets.storage import free_bytes

UNTIL_VERIFIED = "until_verified"
ALWAYS = "always"
#: Per source, when KEEP_ORIGINALS is not set: a folder still holds its files, so our copy of an original is
#: redundant once its successor is verified; iCloud may drop them (replace mode, the owner's own deletions).
DEFAULT_KEEP_BY_SOURCE = {"folder": UNTIL_VERIFIED, "icloud": ALWAYS}


@dataclass(frozen=True)
class KeepOriginals:
    """When the copy of an original in `originals/` may go: `until_verified`, `always`, or `days` after the
    batch was verified. None: the per-source default."""

    rule: str | None
    days: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> KeepOriginals:
        rule = settings.storage.keep_originals  # checked at start: empty, until_verified, always or days:N
        if rule.startswith("days:"):
            return cls("days", int(rule[5:]))
        return cls(rule or None)

    def rule_for(self, source: str) -> str:
        return self.rule or DEFAULT_KEEP_BY_SOURCE.get(source, ALWAYS)

    def keep_for(self, source: str) -> timedelta | None:
        """How long after verification the original of a file from `source` stays; None: for ever."""
        rule = self.rule_for(source)
        if rule == ALWAYS:
            return None
        return timedelta(days=self.days if rule == "days" else 0)


def _same_disk(folder: Path, media_root: Path) -> bool:
    try:
        return os.stat(folder).st_dev == os.stat(media_root).st_dev
    except OSError:
        return False


def copies_made(settings: Settings) -> int:
    """How many copies of a batch's bytes sit on MEDIA_ROOT's disk before verification frees the intermediate
    ones: the original and the staged copy (compression's output renamed into bridge/, or a copy of the original
    it kept; sorting moves it into uploaded/), and each folder destination on the same disk."""
    folders = []
    if settings.destinations.enable_icloud_upload and not icloud_upload_configured(settings):
        folders.append(settings.destinations.local_destination_dir)
    if settings.destinations.enable_pixel_upload and settings.destinations.pixel_sync_dir is not None:
        folders.append(settings.destinations.pixel_sync_dir)
    return 2 + sum(_same_disk(folder, settings.storage.media_root) for folder in folders)


def space_shortfall(settings: Settings, batch_bytes: int) -> str | None:
    """Why a batch of `batch_bytes` must not start (it would leave less than FREE_SPACE_ALERT_GB free on
    MEDIA_ROOT's disk), or None when it fits."""
    reserve = settings.storage.free_space_alert_gb * GB
    copies = copies_made(settings)
    needed = batch_bytes * copies + reserve
    free = free_bytes(settings.storage.media_root)
    if free >= needed:
        return None
    return (f"the next batch would fill the disk: it needs {needed / GB:.1f} GB ({batch_bytes / GB:.2f} GB x "
            f"{copies} copies + FREE_SPACE_ALERT_GB {reserve / GB:.0f}) but {settings.storage.media_root} has "
            f"{free / GB:.1f} GB free; free some space or lower BATCH_MAX_GB")
