"""iCloud Photos as a source: newest-added first with a stop rule, a periodic full walk, and bounded concurrent
downloads that the download phase takes one by one.

`scan()` only lists; bytes start flowing when the download phase takes its first item, so a scan made just to
ask "is anything new?" (the automation sensor) downloads nothing. From then on up to ICLOUD_CONCURRENCY files
are fetched ahead into ICLOUD_DOWNLOAD_DIR while the phase writes the catalog in its own thread; `take` then
moves a fetched file into place (hashed while it streamed in) instead of writing its bytes a second time. A file that
still fails after the retries fails alone: it is quarantined with the reason in this batch (as the source's
failure, `SourceUnreachable`) and offered again, as a new version, by the next scan, whose row closes the old."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from media_assets.catalog.database import resolve_conninfo
from media_assets.catalog.icloud import ICLOUD_SOURCE, ICloudCatalog
from media_assets.catalog.repository import Catalog
from media_assets.icloud.config import ICloudConfig, icloud_config
from media_assets.icloud.library import (
    RemoteFile,
    download,
    files_of,
    lookup_asset,
    recently_added,
    split_source_id,
    until_known_run,
)
from media_assets.icloud.session import CodeProvider, Connection, account_connector
from media_assets.settings import Settings
from media_assets.sources.base import SourceError, SourceItem, SourceUnreachable
from media_assets.storage import move_file, safe_name


@dataclass(frozen=True)
class Fetched:
    """A downloaded file waiting in the transfer folder, with what was measured while it streamed in."""

    path: Path
    size: int
    digest: str


class ICloudSource:
    name = ICLOUD_SOURCE

    def __init__(self, config: ICloudConfig, state: ICloudCatalog, connect: Callable[[], Connection]) -> None:
        self.config = config
        self.state = state
        self._connect = connect
        self._connection: Connection | None = None
        self._files: dict[str, RemoteFile] = {}
        self._queue: deque[RemoteFile] = deque()
        self._running: dict[str, Future[Fetched]] = {}
        self._pool: ThreadPoolExecutor | None = None

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def scan(self) -> Iterator[SourceItem]:
        full = self.state.full_scan_due(self.config.full_scan_days)
        stop = None if full else self.config.stop_after_known
        lookahead = 2 * self.config.concurrency
        ready: deque[SourceItem] = deque()
        seen: set[str] = set()
        self._clear_transfer_dir()
        try:
            assets = recently_added(self.connection)
            for asset, _known in until_known_run(assets, lambda a: self.state.is_known(f"{a.id}/original"), stop):
                seen.add(asset.id)
                for file in files_of(asset):
                    self._files[file.source_id] = file
                    if not self.state.is_known(file.source_id):
                        self._queue.append(file)
                    ready.append(self._item(file))
                while len(ready) > lookahead:
                    yield ready.popleft()
            while ready:
                yield ready.popleft()
        finally:
            self._stop_transfers()
        if full:  # the whole library was walked: what it did not find was deleted in iCloud
            self.state.record_walk(seen)
            self.state.record_full_scan()

    def _item(self, file: RemoteFile) -> SourceItem:
        retries = self.state.retry_count(file.source_id)
        version = f"{file.version}~retry{retries}" if retries else file.version
        return SourceItem(self.name, file.source_id, version, file.filename, size=file.size, taken=file.taken)

    def lookup(self, source_id: str) -> SourceItem:
        try:
            return self._item(self._file(source_id))
        except SourceError as error:
            return SourceItem(self.name, source_id, "", source_id, refusal=error.reason)

    def _file(self, source_id: str) -> RemoteFile:
        if source_id in self._files:
            return self._files[source_id]
        asset_id, kind = split_source_id(source_id)
        asset = lookup_asset(self.connection, asset_id)
        file = next((f for f in files_of(asset) if f.kind == kind), None) if asset else None
        if file is None:
            raise SourceError("the asset is no longer in iCloud Photos")
        self._files[source_id] = file
        return file

    def _fetched(self, source_id: str) -> Fetched:
        """The item's file in the transfer folder (fetched ahead, or now); a failure is recorded for a retry."""
        self._prefetch()
        running = self._running.pop(source_id, None)
        try:
            fetched = running.result() if running is not None else self._fetch(self._file(source_id))
        except SourceError:
            raise
        except Exception as error:
            reason = f"iCloud download failed after {self.config.max_retries} attempts: {error}"
            self.state.record_failure(source_id, reason)
            raise SourceUnreachable(f"{reason}; the next batch tries it again") from None
        self.state.clear_failure(source_id)
        return fetched

    @contextmanager
    def open(self, source_id: str) -> Iterator[BinaryIO]:
        path = self._fetched(source_id).path
        try:
            with path.open("rb") as stream:
                yield stream
        finally:
            path.unlink(missing_ok=True)

    def take(self, source_id: str, target: Path) -> tuple[int, str]:
        """Move the downloaded file to `target` (atomically; a copy only across filesystems): (bytes, sha256)."""
        fetched = self._fetched(source_id)
        move_file(fetched.path, target)
        return fetched.size, fetched.digest

    def unchanged(self, item_source_id: str, version: str) -> bool:
        return True  # an iCloud original never changes in place: an edit or re-import is a new asset

    def _prefetch(self) -> None:
        """Keep ICLOUD_CONCURRENCY downloads (plus as many queued) ahead of the phase."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="icloud-download")
        while self._queue and len(self._running) < 2 * self.config.concurrency:
            file = self._queue.popleft()
            self._running[file.source_id] = self._pool.submit(self._fetch, file)

    def _fetch(self, file: RemoteFile) -> Fetched:
        target = self.config.transfer_dir / f"{uuid.uuid4().hex}-{safe_name(file.filename)}"
        size, digest = download(self.connection, file, target)
        return Fetched(target, size, digest)

    def _stop_transfers(self) -> None:
        self._queue.clear()
        if self._pool is not None:
            for future in self._running.values():
                future.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
        for future in self._running.values():
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().path.unlink(missing_ok=True)
        self._running.clear()

    def _clear_transfer_dir(self) -> None:
        """Files a killed run left in the transfer folder; never the only copy of anything."""
        self.config.transfer_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.config.transfer_dir.iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)


def icloud_source(settings: Settings, code_provider: CodeProvider | None = None, *,
                  interactive: bool = True) -> ICloudSource:
    config = icloud_config(settings)
    state = ICloudCatalog(Catalog(resolve_conninfo(settings)), config.username)
    return ICloudSource(config, state, account_connector(config, settings, code_provider, interactive=interactive))
