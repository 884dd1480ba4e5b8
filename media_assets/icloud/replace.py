"""Replace-originals mode (ICLOUD_REPLACE_ORIGINALS, off by default): once the uploaded successor of an iCloud
asset is verified in iCloud, the source asset is moved to Recently Deleted (Apple keeps it 30 days) and the
catalog records both ids. Every file of the asset (a Live Photo's video too) must be verified first, and an
asset is never deleted when its successor is the asset itself (Apple answered "duplicate": same bytes), or when
the successor is not the same asset: a Live Photo (the upload cannot pair still and video), a burst, an edit, a
favourite, hidden or captioned asset, or a conversion to another format (a HEIC's JPEG derivative loses depth
and gain maps and 10-bit colour). Those are recorded as kept with the reason, and the report lists them. Album
membership is not looked at (listing every album per asset is costly): an asset in albums leaves them.

pyicloud is imported only when a replacement runs: every batch's verification calls `replace_if_configured`, and
pyicloud with its dependencies is about 35 MB of the run's process that a library without iCloud never needs."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from media_assets.catalog.icloud import ICloudCatalog, ReplacementCandidate
from media_assets.catalog.repository import Catalog
from media_assets.icloud.config import icloud_config
from media_assets.settings import Settings

if TYPE_CHECKING:
    from media_assets.icloud.session import Connection

log = logging.getLogger("media_assets.icloud")


def replace_originals(catalog: Catalog, batch_id: str, source: Callable[[], Connection], *, account: str,
                      destination: str = "icloud") -> int:
    """Move this batch's verified iCloud originals to Recently Deleted; returns how many were moved."""
    from media_assets.icloud import library

    icloud = ICloudCatalog(catalog, account)
    by_asset: dict[str, list[ReplacementCandidate]] = defaultdict(list)
    for candidate in icloud.replacement_candidates(batch_id, destination):
        by_asset[library.split_source_id(candidate.source_id)[0]].append(candidate)
    moved, connection = 0, None
    for asset_id, files in by_asset.items():
        if not all(f.state == "verified" and f.verified_at is not None for f in files):
            continue  # not every file of the asset has a verified successor: keep it
        if any(f.remote_id == asset_id for f in files):
            log.info("iCloud asset %s is its own successor (identical bytes); it stays", asset_id)
            continue
        connection = connection or source()
        asset = library.lookup_asset(connection, asset_id)
        if asset is None:
            continue  # gone from iCloud already: nothing to replace
        reason = _not_reproducible(files) or library.not_reproducible(asset)
        if reason is not None:
            log.info("iCloud asset %s is kept: %s", asset_id, reason)
            icloud.record_kept(files, asset_id, reason)
            continue
        library.move_to_recently_deleted(connection, asset)
        moved += 1
        icloud.record_replacement(files, asset_id)
    return moved


def _not_reproducible(files: list[ReplacementCandidate]) -> str | None:
    """Why the uploaded files are not the same asset, as far as the catalog tells; None when they may be."""
    from media_assets.icloud import library

    if any(library.split_source_id(f.source_id)[1] == library.LIVE for f in files):
        return "a Live Photo: the upload cannot pair its still and video again"
    if any(_converted(f.original_path, f.output_path) for f in files):
        return "uploaded as another format (a HEIC's JPEG derivative loses depth, gain maps and 10-bit colour)"
    return None


_SAME_FORMAT = {".jpeg": ".jpg", ".jpe": ".jpg", ".heif": ".heic"}


def _converted(original: str | None, output: str | None) -> bool:
    """Whether compression's output is another format than the original (the only such output today is a
    HEIC's JPEG derivative; a re-encode or a lossless rewrite keeps the format and so the extension)."""
    def kind(path: str) -> str:
        suffix = Path(path).suffix.lower()
        return _SAME_FORMAT.get(suffix, suffix)

    return original is not None and output is not None and kind(original) != kind(output)


def replace_if_configured(settings: Settings, catalog: Catalog, batch_id: str) -> int:
    """After a verified batch: the replacement, when ICLOUD_REPLACE_ORIGINALS and the iCloud source are on."""
    if not (settings.sources.enable_icloud_download and settings.icloud.username):
        return 0
    config = icloud_config(settings)
    if not config.replace_originals:
        return 0
    from media_assets.icloud.session import account_connector

    return replace_originals(catalog, batch_id, account_connector(config, settings), account=config.username)
