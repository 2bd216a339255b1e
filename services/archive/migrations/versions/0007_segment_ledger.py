"""The segment ledger (services/archive/ledger.py): every segment row as indexed, in one hash chain
with signed checkpoints at a fixed cadence, anchored outside the database; and an index on when
segment rows were written, by which the ledger finds the new ones.

Revision ID: archive_0007
Revises: archive_0005 (re-pointed to archive_0006 when merged after it)
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "archive_0007"
down_revision = "archive_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_archive_segments_created", "archive_segments", ["created_us"])
    op.create_table(
        "archive_ledger",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("segment_id", sa.String(32), nullable=False, unique=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("stream", sa.String(8), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("object_key", sa.String(512), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("prev_sha256", sa.String(64), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("mask_version", sa.String(64), nullable=False),
        sa.Column("fully_masked", sa.Boolean(), nullable=False),
        sa.Column("recorded_us", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_archive_ledger_camera", "archive_ledger", ["camera_id", "stream", "start_us"])
    op.create_table(
        "archive_ledger_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("watermark_us", sa.BigInteger(), nullable=False),
        sa.Column("purged_through", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO archive_ledger_head (id, seq, entry_hash, watermark_us, purged_through) "
               f"VALUES (1, 0, '{'0' * 64}', 0, 0)")  # fmt: skip
    op.create_table(
        "archive_ledger_checkpoints",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("signed_us", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("key_fingerprint", sa.String(64), nullable=False),
        sa.Column("every_entries", sa.Integer(), nullable=False),
        sa.Column("every_s", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("archive_ledger_checkpoints")
    op.drop_table("archive_ledger_head")
    op.drop_index("ix_archive_ledger_camera", "archive_ledger")
    op.drop_table("archive_ledger")
    op.drop_index("ix_archive_segments_created", "archive_segments")
