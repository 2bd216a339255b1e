"""Holds: footage frozen for citizens' access requests (never past the legal 30 days).

Revision ID: archive_0004
Revises: archive_0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "archive_0004"
down_revision = "archive_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_holds",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger, nullable=False),
        sa.Column("until_us", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("actor", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("released_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_archive_holds_camera", "archive_holds", ["camera_id", "start_us"])


def downgrade() -> None:
    op.drop_index("ix_archive_holds_camera", table_name="archive_holds")
    op.drop_table("archive_holds")
