"""Change tracking for the Supabase mirror: an outbox filled by triggers, and the mirror's failure counter.

- `mirror_outbox`: one row per changed catalog row (table + key), coalesced: a file that moves through eight
  states leaves one entry, whose `version` grows with every change while `changed_at` keeps the oldest unsynced
  change (the mirror's lag). The sync removes an entry only when Supabase confirmed that row and the version is
  still the one it sent, so a change made during a sync is sent again and a failed or killed sync loses nothing.
- Statement-level triggers with transition tables (one INSERT into the outbox per statement, not per row) on
  every mirrored table, deletes included. TRUNCATE is not tracked: the catalog never truncates.
- Rows already in the catalog are queued, so the first sync after this revision is a full mirror.
- `mirror_state`: one row with the count of consecutive failed sync cycles, for alerts.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MIRRORED_TABLES = ("batches", "media_files", "duplicate_files", "phase_runs", "uploads")


def upgrade() -> None:
    op.execute("""
    CREATE SEQUENCE mirror_outbox_version;
    CREATE TABLE mirror_outbox (
        table_name  text NOT NULL,
        row_key     text NOT NULL,
        op          text NOT NULL CHECK (op IN ('upsert', 'delete')),
        version     bigint NOT NULL DEFAULT nextval('mirror_outbox_version'),
        changed_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (table_name, row_key)
    );

    CREATE TABLE mirror_state (
        singleton             boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        consecutive_failures  integer NOT NULL DEFAULT 0,
        last_success_at       timestamptz,
        last_failure_at       timestamptz,
        last_error            text
    );
    INSERT INTO mirror_state DEFAULT VALUES;

    CREATE FUNCTION mirror_track_changes() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            INSERT INTO mirror_outbox (table_name, row_key, op)
            SELECT TG_TABLE_NAME, o.id::text, 'delete' FROM old_rows o
            ON CONFLICT (table_name, row_key) DO UPDATE SET op = EXCLUDED.op, version = EXCLUDED.version;
        ELSE
            INSERT INTO mirror_outbox (table_name, row_key, op)
            SELECT TG_TABLE_NAME, n.id::text, 'upsert' FROM new_rows n
            ON CONFLICT (table_name, row_key) DO UPDATE SET op = EXCLUDED.op, version = EXCLUDED.version;
        END IF;
        RETURN NULL;
    END $$;
    """)
    for table in MIRRORED_TABLES:
        op.execute(f"""
        CREATE TRIGGER mirror_inserted AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION mirror_track_changes();
        CREATE TRIGGER mirror_updated AFTER UPDATE ON {table} REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION mirror_track_changes();
        CREATE TRIGGER mirror_deleted AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION mirror_track_changes();
        INSERT INTO mirror_outbox (table_name, row_key, op) SELECT '{table}', id::text, 'upsert' FROM {table};
        """)


def downgrade() -> None:
    for table in MIRRORED_TABLES:
        op.execute(f"""
        DROP TRIGGER mirror_inserted ON {table};
        DROP TRIGGER mirror_updated ON {table};
        DROP TRIGGER mirror_deleted ON {table};
        """)
    op.execute("""
    DROP FUNCTION mirror_track_changes();
    DROP TABLE mirror_state, mirror_outbox;
    DROP SEQUENCE mirror_outbox_version;
    """)
