"""Partners' conventions (reference, expiry, last alarm raised) and the viewing room's door: who
entered and left, agents at the start and end of their shift, visitors against their declaration.

Revision ID: gateway_0009
Revises: gateway_0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0009"
down_revision = "gateway_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Partners registered before keep an empty reference: refused until a convention is recorded.
    op.add_column("gateway_partners", sa.Column("convention_ref", sa.String(128), nullable=False, server_default=""))
    op.add_column("gateway_partners", sa.Column("convention_expires_us", sa.BigInteger(), nullable=True))
    op.add_column("gateway_partners", sa.Column("convention_notice", sa.String(16), nullable=False, server_default=""))
    op.create_table(
        "gateway_room_presence",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("username", sa.String(64), nullable=False, server_default=""),
        sa.Column("declaration_id", sa.Integer(), nullable=True),
        sa.Column("entered_us", sa.BigInteger(), nullable=False),
        sa.Column("entered_by", sa.String(160), nullable=False),
        sa.Column("exited_us", sa.BigInteger(), nullable=True),
        sa.Column("exited_by", sa.String(160), nullable=False, server_default=""),
    )
    op.create_index("ix_gateway_room_presence_entered", "gateway_room_presence", ["entered_us"])
    # Nobody is in the room twice at once: enforced here, whichever replica records the entry.
    inside = sa.text("exited_us IS NULL")
    op.create_index(
        "ux_gateway_room_agent_inside",
        "gateway_room_presence",
        ["username"],
        unique=True,
        postgresql_where=sa.text("exited_us IS NULL AND kind = 'agent'"),
        sqlite_where=sa.text("exited_us IS NULL AND kind = 'agent'"),
    )
    op.create_index(
        "ux_gateway_room_visitor_inside",
        "gateway_room_presence",
        ["declaration_id"],
        unique=True,
        postgresql_where=inside,
        sqlite_where=inside,
    )


def downgrade() -> None:
    op.drop_index("ux_gateway_room_visitor_inside", "gateway_room_presence")
    op.drop_index("ux_gateway_room_agent_inside", "gateway_room_presence")
    op.drop_index("ix_gateway_room_presence_entered", "gateway_room_presence")
    op.drop_table("gateway_room_presence")
    with op.batch_alter_table("gateway_partners") as batch:
        batch.drop_column("convention_notice")
        batch.drop_column("convention_expires_us")
        batch.drop_column("convention_ref")
