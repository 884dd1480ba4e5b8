"""Per-file answers: what happened to each file of a batch (the `verification` table), and one file's whole
history (`media-pipeline find`). Files are named by their path at the source, never by base name alone."""

from __future__ import annotations

from typing import Any

from media_assets.catalog.repository import Catalog, source_path

SOURCE_PATH = source_path("f")

_FILE_ROWS = (
    f"SELECT f.id, {SOURCE_PATH} AS source_path, f.state, f.batch_id, f.captured_at, f.capture_date_tag,"
    " f.compression_decision, f.size_bytes, f.output_size, f.error, f.original_path, f.output_path,"
    " f.staged_path, f.sorted_path, f.content_hash, d.kind AS duplicate_kind, "
    f"{source_path('k')} AS keeper_path,"
    " (SELECT string_agg(u.destination || ' ' || u.status || coalesce(' ' || u.remote_id, '')"
    "  || CASE WHEN u.verified_at IS NULL THEN '' ELSE ' verified' END, '; ' ORDER BY u.destination)"
    "  FROM uploads u WHERE u.file_id = f.id) AS destinations"
    " FROM media_files f LEFT JOIN duplicate_files d ON d.file_id = f.id"
    " LEFT JOIN media_files k ON k.id = d.keeper_id")


def batch_files(catalog: Catalog, batch_id: str, limit: int) -> list[dict[str, Any]]:
    """The batch's files, first `limit` by id, with their decisions (see _FILE_ROWS)."""
    return catalog.conn.execute(_FILE_ROWS + " WHERE f.batch_id = %s ORDER BY f.id LIMIT %s",
                                (batch_id, limit)).fetchall()


def matching_files(catalog: Catalog, pattern: str, limit: int) -> list[dict[str, Any]]:
    """Files whose name or source path contains `pattern` (case-insensitive), newest first."""
    like = f"%{pattern}%"
    return catalog.conn.execute(_FILE_ROWS + f" WHERE f.original_name ILIKE %s OR {SOURCE_PATH} ILIKE %s"
                                " ORDER BY f.id DESC LIMIT %s", (like, like, limit)).fetchall()


def state_history(catalog: Catalog, file_id: int) -> list[dict[str, Any]]:
    """Every state change of one file, oldest first."""
    return catalog.conn.execute("SELECT from_state, to_state, detail, changed_at FROM state_changes"
                                " WHERE file_id = %s ORDER BY changed_at, id", (file_id,)).fetchall()
