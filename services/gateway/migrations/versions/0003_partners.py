"""Federation partners (police nationale).

Revision ID: gateway_0003
Revises: gateway_0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0003"
down_revision = "gateway_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_partners",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("cert_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("cert_subject", sa.String(256), nullable=False),
        sa.Column("cert_expires_us", sa.BigInteger, nullable=False),
        sa.Column("assertion_key_pem", sa.Text, nullable=False),
        sa.Column("camera_groups", sa.JSON, nullable=False),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("ptz_priority", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("revoked_us", sa.BigInteger),
    )


def downgrade() -> None:
    op.drop_table("gateway_partners")
