"""What the iCloud source remembers in the catalog (revision 0005), keyed by asset id, never by file name."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from media_assets.catalog.repository import Catalog

SOURCE = "icloud"


class ICloudState:
    def __init__(self, catalog: Catalog, account: str) -> None:
        self.catalog = catalog
        self.account = account

    def is_known(self, source_id: str) -> bool:
        """Catalogued, and not waiting to be downloaded again after a failure."""
        row = self.catalog.conn.execute(
            "SELECT 1 FROM media_files f WHERE f.source = %s AND f.source_id = %s AND NOT EXISTS"
            " (SELECT 1 FROM icloud_download_retries r WHERE r.source_id = f.source_id) LIMIT 1",
            (SOURCE, source_id)).fetchone()
        return row is not None

    def retry_count(self, source_id: str) -> int:
        row = self.catalog.conn.execute("SELECT attempts FROM icloud_download_retries WHERE source_id = %s",
                                        (source_id,)).fetchone()
        return int(row["attempts"]) if row else 0

    def record_failure(self, source_id: str, reason: str) -> None:
        self.catalog.conn.execute(
            "INSERT INTO icloud_download_retries (source_id, attempts, reason) VALUES (%s, 1, %s)"
            " ON CONFLICT (source_id) DO UPDATE SET attempts = icloud_download_retries.attempts + 1,"
            " reason = EXCLUDED.reason, updated_at = now()", (source_id, reason))

    def clear_failure(self, source_id: str) -> None:
        self.catalog.conn.execute("DELETE FROM icloud_download_retries WHERE source_id = %s", (source_id,))

    def full_scan_due(self, every_days: int, now: datetime | None = None) -> bool:
        row = self.catalog.conn.execute("SELECT last_full_scan_at FROM icloud_sync WHERE account = %s",
                                        (self.account,)).fetchone()
        last = row["last_full_scan_at"] if row else None
        return last is None or (now or datetime.now(timezone.utc)) - last >= timedelta(days=every_days)

    def record_full_scan(self, at: datetime | None = None) -> None:
        self.catalog.conn.execute(
            "INSERT INTO icloud_sync (account, last_full_scan_at) VALUES (%s, %s) ON CONFLICT (account)"
            " DO UPDATE SET last_full_scan_at = EXCLUDED.last_full_scan_at",
            (self.account, at or datetime.now(timezone.utc)))
