"""Batches: why a failed batch failed (the first failing phase's error, a dead run, a failed check).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE batches ADD COLUMN error text")


def downgrade() -> None:
    op.execute("ALTER TABLE batches DROP COLUMN error")
