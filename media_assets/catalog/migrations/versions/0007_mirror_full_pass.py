"""The Supabase mirror's reconciliation: when the last full pass (compare every table with the remote) succeeded.

Set to now() for an existing catalog, so the first automatic full pass comes a day after the upgrade; run
`media-pipeline mirror --full` to reconcile at once.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE mirror_state ADD COLUMN last_full_at timestamptz DEFAULT now()")


def downgrade() -> None:
    op.execute("ALTER TABLE mirror_state DROP COLUMN last_full_at")
