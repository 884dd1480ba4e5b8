"""The catalog's uploads: one row per file and destination (uploaded, or not accepted with the reason), and
when it was verified at the destination."""

from __future__ import annotations

from collections.abc import Sequence
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
    #: The copy's identity when its bytes were hashed (`storage.copy_identity`, revision 0016): a folder's copies.
    copy_identity: str | None = None


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

    def uploads_by_file(self, file_ids: Sequence[int]) -> dict[int, list[Upload]]:
        """The uploads of several files in one query (a phase's chunk), by file id; [] for a file without any."""
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM uploads WHERE file_id = ANY(%s) ORDER BY file_id,"
                                 " destination", (list(file_ids),)).fetchall()
        found: dict[int, list[Upload]] = {file_id: [] for file_id in file_ids}
        for row in rows:
            found[row["file_id"]].append(Upload(**row))
        return found

    def uploaded_file_ids(self, batch_id: str, destination: str, state: str) -> list[int]:
        """The batch's files in `state` with a copy uploaded to `destination`."""
        rows = self.conn.execute(
            "SELECT u.file_id FROM uploads u JOIN media_files f ON f.id = u.file_id WHERE f.batch_id = %s"
            " AND f.state = %s AND u.destination = %s AND u.status = 'uploaded' ORDER BY u.file_id",
            (batch_id, state, destination)).fetchall()
        return [row["file_id"] for row in rows]

    def record_upload(self, file_id: int, destination: str, *, status: str, remote_id: str | None,
                      checksum: str | None, detail: str | None = None, copy_identity: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO uploads (file_id, destination, status, remote_id, checksum, detail, copy_identity)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (file_id, destination) DO UPDATE SET"
            " status = EXCLUDED.status, remote_id = EXCLUDED.remote_id, checksum = EXCLUDED.checksum,"
            " detail = EXCLUDED.detail, copy_identity = EXCLUDED.copy_identity, uploaded_at = now()",
            (file_id, destination, status, remote_id, checksum, detail, copy_identity))

    def mark_uploads_verified(self, file_ids: Sequence[int]) -> None:
        """Every uploaded copy of these files was found intact at its destination."""
        self.conn.execute("UPDATE uploads SET verified_at = now() WHERE file_id = ANY(%s) AND status = 'uploaded'",
                          (list(file_ids),))

    def batch_uploads(self, batch_id: str) -> list[BatchUpload]:
        """The uploaded (not declined) copies of a batch's files, by file and destination."""
        rows = self.conn.execute(
            "SELECT f.original_name, u.destination, u.verified_at IS NOT NULL AS verified FROM uploads u"
            " JOIN media_files f ON f.id = u.file_id WHERE f.batch_id = %s AND u.status = 'uploaded'"
            " ORDER BY f.id, u.destination", (batch_id,)).fetchall()
        return [BatchUpload(**row) for row in rows]
