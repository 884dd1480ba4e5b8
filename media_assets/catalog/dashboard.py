"""Read-only queries behind the dashboard: the library's numbers by month (`library_stats`), and per batch and
per destination (`media-pipeline status`)."""

from __future__ import annotations

from dataclasses import dataclass

from media_assets.catalog.repository import Catalog

#: How files are grouped: by the month they were taken in (local capture time) or the month their batch ran.
MONTH_OF = {
    "capture": "coalesce(to_char(f.captured_at, 'YYYY-MM'), 'unknown')",
    "batch": "to_char(b.created_at, 'YYYY-MM')",
}


@dataclass(frozen=True)
class MonthTotals:
    """One month's files: how many, bytes before and saved by compression, duplicates and quarantined."""

    month: str
    files: int
    bytes_in: int
    bytes_saved: int
    duplicates: int
    quarantined: int


def totals_by_month(catalog: Catalog, by: str) -> list[MonthTotals]:
    """Every month's totals, oldest first; `by` is 'capture' or 'batch' (see MONTH_OF)."""
    month = MONTH_OF[by]
    rows = catalog.conn.execute(
        f"SELECT {month} AS month, count(*) AS files, coalesce(sum(f.size_bytes), 0) AS bytes_in,"
        " coalesce(sum(f.size_bytes - f.output_size) FILTER (WHERE f.output_size IS NOT NULL), 0) AS bytes_saved,"
        " count(*) FILTER (WHERE f.state = 'duplicate') AS duplicates,"
        " count(*) FILTER (WHERE f.state = 'quarantined') AS quarantined"
        " FROM media_files f JOIN batches b ON b.id = f.batch_id GROUP BY 1 ORDER BY 1").fetchall()
    return [MonthTotals(month=row["month"], files=int(row["files"]), bytes_in=int(row["bytes_in"]),
                        bytes_saved=int(row["bytes_saved"]), duplicates=int(row["duplicates"]),
                        quarantined=int(row["quarantined"])) for row in rows]


@dataclass(frozen=True)
class BatchSummary:
    """One batch for `status`: its files, duplicates, quarantined and bytes saved by compression."""

    id: str
    status: str
    files: int
    duplicates: int
    quarantined: int
    bytes_saved: int


def batch_summaries(catalog: Catalog, limit: int) -> list[BatchSummary]:
    """The newest `limit` batches, newest first."""
    rows = catalog.conn.execute(
        "SELECT b.id, b.status, count(f.id) AS files,"
        " count(f.id) FILTER (WHERE f.state = 'duplicate') AS duplicates,"
        " count(f.id) FILTER (WHERE f.state = 'quarantined') AS quarantined,"
        " coalesce(sum(f.size_bytes - f.output_size) FILTER (WHERE f.output_size IS NOT NULL), 0) AS bytes_saved"
        " FROM batches b LEFT JOIN media_files f ON f.batch_id = b.id"
        " GROUP BY b.id ORDER BY b.created_at DESC, b.id DESC LIMIT %s", (limit,)).fetchall()
    return [BatchSummary(id=row["id"], status=row["status"], files=int(row["files"]),
                         duplicates=int(row["duplicates"]), quarantined=int(row["quarantined"]),
                         bytes_saved=int(row["bytes_saved"])) for row in rows]


def bytes_at_destinations(catalog: Catalog) -> dict[str, int]:
    """Bytes each destination holds as catalogued (uploads of kept files; no folder walk)."""
    rows = catalog.conn.execute(
        "SELECT u.destination, coalesce(sum(coalesce(f.output_size, f.size_bytes)), 0) AS bytes FROM uploads u"
        " JOIN media_files f ON f.id = u.file_id WHERE u.status = 'uploaded' GROUP BY u.destination").fetchall()
    return {row["destination"]: int(row["bytes"]) for row in rows}


def remote_ids_at(catalog: Catalog, destination: str) -> set[str]:
    """The ids of every copy the pipeline sent to `destination` (what `verify --full` expects to find there)."""
    rows = catalog.conn.execute("SELECT remote_id FROM uploads WHERE destination = %s AND status = 'uploaded'"
                                " AND remote_id IS NOT NULL", (destination,)).fetchall()
    return {row["remote_id"] for row in rows}
