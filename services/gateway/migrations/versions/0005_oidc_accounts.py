"""Accounts that log in through the city's OpenID Connect provider: their kind and their link.

Also joins the parallel branches 0002 (operations), 0003 (partners) and 0004 (console layouts)
back into one head.

Revision ID: gateway_0005
Revises: gateway_0002, gateway_0003, gateway_0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0005"
down_revision = ("gateway_0002", "gateway_0003", "gateway_0004")
branch_labels = None
depends_on = None


def upgrade() -> None:
    # server_default: every existing account is a local one (password and TOTP kept here).
    op.add_column("gateway_users", sa.Column("kind", sa.String(16), nullable=False, server_default="local"))
    op.add_column("gateway_users", sa.Column("oidc_issuer", sa.String(255)))
    op.add_column("gateway_users", sa.Column("oidc_subject", sa.String(255)))
    # A unique index rather than a constraint: SQLite cannot add constraints to a table in place.
    op.create_index("ux_gateway_users_oidc", "gateway_users", ["oidc_issuer", "oidc_subject"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_gateway_users_oidc", "gateway_users")
    with op.batch_alter_table("gateway_users") as batch:
        batch.drop_column("oidc_subject")
        batch.drop_column("oidc_issuer")
        batch.drop_column("kind")
