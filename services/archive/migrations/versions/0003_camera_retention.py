"""Last known retention per camera.

Revision ID: archive_0003
Revises: archive_0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "archive_0003"
down_revision = "archive_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_camera_retention",
        sa.Column("camera_id", sa.String(64), primary_key=True),
        sa.Column("days", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("archive_camera_retention")
