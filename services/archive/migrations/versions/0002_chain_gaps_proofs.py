"""The per-camera hash chain, known gaps and deletion proofs.

Revision ID: archive_0002
Revises: archive_0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "archive_0002"
down_revision = "archive_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("archive_segments") as batch:
        batch.add_column(sa.Column("prev_sha256", sa.String(64), nullable=False, server_default=""))
    op.create_table(
        "archive_gaps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("stream", sa.String(8), nullable=False),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(512), nullable=False, server_default=""),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_archive_gaps_camera_start", "archive_gaps", ["camera_id", "stream", "start_us"])
    op.create_table(
        "archive_deletion_proofs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("stream", sa.String(8), nullable=False),
        sa.Column("hour_start_us", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("first_us", sa.BigInteger, nullable=False),
        sa.Column("last_us", sa.BigInteger, nullable=False),
        sa.Column("sha256s", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("swept_us", sa.BigInteger, nullable=False),
        sa.Column("retention_days", sa.Integer, nullable=False),
        sa.UniqueConstraint("camera_id", "stream", "hour_start_us", name="uq_archive_proofs_hour"),
    )


def downgrade() -> None:
    op.drop_table("archive_deletion_proofs")
    op.drop_index("ix_archive_gaps_camera_start", "archive_gaps")
    op.drop_table("archive_gaps")
    with op.batch_alter_table("archive_segments") as batch:
        batch.drop_column("prev_sha256")
