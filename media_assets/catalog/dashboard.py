"""Read-only queries behind the dashboard: the library's numbers grouped by month, for `library_stats`."""

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
