"""Video-wall layouts of the operator console: personal and shared.

Revision ID: gateway_0004
Revises: gateway_0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0004"
down_revision = "gateway_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_console_layouts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("shared", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("grid", sa.Integer, nullable=False),
        sa.Column("tiles", sa.JSON, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("owner", "name", name="uq_gateway_console_layouts_owner_name"),
    )
    op.create_index("ix_gateway_console_layouts_owner", "gateway_console_layouts", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_gateway_console_layouts_owner", "gateway_console_layouts")
    op.drop_table("gateway_console_layouts")
