"""Deduplication: perceptual fingerprints and the keys that keep Live Photo, RAW+JPEG and burst files apart.

- `phash`: 64-bit pHash as a signed bigint (NULL for files without pixels we read: RAW, undecodable);
- `similarity`: a small normalised thumbnail signature that confirms a pHash match before two files are
  called near-duplicates (a tight radius alone confuses burst frames and shots of one flat scene);
- `pair_key`: same folder + base name of a still and its companion (Live Photo MOV, RAW beside a JPEG);
- `content_identifier` / `burst_id`: Apple's ContentIdentifier and BurstUUID where present.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE media_files
        ADD COLUMN phash              bigint,
        ADD COLUMN similarity         bytea,
        ADD COLUMN pair_key           text,
        ADD COLUMN content_identifier text,
        ADD COLUMN burst_id           text;
    CREATE INDEX media_files_phash ON media_files (phash) WHERE phash IS NOT NULL;
    CREATE INDEX media_files_size_hash ON media_files (size_bytes, content_hash) WHERE content_hash IS NOT NULL;
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX media_files_size_hash;
    DROP INDEX media_files_phash;
    ALTER TABLE media_files DROP COLUMN phash, DROP COLUMN similarity, DROP COLUMN pair_key,
        DROP COLUMN content_identifier, DROP COLUMN burst_id;
    """)
