"""iCloud Photos: sync bookkeeping, downloads to retry, and replaced originals.

- `icloud_sync`: per account, when the last full reconciliation walked the whole library (the incremental walk
  stops after ICLOUD_STOP_AFTER_KNOWN known assets in a row).
- `icloud_download_retries`: files whose download failed after every retry; the next scan offers them again as
  a new version, so a failure costs one file of one batch, never the asset.
- `icloud_replacements`: in replace-originals mode, the source asset moved to Recently Deleted after its
  uploaded successor was verified; both ids, so the move can be undone by hand within 30 days.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE icloud_sync (
        account            text PRIMARY KEY,
        last_full_scan_at  timestamptz
    );
    CREATE TABLE icloud_download_retries (
        source_id   text PRIMARY KEY,
        attempts    integer NOT NULL,
        reason      text NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE icloud_replacements (
        file_id             bigint PRIMARY KEY REFERENCES media_files(id),
        source_account      text NOT NULL,
        source_asset_id     text NOT NULL,
        successor_asset_id  text NOT NULL,
        deleted_at          timestamptz NOT NULL DEFAULT now()
    );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE icloud_replacements; DROP TABLE icloud_download_retries; DROP TABLE icloud_sync")
