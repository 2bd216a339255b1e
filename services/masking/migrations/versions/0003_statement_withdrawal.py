"""No-private-area statements can be withdrawn (the camera is burned in again).

Revision ID: masking_0003
Revises: masking_0002
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "masking_0003"
down_revision = "masking_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("masking_statements") as batch:
        batch.add_column(sa.Column("withdrawn_us", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("withdrawn_by", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("masking_statements") as batch:
        batch.drop_column("withdrawn_by")
        batch.drop_column("withdrawn_us")
