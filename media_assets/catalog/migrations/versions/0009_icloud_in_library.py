"""iCloud: a file taken from the upload account's own library is recorded as already there (`in_library`)
instead of being uploaded back beside its original.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE uploads DROP CONSTRAINT uploads_status_check;
    ALTER TABLE uploads ADD CONSTRAINT uploads_status_check
        CHECK (status IN ('uploaded', 'not_accepted', 'in_library'));
    """)


def downgrade() -> None:
    op.execute("""
    DELETE FROM uploads WHERE status = 'in_library';
    ALTER TABLE uploads DROP CONSTRAINT uploads_status_check;
    ALTER TABLE uploads ADD CONSTRAINT uploads_status_check CHECK (status IN ('uploaded', 'not_accepted'));
    """)
