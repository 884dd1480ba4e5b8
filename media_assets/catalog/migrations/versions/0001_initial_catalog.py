"""Initial catalog: batches, media files with their states, state changes, duplicates, phase runs, uploads.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE batches (
        id           text PRIMARY KEY,
        created_at   timestamptz NOT NULL DEFAULT now(),
        status       text NOT NULL DEFAULT 'created'
                     CHECK (status IN ('created', 'running', 'succeeded', 'failed')),
        scanned_at   timestamptz,
        finished_at  timestamptz,
        updated_at   timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE media_files (
        id                         bigserial PRIMARY KEY,
        batch_id                   text NOT NULL REFERENCES batches(id),
        source                     text NOT NULL,
        source_id                  text NOT NULL,
        source_version             text NOT NULL DEFAULT '',
        original_name              text NOT NULL,
        size_bytes                 bigint,
        content_hash               text,
        media_type                 text CHECK (media_type IN ('photo', 'video')),
        media_format               text,
        width                      integer,
        height                     integer,
        captured_at                timestamp,
        capture_utc_offset_minutes integer,
        capture_date_source        text,
        state                      text NOT NULL CHECK (state IN ('discovered', 'downloaded', 'duplicate',
                                   'unique', 'compressed', 'staged', 'uploaded', 'sorted', 'verified',
                                   'quarantined')),
        error                      text,
        original_path              text,
        output_path                text,
        output_size                bigint,
        output_hash                text,
        compression_decision       text,
        staged_path                text,
        sorted_path                text,
        created_at                 timestamptz NOT NULL DEFAULT now(),
        updated_at                 timestamptz NOT NULL DEFAULT now(),
        UNIQUE (source, source_id, source_version),
        CHECK (state <> 'quarantined' OR error IS NOT NULL)
    );
    CREATE INDEX media_files_batch_state ON media_files (batch_id, state, id);
    CREATE INDEX media_files_content_hash ON media_files (content_hash) WHERE content_hash IS NOT NULL;
    CREATE INDEX media_files_state ON media_files (state);

    CREATE TABLE state_changes (
        id          bigserial PRIMARY KEY,
        file_id     bigint NOT NULL REFERENCES media_files(id),
        from_state  text,
        to_state    text NOT NULL,
        detail      text,
        changed_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX state_changes_file ON state_changes (file_id);

    CREATE TABLE duplicate_files (
        id          bigserial PRIMARY KEY,
        file_id     bigint NOT NULL UNIQUE REFERENCES media_files(id),
        keeper_id   bigint NOT NULL REFERENCES media_files(id),
        batch_id    text NOT NULL REFERENCES batches(id),
        kind        text NOT NULL CHECK (kind IN ('exact', 'near')),
        distance    integer NOT NULL DEFAULT 0,
        created_at  timestamptz NOT NULL DEFAULT now(),
        CHECK (file_id <> keeper_id)
    );

    CREATE TABLE phase_runs (
        id              bigserial PRIMARY KEY,
        batch_id        text NOT NULL REFERENCES batches(id),
        phase           text NOT NULL,
        dagster_run_id  text,
        started_at      timestamptz NOT NULL DEFAULT now(),
        finished_at     timestamptz,
        status          text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
        files_processed integer NOT NULL DEFAULT 0,
        files_failed    integer NOT NULL DEFAULT 0,
        bytes_in        bigint NOT NULL DEFAULT 0,
        bytes_out       bigint NOT NULL DEFAULT 0,
        details         jsonb NOT NULL DEFAULT '{}'::jsonb,
        error           text
    );
    CREATE INDEX phase_runs_batch ON phase_runs (batch_id, phase);

    CREATE TABLE uploads (
        id           bigserial PRIMARY KEY,
        file_id      bigint NOT NULL REFERENCES media_files(id),
        destination  text NOT NULL,
        status       text NOT NULL CHECK (status IN ('uploaded', 'not_accepted')),
        remote_id    text,
        checksum     text,
        detail       text,
        uploaded_at  timestamptz NOT NULL DEFAULT now(),
        verified_at  timestamptz,
        UNIQUE (file_id, destination)
    );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE uploads, phase_runs, duplicate_files, state_changes, media_files, batches")
