"""Files quarantined because their source could not be reached (an unmounted share mid-batch, iCloud down) are
not at fault: `source_unreachable` marks them, the next batch offers them again, and the new row closes the old
one as `superseded` (so `status` no longer counts it as quarantined). A re-offered file has the same source
version as its closed row, so the uniqueness of (source, source_id, source_version) holds for open rows only.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

#: Reasons earlier revisions recorded when the source, not the file, was the problem (before the column existed).
_UNREACHABLE_REASONS = ("error LIKE 'iCloud download failed after %' OR error LIKE 'its source ''%'' is no longer"
                        " enabled' OR error IN ('cannot read file: No such file or directory', 'cannot read file:"
                        " Input/output error', 'cannot read file: Transport endpoint is not connected', 'cannot"
                        " read file: Stale file handle', 'cannot read file: Host is down', 'cannot read file: No"
                        " route to host', 'cannot read file: Connection timed out', 'cannot read file: No such"
                        " device')")


def upgrade() -> None:
    op.execute(f"""
    ALTER TABLE media_files ADD COLUMN source_unreachable boolean NOT NULL DEFAULT false;
    UPDATE media_files SET source_unreachable = true WHERE state = 'quarantined' AND ({_UNREACHABLE_REASONS});
    ALTER TABLE media_files DROP CONSTRAINT media_files_state_check;
    ALTER TABLE media_files ADD CONSTRAINT media_files_state_check CHECK (state IN ('discovered', 'downloaded',
        'duplicate', 'unique', 'compressed', 'staged', 'uploaded', 'sorted', 'verified', 'quarantined',
        'superseded'));
    ALTER TABLE media_files DROP CONSTRAINT media_files_source_source_id_source_version_key;
    CREATE UNIQUE INDEX media_files_open_version ON media_files (source, source_id, source_version)
        WHERE state <> 'superseded';
    CREATE INDEX media_files_source_item ON media_files (source, source_id);
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX media_files_source_item;
    DROP INDEX media_files_open_version;
    DELETE FROM state_changes WHERE file_id IN (SELECT id FROM media_files WHERE state = 'superseded');
    DELETE FROM media_files WHERE state = 'superseded';
    ALTER TABLE media_files ADD CONSTRAINT media_files_source_source_id_source_version_key
        UNIQUE (source, source_id, source_version);
    ALTER TABLE media_files DROP CONSTRAINT media_files_state_check;
    ALTER TABLE media_files ADD CONSTRAINT media_files_state_check CHECK (state IN ('discovered', 'downloaded',
        'duplicate', 'unique', 'compressed', 'staged', 'uploaded', 'sorted', 'verified', 'quarantined'));
    ALTER TABLE media_files DROP COLUMN source_unreachable;
    """)
