"""Sessions opened through the OpenID Connect provider keep its ID token (sealed), so logging out
of the console also ends the session at the provider (RP-initiated logout).

Revision ID: gateway_0006
Revises: gateway_0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0006"
down_revision = "gateway_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("gateway_sessions", sa.Column("oidc_id_token_sealed", sa.String(16384)))


def downgrade() -> None:
    with op.batch_alter_table("gateway_sessions") as batch:
        batch.drop_column("oidc_id_token_sealed")
