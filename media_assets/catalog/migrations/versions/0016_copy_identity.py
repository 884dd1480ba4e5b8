"""The identity of each copy the pipeline wrote ('st_ino:st_size:st_mtime_ns', taken when its bytes were hashed
as they were written): the kept copy's on `media_files`, each folder destination's on its `uploads` row. A rename
keeps it, any later write changes it, so verification proves an untouched copy by a stat and re-hashes only a
sample (and every copy whose identity changed). NULL: written before this revision, or a destination that
cannot stat its copies (iCloud); such copies are re-hashed as before. Not mirrored: it means nothing off this
machine.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE media_files ADD COLUMN kept_identity text;
    ALTER TABLE uploads ADD COLUMN copy_identity text;
    """)


def downgrade() -> None:
    op.execute("""
    ALTER TABLE uploads DROP COLUMN copy_identity;
    ALTER TABLE media_files DROP COLUMN kept_identity;
    """)
