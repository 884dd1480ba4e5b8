"""iCloud: the source assets replace-originals mode kept because their upload is not the same asset (a Live
Photo, a burst, an edit, a conversion, ...), with the reason, decided once per file and listed in the report;
and the catalogued assets a full walk no longer found in iCloud (deleted at the source; their local copies stay).

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE icloud_kept_originals (
        file_id          bigint PRIMARY KEY REFERENCES media_files(id),
        source_account   text NOT NULL,
        source_asset_id  text NOT NULL,
        reason           text NOT NULL,
        decided_at       timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE icloud_deleted_at_source (
        asset_id    text PRIMARY KEY,
        account     text NOT NULL,
        noticed_at  timestamptz NOT NULL DEFAULT now()
    );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE icloud_deleted_at_source; DROP TABLE icloud_kept_originals")
