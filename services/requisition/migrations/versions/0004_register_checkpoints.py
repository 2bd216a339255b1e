"""The register's signed checkpoints at a fixed cadence (services/common/anchoring.py): with the
heads published outside the database, a register cut short or rewritten by someone holding the
signing key is found.

Revision ID: requisition_0004
Revises: requisition_0002 (re-pointed to requisition_0003 when merged after it)
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "requisition_0004"
down_revision = "requisition_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requisition_register_checkpoints",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("signed_us", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("key_fingerprint", sa.String(64), nullable=False),
        sa.Column("every_entries", sa.Integer(), nullable=False),
        sa.Column("every_s", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("requisition_register_checkpoints")
