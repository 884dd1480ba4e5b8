"""iCloud Photos as the destination of `icloud_upload`: the photosupload flow without waiting for Apple to index
each file (about 20 s); `verify` in the verification phase waits, once per batch, for the records to appear.

A file the iCloud source took from this same account is already in its library: it is never uploaded back
(a second copy beside the original), except in replace-originals mode, where the upload is the successor.

Apple answers identical bytes with the asset it already has: that counts as uploaded. Formats the web upload
does not take (JPEG only by default, ICLOUD_UPLOAD_FORMATS) are declined with the reason, so the file is
recorded as not accepted and still kept and sorted locally."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from media_assets.catalog.icloud import ICLOUD_SOURCE
from media_assets.destinations.base import UploadError, UploadJob
from media_assets.icloud import library
from media_assets.icloud.config import ICloudConfig, icloud_config
from media_assets.icloud.session import CodeProvider, Connection, account_connector
from media_assets.settings import Settings

#: Files whose upload URLs one request reserves (a larger group saves little and holds URLs longer).
UPLOAD_GROUP = 4
log = logging.getLogger("media_assets.icloud")


class ICloudDestination:
    name = "icloud"
    sending = "uploaded to iCloud Photos"

    def __init__(self, config: ICloudConfig, connect: Callable[[], Connection], *,
                 source_account: str | None = None) -> None:
        self.config = config
        #: The Apple ID the iCloud source downloads from (None: no iCloud source).
        self.source_account = source_account
        self._connect = connect
        self._connection: Connection | None = None
        self._index_deadline: float | None = None

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def refusal(self, media_format: str | None, media_type: str | None) -> str | None:
        if (media_format or "").lower() in self.config.upload_formats:
            return None
        accepted = ", ".join(sorted(self.config.upload_formats)).upper()
        return (f"not accepted by iCloud: its web upload takes {accepted} only (ICLOUD_UPLOAD_FORMATS), "
                f"not {(media_format or media_type or 'this file').upper()}")

    def already_holds(self, source: str, source_id: str) -> str | None:
        """The source asset's id when the file came from this account and is not to be replaced."""
        if source != ICLOUD_SOURCE or self.source_account != self.config.username or self.config.replace_originals:
            return None
        return library.split_source_id(source_id)[0]

    def upload(self, path: Path, name: str, checksum: str, taken: datetime | None = None,
               reserved_url: str | None = None) -> str:
        try:
            asset_id, _already_there = library.upload(self.connection, path, taken, reserved_url)
        except Exception as error:
            raise UploadError(str(error)) from None  # the phase's message says where: "uploaded to iCloud Photos"
        return asset_id

    def upload_many(self, jobs: Iterable[UploadJob]) -> Iterator[tuple[UploadJob, str | UploadError]]:
        """ICLOUD_CONCURRENCY threads (paced), results in the order of `jobs`. Each thread takes a group of up to
        UPLOAD_GROUP files and reserves their upload URLs in one request: with Apple's pacing, requests per file
        bound the throughput, and a file then costs about two (send, register) instead of three."""
        pending = list(jobs)
        size = max(1, min(UPLOAD_GROUP, len(pending) // self.config.concurrency))
        groups = [pending[start:start + size] for start in range(0, len(pending), size)]
        _ = self.connection  # sign in once, before the threads start
        with ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="icloud-upload") as pool:
            for group, results in zip(groups, pool.map(self._upload_group, groups), strict=True):
                yield from zip(group, results, strict=True)

    def _upload_group(self, group: list[UploadJob]) -> list[str | UploadError]:
        urls: list[str | None] = [None] * len(group)
        if len(group) > 1:
            try:
                urls = library.reserve_uploads(self.connection, [job.path for job in group])
            except Exception as error:  # each file then reserves its own URL (and fails alone if Apple is down)
                log.warning("iCloud: reserving %d upload URLs failed (%s)", len(group), error)
        results: list[str | UploadError] = []
        for job, url in zip(group, urls, strict=True):
            try:
                results.append(self.upload(job.path, job.name, job.checksum, job.taken, url))
            except UploadError as error:
                results.append(error)
        return results

    @property
    def bytes_sample(self) -> int:
        return self.config.verify_sample

    def verify_bytes(self, remote_id: str, checksum: str) -> bool:
        """Download the asset's original back and compare its SHA-256 (Apple's own checksum proves nothing)."""
        asset = library.lookup_asset(self.connection, remote_id)
        original = next((f for f in library.files_of(asset) if f.kind == library.ORIGINAL), None) if asset else None
        return original is not None and library.remote_sha256(self.connection, original) == checksum

    def holds(self, remote_id: str) -> bool:
        asset = library.lookup_asset(self.connection, remote_id)
        return asset is not None and not asset.asset_record.fields.get_value("isDeleted")

    def resend(self, remote_id: str, job: UploadJob) -> str:
        """Apple answers bytes it holds with the asset it has, so a bad asset goes to Recently Deleted (kept
        there 30 days) before the kept copy is uploaded as a new one."""
        asset = library.lookup_asset(self.connection, remote_id)
        if asset is not None and not asset.asset_record.fields.get_value("isDeleted"):
            library.move_to_recently_deleted(self.connection, asset)
        self._index_deadline = None  # the new asset gets its own wait to be indexed
        return self.upload(job.path, job.name, job.checksum, job.taken)

    def verify(self, remote_id: str, checksum: str) -> bool:
        """The asset is indexed, in the library, and (where Apple's checksum is a SHA-256) holds these bytes.

        Freshly uploaded assets take seconds to be indexed: the first verification of a run waits up to
        ICLOUD_INDEX_WAIT_SECONDS, and the later ones share that deadline, so a batch waits once, not per file."""
        if self._index_deadline is None:
            self._index_deadline = time.monotonic() + self.config.index_wait_seconds
        delay = 0.25
        while True:
            asset = library.lookup_asset(self.connection, remote_id)
            if asset is not None:
                deleted = asset.asset_record.fields.get_value("isDeleted")
                checksum_ok = all(library.checksum_matches(f.checksum, bytes.fromhex(checksum))
                                  for f in library.files_of(asset) if f.kind == library.ORIGINAL)
                return not deleted and checksum_ok
            if time.monotonic() + delay > self._index_deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 4.0)


def icloud_destination(settings: Settings, code_provider: CodeProvider | None = None) -> ICloudDestination:
    config = icloud_config(settings, role="destination")
    source_account = icloud_config(settings).username if settings.sources.enable_icloud_download else None
    return ICloudDestination(config, account_connector(config, settings, code_provider),
                             source_account=source_account)
