"""The Supabase mirror tracks `sidecars` like the other mirrored tables (the triggers of revision 0003), and queues
the sidecars already catalogued, so the next pass sends them.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TRIGGER mirror_inserted AFTER INSERT ON sidecars REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION mirror_track_changes();
    CREATE TRIGGER mirror_updated AFTER UPDATE ON sidecars REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION mirror_track_changes();
    CREATE TRIGGER mirror_deleted AFTER DELETE ON sidecars REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION mirror_track_changes();
    INSERT INTO mirror_outbox (table_name, row_key, op) SELECT 'sidecars', id::text, 'upsert' FROM sidecars;
    """)


def downgrade() -> None:
    op.execute("""
    DROP TRIGGER mirror_inserted ON sidecars;
    DROP TRIGGER mirror_updated ON sidecars;
    DROP TRIGGER mirror_deleted ON sidecars;
    DELETE FROM mirror_outbox WHERE table_name = 'sidecars';
    """)
