"""Capture dates: the winning tag and, for a moment known only in UTC, the time zone it was read in.

- `capture_date_tag`: the tag that gave `captured_at` (`exif_datetimeoriginal`, `xmp_photoshop_datecreated`,
  `filename`, `icloud_asset_date`, `takeout_json`, `file_mtime`, ...), so a wrong date can be traced;
  `capture_date_source` keeps its class (metadata, filename, source, edit_time, file_mtime).
- `capture_time_zone`, `capture_time_zone_source`: the IANA zone a UTC-only moment (an MP4's creation_time, a GPS
  time, a source's date) was turned into local time with, and how it was chosen (`gps` coordinates in the file,
  or the `home_timezone` setting). NULL for a date written as local time.
- `sidecars`: the files that travel with a media file (.AAE, .xmp, a Takeout .json): where the download put
  them and where sorting placed them beside their photo.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE media_files
        ADD COLUMN capture_date_tag          text,
        ADD COLUMN capture_time_zone         text,
        ADD COLUMN capture_time_zone_source  text;
    CREATE TABLE sidecars (
        id             bigserial PRIMARY KEY,
        file_id        bigint NOT NULL REFERENCES media_files(id),
        name           text NOT NULL,
        original_path  text NOT NULL,
        sorted_path    text,
        UNIQUE (file_id, name)
    );
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE sidecars;
    ALTER TABLE media_files
        DROP COLUMN capture_date_tag,
        DROP COLUMN capture_time_zone,
        DROP COLUMN capture_time_zone_source
    """)
