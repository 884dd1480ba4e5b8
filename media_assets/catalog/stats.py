"""The catalog in numbers: the whole library for the dashboard, one batch for its report, and the compression
results behind the quality plots. Read-only."""

from __future__ import annotations

from dataclasses import dataclass

from media_assets.catalog.connection import CatalogConnection


@dataclass(frozen=True)
class ByteTotals:
    """Bytes of files compression looked at, before and after, and of duplicates not stored twice."""

    files: int
    bytes_before_compression: int
    bytes_after_compression: int
    duplicate_bytes: int


@dataclass(frozen=True)
class CompressionResult:
    """One file's compression outcome; `changed` when another file (the compressed output) flows on."""

    size_bytes: int | None
    output_size: int | None
    quality_score: float | None
    changed: bool


class StatsQueries(CatalogConnection):
    def batches_by_status(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, count(*) AS n FROM batches GROUP BY status").fetchall()
        return {row["status"]: int(row["n"]) for row in rows}

    def duplicates_by_kind(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT kind, count(*) AS n FROM duplicate_files GROUP BY kind").fetchall()
        return {row["kind"]: int(row["n"]) for row in rows}

    def byte_totals(self, batch_id: str | None = None) -> ByteTotals:
        """The totals of one batch, or of the whole library."""
        totals = ("SELECT count(*) AS files,"
                  " coalesce(sum(size_bytes) FILTER (WHERE output_size IS NOT NULL), 0) AS bytes_before_compression,"
                  " coalesce(sum(output_size), 0) AS bytes_after_compression,"
                  " coalesce(sum(size_bytes) FILTER (WHERE state = 'duplicate'), 0) AS duplicate_bytes"
                  " FROM media_files")
        if batch_id is None:
            row = self.conn.execute(totals).fetchone()
        else:
            row = self.conn.execute(totals + " WHERE batch_id = %s", (batch_id,)).fetchone()
        assert row is not None  # an aggregate always returns one row
        return ByteTotals(**{name: int(value) for name, value in row.items()})

    def compression_results(self, batch_id: str) -> list[CompressionResult]:
        rows = self.conn.execute(
            "SELECT size_bytes, output_size, quality_score, coalesce(output_path <> original_path, false) AS changed"
            " FROM media_files WHERE batch_id = %s AND compression_decision IS NOT NULL", (batch_id,)).fetchall()
        return [CompressionResult(**row) for row in rows]

    def storage_bytes(self) -> dict[str, int]:
        """Bytes of every copy the catalog says is on disk, by storage folder (one pass over the files, so
        `status` answers in well under a second on 100,000 files, where walking the folders takes seconds)."""
        rows = self.conn.execute(
            "SELECT split_part(copy.path, '/', 1) AS folder, sum(copy.bytes)::bigint AS bytes FROM media_files f"
            " CROSS JOIN LATERAL (VALUES"
            " (CASE WHEN f.original_pruned_at IS NULL THEN f.original_path END, f.size_bytes),"
            " (CASE WHEN f.output_pruned_at IS NULL AND f.output_path <> f.original_path THEN f.output_path END,"
            "  f.output_size),"
            " (CASE WHEN f.state IN ('staged', 'uploaded') THEN f.staged_path END, f.output_size),"
            " (f.sorted_path, f.output_size)) AS copy(path, bytes)"
            " WHERE copy.path IS NOT NULL GROUP BY 1").fetchall()
        return {row["folder"]: int(row["bytes"] or 0) for row in rows}
