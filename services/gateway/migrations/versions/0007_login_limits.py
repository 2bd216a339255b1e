"""Login limits: attempts counted before the password is checked, TOTP time steps never reused,
single-use passwords after an admin's reset, and refused logins per client address.

Revision ID: gateway_0007
Revises: gateway_0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0007"
down_revision = "gateway_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_users") as batch:
        batch.add_column(sa.Column("failures_since_login", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger))
        batch.add_column(sa.Column("must_change_password", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "gateway_login_throttle",
        sa.Column("address", sa.String(64), primary_key=True),
        sa.Column("window_start_us", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("gateway_login_throttle")
    with op.batch_alter_table("gateway_users") as batch:
        batch.drop_column("must_change_password")
        batch.drop_column("totp_last_step")
        batch.drop_column("failures_since_login")
