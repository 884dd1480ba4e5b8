"""Per-file answers: what happened to each file of a batch (the `verification` table), and one file's whole
history (`media-pipeline find`). Files are named by their path at the source, never by base name alone."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from media_assets.catalog.repository import Catalog, source_path

SOURCE_PATH = source_path("f")


@dataclass(frozen=True)
class FileRecord:
    """One file with its decisions: the date and its tag, compression, the file it duplicates, the error, its
    paths and its destinations (`destination status [remote id] [verified]`, joined by '; ')."""

    id: int
    source_path: str
    state: str
    batch_id: str
    captured_at: datetime | None
    capture_date_tag: str | None
    compression_decision: str | None
    size_bytes: int | None
    output_size: int | None
    error: str | None
    original_path: str | None
    output_path: str | None
    staged_path: str | None
    sorted_path: str | None
    duplicate_kind: str | None
    keeper_path: str | None
    destinations: str | None

    @property
    def bytes_saved(self) -> int | None:
        """What compression saved; None when there is no compressed copy."""
        return None if self.output_size is None else (self.size_bytes or 0) - self.output_size


@dataclass(frozen=True)
class StateChange:
    """One move of a file, as `state_changes` recorded it."""

    from_state: str | None
    to_state: str
    detail: str | None
    changed_at: datetime


_FILE_ROWS = (
    f"SELECT f.id, {SOURCE_PATH} AS source_path, f.state, f.batch_id, f.captured_at, f.capture_date_tag,"
    " f.compression_decision, f.size_bytes, f.output_size, f.error, f.original_path, f.output_path,"
    " f.staged_path, f.sorted_path, d.kind AS duplicate_kind, "
    f"{source_path('k')} AS keeper_path,"
    " (SELECT string_agg(u.destination || ' ' || u.status || coalesce(' ' || u.remote_id, '')"
    "  || CASE WHEN u.verified_at IS NULL THEN '' ELSE ' verified' END, '; ' ORDER BY u.destination)"
    "  FROM uploads u WHERE u.file_id = f.id) AS destinations"
    " FROM media_files f LEFT JOIN duplicate_files d ON d.file_id = f.id"
    " LEFT JOIN media_files k ON k.id = d.keeper_id")


def _records(rows: list[dict[str, Any]]) -> list[FileRecord]:
    return [FileRecord(**{f.name: row[f.name] for f in fields(FileRecord)}) for row in rows]


def batch_files(catalog: Catalog, batch_id: str, limit: int) -> list[FileRecord]:
    """The batch's files, first `limit` by id, with their decisions."""
    return _records(catalog.conn.execute(_FILE_ROWS + " WHERE f.batch_id = %s ORDER BY f.id LIMIT %s",
                                         (batch_id, limit)).fetchall())


def matching_files(catalog: Catalog, pattern: str, limit: int) -> list[FileRecord]:
    """Files whose name or source path contains `pattern` (case-insensitive), newest first."""
    like = f"%{pattern}%"
    return _records(catalog.conn.execute(_FILE_ROWS + f" WHERE f.original_name ILIKE %s OR {SOURCE_PATH} ILIKE %s"
                                         " ORDER BY f.id DESC LIMIT %s", (like, like, limit)).fetchall())


def state_history(catalog: Catalog, file_id: int) -> list[StateChange]:
    """Every state change of one file, oldest first."""
    rows = catalog.conn.execute("SELECT from_state, to_state, detail, changed_at FROM state_changes"
                                " WHERE file_id = %s ORDER BY changed_at, id", (file_id,)).fetchall()
    return [StateChange(**row) for row in rows]
