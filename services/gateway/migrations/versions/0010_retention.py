"""Every personal datum has a retention period (services/gateway/operations/retention.py): the
periods the data protection officer chose, and when a visitor's identity or a journal entry's text
was erased at the end of its retention.

Revision ID: gateway_0010
Revises: gateway_0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0010"
down_revision = "gateway_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_retention_periods",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("set_by", sa.String(160), nullable=False),
        sa.Column("set_us", sa.BigInteger(), nullable=False),
    )
    op.add_column("gateway_visitors", sa.Column("erased_us", sa.BigInteger(), nullable=True))
    op.add_column("gateway_journal", sa.Column("erased_us", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateway_journal") as batch:
        batch.drop_column("erased_us")
    with op.batch_alter_table("gateway_visitors") as batch:
        batch.drop_column("erased_us")
    op.drop_table("gateway_retention_periods")
