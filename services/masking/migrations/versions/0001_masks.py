"""Mask sets (versioned, four-eyes), no-private-area statements, mask-error reports, redaction jobs.

Revision ID: masking_0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "masking_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "masking_mask_sets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("space", sa.String(8), nullable=False),
        sa.Column("polygons_json", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("approver", sa.String(200), nullable=False),
        sa.Column("approved_us", sa.BigInteger, nullable=True),
        sa.Column("superseded_us", sa.BigInteger, nullable=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.UniqueConstraint("camera_id", "version", name="uq_masking_mask_sets_camera_version"),
    )
    op.create_table(
        "masking_statements",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False, index=True),
        sa.Column("supervisor", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("signed_us", sa.BigInteger, nullable=False),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("public_key_pem", sa.Text, nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "masking_error_reports",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False, index=True),
        sa.Column("reporter", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("snapshot_ref", sa.String(500), nullable=False),
        sa.Column("mask_version", sa.String(32), nullable=False),
        sa.Column("reported_us", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("closed_by", sa.String(200), nullable=False),
        sa.Column("closed_us", sa.BigInteger, nullable=True),
        sa.Column("resolution", sa.Text, nullable=False),
    )
    op.create_table(
        "masking_redaction_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False, index=True),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("effect", sa.String(16), nullable=False),
        sa.Column("selection_json", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("frames", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("object_key", sa.String(300), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("request_ref", sa.String(200), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("finished_us", sa.BigInteger, nullable=True),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("worker", sa.String(100), nullable=False),
        sa.Column("heartbeat_us", sa.BigInteger, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("track_json", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("masking_redaction_jobs", "masking_error_reports", "masking_statements", "masking_mask_sets"):
        op.drop_table(table)
