"""Sidecars: the SHA-256 of each sidecar's bytes, so `verify --full` checks them like the photos they travel with
(and does not count them as strays).

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE sidecars ADD COLUMN content_hash text")


def downgrade() -> None:
    op.execute("ALTER TABLE sidecars DROP COLUMN content_hash")
