"""Audit checkpoints carry, signed, the cadence they were made under (services/common/anchoring.py):
every N entries and M minutes after the previous one, so verification knows where they must be.
Checkpoints signed before this migration keep 0, 0: they signed "seq:hash" only.

Revision ID: gateway_0008
Revises: gateway_0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0008"
down_revision = "gateway_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "gateway_audit_checkpoints", sa.Column("every_entries", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("gateway_audit_checkpoints", sa.Column("every_s", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("gateway_audit_checkpoints") as batch:
        batch.drop_column("every_s")
        batch.drop_column("every_entries")
