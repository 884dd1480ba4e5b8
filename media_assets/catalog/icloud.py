"""The iCloud tables (revisions 0005, 0009, 0010): what the iCloud source remembers, keyed by asset id and never
by file name (the last full walk per account, downloads to retry), the originals replace-originals mode moved to
Recently Deleted or kept (with the reason), and files recorded as already in the source account's library
instead of uploaded back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from media_assets.catalog.repository import Catalog

#: The `media_files.source` of files taken from iCloud Photos.
ICLOUD_SOURCE = "icloud"
#: `uploads.status` of a file the destination account already holds because it came from there.
IN_LIBRARY = "in_library"


#: The asset id of an iCloud file's source_id (`<asset id>/<kind>`).
_ASSET_ID = "regexp_replace(f.source_id, '/[^/]*$', '')"


@dataclass(frozen=True)
class ReplacementCandidate:
    """A file of this batch taken from iCloud, with its verified upload (if any) to the destination."""

    file_id: int
    source_id: str
    state: str
    original_path: str | None
    output_path: str | None
    remote_id: str | None
    verified_at: datetime | None


class ICloudCatalog:
    def __init__(self, catalog: Catalog, account: str) -> None:
        self.catalog = catalog
        self.account = account

    # -- the source's walk -----------------------------------------------------------------------------------

    def is_known(self, source_id: str) -> bool:
        """Catalogued, and not waiting to be downloaded again after a failure."""
        row = self.catalog.conn.execute(
            "SELECT 1 FROM media_files f WHERE f.source = %s AND f.source_id = %s AND NOT EXISTS"
            " (SELECT 1 FROM icloud_download_retries r WHERE r.source_id = f.source_id) LIMIT 1",
            (ICLOUD_SOURCE, source_id)).fetchone()
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

    def record_walk(self, seen_asset_ids: set[str]) -> None:
        """After a full walk: catalogued assets it did not find were deleted at the source (not by replace-originals
        mode); assets found again (restored from Recently Deleted) are no longer counted so."""
        seen = list(seen_asset_ids)
        with self.catalog.transaction() as cur:
            cur.execute(
                f"INSERT INTO icloud_deleted_at_source (asset_id, account) SELECT DISTINCT {_ASSET_ID}, %s"
                f" FROM media_files f WHERE f.source = %s AND NOT ({_ASSET_ID} = ANY(%s)) AND NOT EXISTS"
                f" (SELECT 1 FROM icloud_replacements r WHERE r.source_asset_id = {_ASSET_ID})"
                " ON CONFLICT (asset_id) DO NOTHING", (self.account, ICLOUD_SOURCE, seen))
            cur.execute("DELETE FROM icloud_deleted_at_source WHERE account = %s AND asset_id = ANY(%s)",
                        (self.account, seen))

    # -- replace-originals -----------------------------------------------------------------------------------

    def replacement_candidates(self, batch_id: str, destination: str) -> list[ReplacementCandidate]:
        """This batch's iCloud files not yet decided on, each with its upload to `destination`."""
        rows = self.catalog.conn.execute(
            "SELECT f.id AS file_id, f.source_id, f.state, f.original_path, f.output_path, u.remote_id,"
            " u.verified_at FROM media_files f"
            " LEFT JOIN uploads u ON u.file_id = f.id AND u.destination = %s AND u.status = 'uploaded'"
            " WHERE f.batch_id = %s AND f.source = %s"
            " AND NOT EXISTS (SELECT 1 FROM icloud_replacements r WHERE r.file_id = f.id)"
            " AND NOT EXISTS (SELECT 1 FROM icloud_kept_originals k WHERE k.file_id = f.id) ORDER BY f.id",
            (destination, batch_id, ICLOUD_SOURCE)).fetchall()
        return [ReplacementCandidate(**row) for row in rows]

    def record_replacement(self, files: list[ReplacementCandidate], source_asset_id: str) -> None:
        """The source asset of `files` was moved to Recently Deleted; both ids, so it can be undone by hand."""
        with self.catalog.transaction() as cur:
            for file in files:
                cur.execute("INSERT INTO icloud_replacements (file_id, source_account, source_asset_id,"
                            " successor_asset_id) VALUES (%s, %s, %s, %s)",
                            (file.file_id, self.account, source_asset_id, file.remote_id))


    def record_kept(self, files: list[ReplacementCandidate], source_asset_id: str, reason: str) -> None:
        """The source asset of `files` stays: its upload would not be the same asset (`reason`)."""
        with self.catalog.transaction() as cur:
            for file in files:
                cur.execute("INSERT INTO icloud_kept_originals (file_id, source_account, source_asset_id, reason)"
                            " VALUES (%s, %s, %s, %s) ON CONFLICT (file_id) DO NOTHING",
                            (file.file_id, self.account, source_asset_id, reason))


@dataclass(frozen=True)
class KeptOriginal:
    """An iCloud original replace-originals mode kept, for the report."""

    original_name: str
    reason: str


def kept_originals(catalog: Catalog, batch_id: str) -> list[KeptOriginal]:
    rows = catalog.conn.execute(
        "SELECT f.original_name, k.reason FROM icloud_kept_originals k JOIN media_files f ON f.id = k.file_id"
        " WHERE f.batch_id = %s ORDER BY f.id", (batch_id,)).fetchall()
    return [KeptOriginal(**row) for row in rows]


def count_in_library(catalog: Catalog, batch_id: str | None = None) -> int:
    """Files recorded as already in iCloud (taken from the upload account's own library), in a batch or all."""
    row = catalog.conn.execute(
        "SELECT count(*) AS n FROM uploads u JOIN media_files f ON f.id = u.file_id"
        " WHERE u.status = %s AND (%s::text IS NULL OR f.batch_id = %s)", (IN_LIBRARY, batch_id, batch_id)
    ).fetchone()
    return int(row["n"]) if row else 0


def count_deleted_at_source(catalog: Catalog) -> int:
    """iCloud assets deleted there after they were taken (their local copies stay)."""
    row = catalog.conn.execute("SELECT count(*) AS n FROM icloud_deleted_at_source").fetchone()
    return int(row["n"]) if row else 0


def uploaded_file_ids(catalog: Catalog, destination: str) -> list[int]:
    """Every file uploaded to `destination` (for `verify --full --sample N` to draw from)."""
    rows = catalog.conn.execute("SELECT file_id FROM uploads WHERE destination = %s AND status = 'uploaded'",
                                (destination,)).fetchall()
    return [int(row["file_id"]) for row in rows]
