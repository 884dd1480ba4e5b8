"""Which catalog tables and columns are mirrored. Metadata only: no file bytes, no settings, no secrets.
The same tables and columns are created on the Supabase side by supabase/migrations/*.sql. Parents come before
their children: upserts go in this order (the remote has foreign keys), and deleting a parent cascades."""

from __future__ import annotations

from media_assets.catalog.mirror import MirroredTable

MIRRORED_TABLES: tuple[MirroredTable, ...] = (
    MirroredTable("batches", "text", ("id", "created_at", "status", "scanned_at", "finished_at", "updated_at",
                                      "backlog", "error")),
    MirroredTable("media_files", "bigint", (
        "id", "batch_id", "source", "source_id", "source_version", "original_name", "size_bytes", "content_hash",
        "media_type", "media_format", "width", "height", "captured_at", "capture_utc_offset_minutes",
        "capture_date_source", "state", "error", "original_path", "output_path", "output_size", "output_hash",
        "compression_decision", "staged_path", "sorted_path", "created_at", "updated_at",
        "phash", "pair_key", "content_identifier", "burst_id", "quality_score", "original_pruned_at",
        "output_pruned_at", "capture_date_tag", "capture_time_zone", "capture_time_zone_source")),
    MirroredTable("duplicate_files", "bigint", ("id", "file_id", "keeper_id", "batch_id", "kind", "distance",
                                                "created_at")),
    MirroredTable("phase_runs", "bigint", (
        "id", "batch_id", "phase", "dagster_run_id", "started_at", "finished_at", "status", "files_processed",
        "files_failed", "bytes_in", "bytes_out", "details", "error")),
    MirroredTable("uploads", "bigint", ("id", "file_id", "destination", "status", "remote_id", "checksum", "detail",
                                        "uploaded_at", "verified_at")),
    MirroredTable("sidecars", "bigint", ("id", "file_id", "name", "original_path", "sorted_path", "content_hash")),
)
