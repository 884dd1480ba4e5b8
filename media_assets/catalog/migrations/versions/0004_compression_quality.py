"""Compression: the quality score (SSIM of the compressed output against the original) of every file.

NULL when the original flows on unchanged or no score applies (videos); 1.0 for lossless rewrites.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE media_files ADD COLUMN quality_score double precision")


def downgrade() -> None:
    op.execute("ALTER TABLE media_files DROP COLUMN quality_score")
