"""Deletion proofs remember what of them is in the audit trail (erasures are audited).

Revision ID: archive_0005
Revises: archive_0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "archive_0005"
down_revision = "archive_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty: proofs written before this version are audited at the first round.
    op.add_column(
        "archive_deletion_proofs", sa.Column("audited_digest", sa.String(64), nullable=False, server_default="")
    )


def downgrade() -> None:
    op.drop_column("archive_deletion_proofs", "audited_digest")
