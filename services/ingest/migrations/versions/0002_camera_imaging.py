"""Cameras: what the camera burns in itself (privacy masks, OSD) and the overlay masking burns in.

Revision ID: ingest_0002
Revises: ingest_0001
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "ingest_0002"
down_revision = "ingest_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_cameras") as batch:
        batch.add_column(sa.Column("camera_masks", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("camera_osd", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("osd_overlay", sa.Boolean, nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("osd_position", sa.String(16), nullable=False, server_default="top-left"))


def downgrade() -> None:
    with op.batch_alter_table("ingest_cameras") as batch:
        for column in ("osd_position", "osd_overlay", "camera_osd", "camera_masks"):
            batch.drop_column(column)
