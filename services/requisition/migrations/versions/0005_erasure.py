"""Personal fields erased at the end of their retention (services/requisition/retention.py): when a
citizen's request or a requisition case was erased, so the sweep never counts it twice.

Revision ID: requisition_0005
Revises: requisition_0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "requisition_0005"
down_revision = "requisition_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("requisition_citizen_requests", sa.Column("erased_us", sa.BigInteger(), nullable=True))
    op.add_column("requisition_requests", sa.Column("erased_us", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requisition_requests") as batch:
        batch.drop_column("erased_us")
    with op.batch_alter_table("requisition_citizen_requests") as batch:
        batch.drop_column("erased_us")
