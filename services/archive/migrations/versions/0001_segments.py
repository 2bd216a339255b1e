"""The recordings index.

Revision ID: archive_0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "archive_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_segments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("stream", sa.String(8), nullable=False),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger, nullable=False),
        sa.Column("object_key", sa.String(512), nullable=False, unique=True),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("frames", sa.Integer, nullable=False),
        sa.Column("mask_version", sa.String(64), nullable=False),
        sa.Column("fully_masked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_archive_segments_camera_start", "archive_segments", ["camera_id", "stream", "start_us"])


def downgrade() -> None:
    op.drop_index("ix_archive_segments_camera_start", "archive_segments")
    op.drop_table("archive_segments")
