"""Accounts with habilitations, sessions, the hash-chained audit trail and its checkpoints.

Revision ID: gateway_0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("totp_secret_sealed", sa.String(512)),
        sa.Column("totp_confirmed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until_us", sa.BigInteger),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("granted_us", sa.BigInteger, nullable=False),
        sa.Column("camera_groups", sa.JSON, nullable=False),
        sa.Column("expires_us", sa.BigInteger),
        sa.Column("prefecture_ref", sa.String(128)),
        sa.Column("prefecture_validated_us", sa.BigInteger),
        sa.Column("playback_days", sa.Integer),
        sa.Column("ptz_priority", sa.Integer),
    )
    op.create_table(
        "gateway_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(32), nullable=False, index=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("last_used_us", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("revoked_us", sa.BigInteger),
        sa.Column("ip", sa.String(64), nullable=False, server_default=""),
    )
    op.create_table(
        "gateway_audit",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(32), nullable=False, unique=True),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("origin_ip", sa.String(64), nullable=False),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("justification", sa.String(1024), nullable=False),
        sa.Column("recipient", sa.String(256), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("details_json", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_gateway_audit_time", "gateway_audit", ["time_us"])
    op.create_index("ix_gateway_audit_actor", "gateway_audit", ["actor", "time_us"])
    op.create_index("ix_gateway_audit_target", "gateway_audit", ["target", "time_us"])
    head = op.create_table(
        "gateway_audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "entry_hash": "0" * 64}])
    op.create_table(
        "gateway_audit_checkpoints",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("signed_us", sa.BigInteger, nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("public_key", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_audit_checkpoints")
    op.drop_table("gateway_audit_head")
    op.drop_table("gateway_audit")
    op.drop_table("gateway_sessions")
    op.drop_table("gateway_users")
