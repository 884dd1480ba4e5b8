"""One mirror pass, alone (the catalog's advisory lock), in two parts:

- **changes**: send every change queued in the outbox, table by table, a chunk per request, each row stamped with
  its outbox version so the remote keeps the newer of two writes; clear each chunk only after Supabase confirmed
  it. Killed halfway, the next pass resends the rest; sent twice, nothing changes.
- **reconciliation** (`full`): compare each table with the remote by a checksum per key range (one request per
  table), then row hashes where a range differs, and send only what differs, deleting what the catalog does not
  have. A lost or re-created table, a new project or rows edited in the Dashboard converge in one pass."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from media_assets.catalog import mirror as mirror_catalog
from media_assets.catalog.locks import LockBusy
from media_assets.catalog.mirror import Change, MirroredTable
from media_assets.catalog.repository import Catalog
from media_assets.mirror.remote import MirrorError
from media_assets.mirror.tables import MIRRORED_TABLES

#: Failed passes in a row before the alert goes out (one alert per outage, not one every interval).
ALERT_AFTER_FAILURES = 3
ALERT_KEY = "supabase-mirror"
#: Keys per checksum range of the reconciliation (numeric keys; text keys fall in 256 ranges by hash).
BUCKET_SIZE = 1000
#: Remote row hashes asked for in one request when ranges differ (about 50 bytes each in the answer).
ROW_HASHES_PER_REQUEST = 10_000
#: PostgreSQL's foreign_key_violation: a row whose parent this pass has not sent yet.
FOREIGN_KEY_VIOLATION = "23503"
#: Called with a throttling key and the text (telegram.notify.send_alert); its answer is not used.
Alert = Callable[[str, str], object]


class Remote(Protocol):
    requests: int
    retries: int

    def check_key(self) -> None: ...
    def check_tables(self, tables: tuple[MirroredTable, ...]) -> None: ...
    def upsert(self, table: MirroredTable, rows: list[str], *, force: bool = False) -> int: ...
    def delete(self, table: MirroredTable, keys: list[str]) -> set[str]: ...
    def checksums(self, table: MirroredTable, bucket_size: int) -> dict[int, tuple[int, str]]: ...
    def row_hashes(self, table: MirroredTable, bucket_size: int, buckets: list[int]) -> dict[str, str]: ...


@dataclass
class SyncReport:
    full: bool = False
    #: Why the pass did nothing (another pass held the lock); None when it ran.
    skipped: str | None = None
    rows_upserted: Counter[str] = field(default_factory=Counter)
    rows_deleted: Counter[str] = field(default_factory=Counter)
    #: Rows the remote already had in a newer version (another pass sent it first).
    rows_outdated: int = 0
    #: Rows the remote did not delete when asked; their changes stay queued.
    rows_not_deleted: Counter[str] = field(default_factory=Counter)
    #: Rows whose parent had not reached the remote yet; their changes stay queued for the next pass.
    rows_deferred: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    #: Of `seconds`, the time spent in the local catalog (reading, building rows, clearing the outbox).
    local_seconds: float = 0.0
    #: Age of the oldest unsynced change when the pass started (None: nothing was pending).
    lag_seconds: float | None = None

    @property
    def rows_sent(self) -> int:
        return self.rows_upserted.total() + self.rows_deleted.total()

    def metadata(self) -> dict[str, Any]:
        """Numbers for Dagster (plotted over time in the UI)."""
        meta: dict[str, Any] = {"full": self.full, "rows_sent": self.rows_sent, "requests": self.requests,
                                "retries": self.retries, "seconds": round(self.seconds, 3),
                                "local_seconds": round(self.local_seconds, 3),
                                "lag_seconds": round(self.lag_seconds or 0.0, 3), "rows_outdated": self.rows_outdated}
        for table in MIRRORED_TABLES:
            meta[f"upserted_{table.name}"] = self.rows_upserted[table.name]
            meta[f"deleted_{table.name}"] = self.rows_deleted[table.name]
        return meta

    def summary(self) -> str:
        """One line for a person: what went where, or why nothing ran."""
        kind = "full pass" if self.full else "pass"
        if self.skipped is not None:
            return f"Supabase mirror: no {kind}: {self.skipped}."
        sent = "; ".join(f"{what} {', '.join(f'{name} {n}' for name, n in sorted(rows.items()))}"
                         for what, rows in (("upserted", self.rows_upserted), ("deleted", self.rows_deleted)) if rows)
        return (f"Supabase mirror {kind}: {self.rows_sent} rows sent ({sent or 'nothing to send'}) in "
                f"{self.requests} requests, {self.seconds:.1f} s.")

    @contextmanager
    def local(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.local_seconds += time.perf_counter() - started


def sync_once(catalog: Catalog, remote: Remote, chunk_size: int, *, full: bool = False) -> SyncReport:
    """One pass: the queued changes, then with `full` the reconciliation. No request at all when nothing is queued
    and `full` is off; nothing at all when another pass holds the lock (`report.skipped` says so)."""
    started = time.perf_counter()
    requests_before, retries_before = remote.requests, remote.retries
    report = SyncReport(full=full)
    remote.check_key()
    try:
        with mirror_catalog.pass_lock(catalog):
            _pass(catalog, remote, chunk_size, report)
    except LockBusy as busy:
        report.skipped = f"another mirror pass is running ({busy}); it sends what is queued"
        return report
    report.requests = remote.requests - requests_before
    report.retries = remote.retries - retries_before
    report.seconds = time.perf_counter() - started
    if report.rows_not_deleted:
        kept = ", ".join(f"{name} {n}" for name, n in sorted(report.rows_not_deleted.items()))
        raise MirrorError(f"Supabase mirror: the project did not delete rows it was asked to delete ({kept}); "
                          "they stay queued. Is a policy or trigger keeping them?")
    return report


def _pass(catalog: Catalog, remote: Remote, chunk_size: int, report: SyncReport) -> None:
    report.lag_seconds = mirror_catalog.lag_seconds(catalog)
    if report.lag_seconds is not None:
        remote.check_tables(MIRRORED_TABLES)
        for table in MIRRORED_TABLES:
            _send_changes(catalog, remote, table, chunk_size, report)
    if report.full:
        for table in MIRRORED_TABLES:
            _reconcile(catalog, remote, table, chunk_size, report)


def _send_changes(catalog: Catalog, remote: Remote, table: MirroredTable, chunk_size: int,
                  report: SyncReport) -> None:
    last_key = ""
    while True:
        with report.local():
            changes = mirror_catalog.read_changes(catalog, table, after=last_key, limit=chunk_size)
        if not changes:
            return
        last_key = changes[-1].row_key
        confirmed = _upsert_changes(remote, table, changes, report)
        # A row queued for upsert that is gone by now was deleted meanwhile: delete it remotely as well.
        gone = [c.row_key for c in changes if c.row is None]
        if gone:
            remaining = _delete(remote, table, gone, report)
            confirmed += [c for c in changes if c.row is None and c.row_key not in remaining]
        with report.local():
            mirror_catalog.confirm(catalog, table, confirmed)


def _upsert_changes(remote: Remote, table: MirroredTable, changes: list[Change], report: SyncReport) -> list[Change]:
    """Send the chunk's present rows; returns the changes Supabase took (written, or outdated by a newer one)."""
    present = [c for c in changes if c.row is not None]
    if not present:
        return []
    try:
        written = remote.upsert(table, [c.row for c in present if c.row is not None])
    except MirrorError as error:
        if error.code != FOREIGN_KEY_VIOLATION:
            raise
        # The parent changed after this pass sent its table: the next pass sends the parent first.
        _count(report.rows_deferred, table, len(present))
        return []
    _count(report.rows_upserted, table, written)
    report.rows_outdated += len(present) - written
    return present


def _reconcile(catalog: Catalog, remote: Remote, table: MirroredTable, chunk_size: int, report: SyncReport) -> None:
    with report.local():
        local_sums = mirror_catalog.bucket_checksums(catalog, table, BUCKET_SIZE)
    remote_sums = remote.checksums(table, BUCKET_SIZE)
    differing = sorted(b for b in local_sums.keys() | remote_sums.keys() if local_sums.get(b) != remote_sums.get(b))
    if not differing:
        return
    with report.local():
        local_hashes = mirror_catalog.row_hashes(catalog, table, BUCKET_SIZE, differing)
    remote_hashes = _remote_row_hashes(remote, table, [b for b in differing if b in remote_sums], remote_sums)
    different = sorted(key for key, row_hash in local_hashes.items() if remote_hashes.get(key) != row_hash)
    extra = sorted(key for key in remote_hashes if key not in local_hashes)
    for start in range(0, len(different), chunk_size):
        with report.local():
            rows = mirror_catalog.rows_by_key(catalog, table, different[start:start + chunk_size])
        if rows:
            _count(report.rows_upserted, table, remote.upsert(table, rows, force=True))
    for start in range(0, len(extra), chunk_size):
        _delete(remote, table, extra[start:start + chunk_size], report)


def _delete(remote: Remote, table: MirroredTable, keys: list[str], report: SyncReport) -> set[str]:
    """Delete `keys` remotely; returns (and counts) the keys the remote still has."""
    remaining = remote.delete(table, keys)
    _count(report.rows_deleted, table, len(keys) - len(remaining))
    _count(report.rows_not_deleted, table, len(remaining))
    return remaining


def _count(counter: Counter[str], table: MirroredTable, rows: int) -> None:
    if rows:
        counter[table.name] += rows


def _remote_row_hashes(remote: Remote, table: MirroredTable, buckets: list[int],
                       sums: dict[int, tuple[int, str]]) -> dict[str, str]:
    """Row hashes of the remote's differing ranges, in requests of at most ROW_HASHES_PER_REQUEST rows (ranges the
    remote lacks altogether need none: all their local rows are sent)."""
    hashes: dict[str, str] = {}
    group: list[int] = []
    rows = 0
    for bucket in buckets:
        if group and rows + sums[bucket][0] > ROW_HASHES_PER_REQUEST:
            hashes |= remote.row_hashes(table, BUCKET_SIZE, group)
            group, rows = [], 0
        group.append(bucket)
        rows += sums[bucket][0]
    if group:
        hashes |= remote.row_hashes(table, BUCKET_SIZE, group)
    return hashes


def run_cycle(catalog: Catalog, remote: Remote, chunk_size: int, alert: Alert | None = None, *,
              full: bool = False) -> SyncReport:
    """`sync_once` plus the mirror's state in the catalog (last success, last full pass, last error, failures in a
    row), with an alert when the failures reach ALERT_AFTER_FAILURES."""
    try:
        report = sync_once(catalog, remote, chunk_size, full=full)
    except Exception as error:
        failures = mirror_catalog.record_failure(catalog, str(error))
        if failures == ALERT_AFTER_FAILURES and alert is not None:
            alert(ALERT_KEY, f"The Supabase mirror failed {failures} times in a row; the local catalog is fine and "
                             f"nothing is lost, changes wait in the outbox. Last error: {error}")
        raise
    if report.skipped is None:
        mirror_catalog.record_success(catalog, full=full)
    return report
