"""The catalog's uploads: one row per file and destination (uploaded, or not accepted with the reason), and
when it was verified at the destination."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from media_assets.catalog.connection import CatalogConnection


@dataclass(frozen=True)
class Upload:
    """One row of `uploads`."""

    file_id: int
    destination: str
    status: str
    remote_id: str | None
    checksum: str | None
    detail: str | None
    uploaded_at: datetime
    verified_at: datetime | None


@dataclass(frozen=True)
class BatchUpload:
    """An upload of one of a batch's files, named for people."""

    original_name: str
    destination: str
    verified: bool


_COLUMNS = ", ".join(f.name for f in fields(Upload))


class UploadQueries(CatalogConnection):
    def upload_for(self, file_id: int, destination: str) -> Upload | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM uploads WHERE file_id = %s AND destination = %s",
                                (file_id, destination)).fetchone()
        return Upload(**row) if row else None

    def uploads_of(self, file_id: int) -> list[Upload]:
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM uploads WHERE file_id = %s ORDER BY destination",
                                 (file_id,)).fetchall()
        return [Upload(**row) for row in rows]

    def record_upload(self, file_id: int, destination: str, *, status: str, remote_id: str | None,
                      checksum: str | None, detail: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO uploads (file_id, destination, status, remote_id, checksum, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (file_id, destination) DO UPDATE SET"
            " status = EXCLUDED.status, remote_id = EXCLUDED.remote_id, checksum = EXCLUDED.checksum,"
            " detail = EXCLUDED.detail, uploaded_at = now()",
            (file_id, destination, status, remote_id, checksum, detail))

    def mark_upload_verified(self, file_id: int, destination: str) -> None:
        self.conn.execute("UPDATE uploads SET verified_at = now() WHERE file_id = %s AND destination = %s",
                          (file_id, destination))

    def batch_uploads(self, batch_id: str) -> list[BatchUpload]:
        """The uploaded (not declined) copies of a batch's files, by file and destination."""
        rows = self.conn.execute(
            "SELECT f.original_name, u.destination, u.verified_at IS NOT NULL AS verified FROM uploads u"
            " JOIN media_files f ON f.id = u.file_id WHERE f.batch_id = %s AND u.status = 'uploaded'"
            " ORDER BY f.id, u.destination", (batch_id,)).fetchall()
        return [BatchUpload(**row) for row in rows]
