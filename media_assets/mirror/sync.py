"""One sync cycle: send every queued change to Supabase, table by table, a chunk per request, and clear each
chunk from the outbox only after Supabase confirmed it. Killed halfway, the next cycle resends the rest; sent
twice, an upsert on the primary key changes nothing."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from media_assets.catalog.repository import Catalog
from media_assets.mirror import outbox
from media_assets.mirror.tables import MIRRORED_TABLES, MirroredTable

#: Failed cycles in a row before the alert goes out (one alert per outage, not one every interval).
ALERT_AFTER_FAILURES = 3
ALERT_KEY = "supabase-mirror"
Alert = Callable[[str, str], None]


class Remote(Protocol):
    requests: int
    retries: int

    def check_tables(self, tables: tuple[MirroredTable, ...]) -> None: ...
    def upsert(self, table: MirroredTable, rows: list[dict[str, Any]]) -> None: ...
    def delete(self, table: MirroredTable, keys: list[str]) -> None: ...


@dataclass
class SyncReport:
    rows_upserted: Counter[str] = field(default_factory=Counter)
    rows_deleted: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    #: Age of the oldest unsynced change when the cycle started (None: nothing was pending).
    lag_seconds: float | None = None

    @property
    def rows_sent(self) -> int:
        return self.rows_upserted.total() + self.rows_deleted.total()

    def metadata(self) -> dict[str, Any]:
        """Numbers for Dagster (plotted over time in the UI)."""
        meta: dict[str, Any] = {"rows_sent": self.rows_sent, "requests": self.requests, "retries": self.retries,
                                "seconds": round(self.seconds, 3), "lag_seconds": round(self.lag_seconds or 0.0, 3)}
        for table in MIRRORED_TABLES:
            meta[f"upserted_{table.name}"] = self.rows_upserted[table.name]
            meta[f"deleted_{table.name}"] = self.rows_deleted[table.name]
        return meta


def sync_once(catalog: Catalog, remote: Remote, chunk_size: int) -> SyncReport:
    """Mirror everything queued in the outbox. Makes no request at all when nothing is queued."""
    started = time.perf_counter()
    requests_before, retries_before = remote.requests, remote.retries
    report = SyncReport(lag_seconds=outbox.lag_seconds(catalog))
    if report.lag_seconds is not None:
        remote.check_tables(MIRRORED_TABLES)
        for table in MIRRORED_TABLES:
            _sync_table(catalog, remote, table, chunk_size, report)
    report.requests = remote.requests - requests_before
    report.retries = remote.retries - retries_before
    report.seconds = time.perf_counter() - started
    return report


def _sync_table(catalog: Catalog, remote: Remote, table: MirroredTable, chunk_size: int, report: SyncReport) -> None:
    last_key = ""
    while changes := outbox.read_changes(catalog, table, after=last_key, limit=chunk_size):
        last_key = changes[-1].row_key
        rows = outbox.current_rows(catalog, table, [c.row_key for c in changes if c.op == "upsert"])
        present = {str(row["id"]) for row in rows}
        # A row queued for upsert that is gone by now was deleted meanwhile: delete it remotely as well.
        gone = [c.row_key for c in changes if c.row_key not in present]
        if rows:
            remote.upsert(table, rows)
            report.rows_upserted[table.name] += len(rows)
        if gone:
            remote.delete(table, gone)
            report.rows_deleted[table.name] += len(gone)
        outbox.confirm(catalog, table, changes)


def run_cycle(catalog: Catalog, remote: Remote, chunk_size: int, alert: Alert | None = None) -> SyncReport:
    """`sync_once` plus the count of failed cycles in a row, with an alert when it reaches ALERT_AFTER_FAILURES."""
    try:
        report = sync_once(catalog, remote, chunk_size)
    except Exception as error:
        failures = outbox.record_failure(catalog, str(error))
        if failures == ALERT_AFTER_FAILURES and alert is not None:
            alert(ALERT_KEY, f"The Supabase mirror failed {failures} times in a row; the local catalog is fine and "
                             f"nothing is lost, changes wait in the outbox. Last error: {error}")
        raise
    outbox.record_success(catalog)
    return report
