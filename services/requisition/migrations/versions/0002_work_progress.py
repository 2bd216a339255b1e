"""How far a running extraction or package build has got, for the console's progress bar.

Revision ID: requisition_0002
Revises: requisition_0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "requisition_0002"
down_revision = "requisition_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requisition_requests") as batch:
        batch.add_column(sa.Column("extract_progress", sa.Float, nullable=True))
        batch.add_column(sa.Column("package_progress", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requisition_requests") as batch:
        batch.drop_column("package_progress")
        batch.drop_column("extract_progress")
