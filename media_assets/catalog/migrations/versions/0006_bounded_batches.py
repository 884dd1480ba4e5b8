"""Bounded batches and bounded disk.

- `batches.backlog`: the sources held more new files than the batch took (BATCH_MAX_FILES / BATCH_MAX_GB), so
  the automation starts the next batch as soon as this one finished instead of waiting for the interval.
- `media_files.original_pruned_at` / `output_pruned_at`: when a verified batch's original (KEEP_ORIGINALS) or
  compressed copy was removed on purpose, so `verify --full` tells a pruned copy from a missing one.
- Indexes for the per-file lookups that ran as sequential scans: a source's known versions (every scan), the
  duplicates of a batch (the report), the uploads of a file are already keyed by their primary key.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE batches ADD COLUMN backlog boolean NOT NULL DEFAULT false;
    ALTER TABLE media_files ADD COLUMN original_pruned_at timestamptz;
    ALTER TABLE media_files ADD COLUMN output_pruned_at timestamptz;
    CREATE INDEX duplicate_files_batch ON duplicate_files (batch_id, file_id);
    CREATE INDEX batches_created_at ON batches (created_at);
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX batches_created_at;
    DROP INDEX duplicate_files_batch;
    ALTER TABLE media_files DROP COLUMN output_pruned_at;
    ALTER TABLE media_files DROP COLUMN original_pruned_at;
    ALTER TABLE batches DROP COLUMN backlog;
    """)
