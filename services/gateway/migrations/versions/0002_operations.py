"""Operations: viewing-room register, bollards (commands, intercom calls), alarms, shift journal.

Revision ID: gateway_0002
Revises: gateway_0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0002"
down_revision = "gateway_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_visitors",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("organisation", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("quality", sa.String(128), nullable=False, server_default=""),
        sa.Column("purpose", sa.String(1000), nullable=False),
        sa.Column("expected_start_us", sa.BigInteger, nullable=False),
        sa.Column("expected_end_us", sa.BigInteger, nullable=False),
        sa.Column("declared_by", sa.String(160), nullable=False),
        sa.Column("declared_us", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("mail_status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("mail_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("mail_error", sa.String(500), nullable=False, server_default=""),
        sa.Column("mail_sent_us", sa.BigInteger),
        sa.Column("mail_recipient", sa.String(320), nullable=False, server_default=""),
        sa.Column("mail_message_id", sa.String(200), nullable=False, server_default=""),
        sa.Column("mail_claim_until_us", sa.BigInteger),
        sa.Column("prefecture_ref", sa.String(128), nullable=False, server_default=""),
        sa.Column("answer_us", sa.BigInteger),
        sa.Column("answer_recorded_by", sa.String(160), nullable=False, server_default=""),
        sa.Column("answer_recorded_us", sa.BigInteger),
        sa.Column("answer_comment", sa.String(1000), nullable=False, server_default=""),
    )
    op.create_index("ix_gateway_visitors_window", "gateway_visitors", ["expected_start_us"])
    op.create_index("ix_gateway_visitors_mail", "gateway_visitors", ["mail_status", "status"])

    op.create_table(
        "gateway_bollards",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("location", sa.String(256), nullable=False, server_default=""),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("driver", sa.String(16), nullable=False),
        sa.Column("http_method", sa.String(8), nullable=False, server_default="POST"),
        sa.Column("open_url_sealed", sa.String(4096)),
        sa.Column("close_url_sealed", sa.String(4096)),
        sa.Column("intercom_token_sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="unknown"),
        sa.Column("state_us", sa.BigInteger),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_gateway_bollards_camera_id", "gateway_bollards", ["camera_id"])
    op.create_table(
        "gateway_bollard_commands",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("bollard_id", sa.String(64), nullable=False),
        sa.Column("command", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("plate", sa.String(16), nullable=False, server_default=""),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("error", sa.String(500), nullable=False, server_default=""),
    )
    op.create_index("ix_gateway_bollard_commands_bollard_id", "gateway_bollard_commands", ["bollard_id"])
    op.create_index("ix_gateway_bollard_commands_time", "gateway_bollard_commands", ["time_us"])
    op.create_table(
        "gateway_bollard_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("bollard_id", sa.String(64), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("answered_by", sa.String(160), nullable=False, server_default=""),
        sa.Column("answered_us", sa.BigInteger),
    )
    op.create_index("ix_gateway_bollard_calls_bollard_id", "gateway_bollard_calls", ["bollard_id"])
    op.create_index("ix_gateway_bollard_calls_time", "gateway_bollard_calls", ["time_us"])

    op.create_table(
        "gateway_alarms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("message", sa.String(1000), nullable=False),
        sa.Column("first_raised_us", sa.BigInteger, nullable=False),
        sa.Column("last_raised_us", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="open"),
        sa.Column("acked_by", sa.String(160), nullable=False, server_default=""),
        sa.Column("acked_us", sa.BigInteger),
        sa.Column("ack_comment", sa.String(1000), nullable=False, server_default=""),
    )
    op.create_index("ix_gateway_alarms_key", "gateway_alarms", ["kind", "source", "camera_id", "state"])

    op.create_table(
        "gateway_journal",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("occurred_us", sa.BigInteger, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("author", sa.String(160), nullable=False),
        sa.Column("author_role", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("actions_note", sa.String(1000), nullable=False, server_default=""),
        sa.Column("camera_ids", sa.JSON, nullable=False),
        sa.Column("amends", sa.Integer),
    )
    op.create_index("ix_gateway_journal_time", "gateway_journal", ["occurred_us"])
    op.create_table(
        "gateway_journal_bookmarks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.Integer, nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("label", sa.String(200), nullable=False, server_default=""),
    )
    op.create_index("ix_gateway_journal_bookmarks_entry_id", "gateway_journal_bookmarks", ["entry_id"])
    op.create_index("ix_gateway_bookmarks_camera_time", "gateway_journal_bookmarks", ["camera_id", "at_us"])


def downgrade() -> None:
    for table in (
        "gateway_journal_bookmarks",
        "gateway_journal",
        "gateway_alarms",
        "gateway_bollard_calls",
        "gateway_bollard_commands",
        "gateway_bollards",
        "gateway_visitors",
    ):
        op.drop_table(table)
