"""Integrity checks: every `verify --full` / `--repair` (by hand or the weekly scrub) with its counts, so
`status` can say when the library was last checked and what it found.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE integrity_checks (
        id           bigserial PRIMARY KEY,
        started_at   timestamptz NOT NULL,
        finished_at  timestamptz NOT NULL DEFAULT now(),
        started_by   text NOT NULL CHECK (started_by IN ('cli', 'schedule', 'ui')),
        repair       boolean NOT NULL DEFAULT false,
        ok           boolean NOT NULL,
        counts       jsonb NOT NULL,
        repaired     integer NOT NULL DEFAULT 0,
        problems     text
    )""")


def downgrade() -> None:
    op.execute("DROP TABLE integrity_checks")
