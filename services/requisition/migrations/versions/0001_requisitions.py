"""Requisitions, extracts, documents, the signed register, citizens' requests, kiosk sessions.

Revision ID: requisition_0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "requisition_0001"
down_revision = None
branch_labels = None
depends_on = None


def _us(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=nullable)


def _text(name: str) -> sa.Column:
    return sa.Column(name, sa.Text, nullable=False, server_default="")


def _str(name: str, length: int, default: str | None = "") -> sa.Column:
    return sa.Column(name, sa.String(length), nullable=False, server_default=default)


def upgrade() -> None:
    op.create_table(
        "requisition_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("number", sa.String(32), nullable=False, unique=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("requesting_service", sa.String(200), nullable=False),
        sa.Column("officer", sa.String(200), nullable=False),
        _str("officer_contact", 200),
        sa.Column("case_reference", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        _str("partner", 64),
        sa.Column("requested_by", sa.String(200), nullable=False),
        _us("created_us"),
        _us("updated_us"),
        _us("buffer_deadline_us", True),
        _us("footage_deadline_us"),
        _us("extracting_us", True),
        _str("extracted_by", 200),
        _us("extracted_us", True),
        _str("req_number", 100),
        _str("req_authority", 200),
        _str("req_authority_kind", 16),
        _str("req_issued_on", 10),
        _str("req_document_id", 32),
        _us("received_us", True),
        _str("received_by", 200),
        _str("approved_by", 200),
        _str("approved_by_name", 200),
        _us("approved_us", True),
        _text("approval_comment"),
        _us("approval_seq", True),
        _str("package_id", 32),
        _str("package_key", 300),
        _str("package_filename", 200),
        _str("package_sha256", 64),
        sa.Column("package_size", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("package_encrypted", sa.Boolean, nullable=False, server_default=sa.false()),
        _us("package_created_us", True),
        _str("package_created_by", 200),
        _str("manifest_sha256", 64),
        sa.Column("package_files", sa.JSON, nullable=False),
        _us("delivered_us", True),
        _str("delivery_medium", 16),
        _str("recipient_name", 200),
        _str("recipient_service", 200),
        _str("recipient_id", 200),
        _str("recipient_partner", 64),
        _str("delivery_recorded_by", 200),
        _us("delivery_seq", True),
        _str("receipt_document_id", 32),
        _us("purged_us", True),
        _str("purge_reason", 16),
        sa.Column("feedback_useful", sa.Boolean, nullable=True),
        _text("feedback_comment"),
        _str("feedback_by", 200),
        _us("feedback_us", True),
    )
    op.create_index("ix_requisition_requests_state", "requisition_requests", ["state", "buffer_deadline_us"])
    op.create_index("ix_requisition_requests_partner", "requisition_requests", ["partner"])
    op.create_table(
        "requisition_ranges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        _str("camera_name", 128),
        sa.Column("retention_days", sa.Integer, nullable=False),
        _us("start_us"),
        _us("end_us"),
    )
    op.create_index("ix_requisition_ranges_request_id", "requisition_ranges", ["request_id"])
    op.create_table(
        "requisition_transitions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subject_kind", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(32), nullable=False),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        _str("role", 32),
        _us("at_us"),
        _text("reason"),
    )
    op.create_index(
        "ix_requisition_transitions_subject", "requisition_transitions", ["subject_kind", "subject_id", "at_us"]
    )
    op.create_table(
        "requisition_parts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        _str("camera_name", 128),
        _us("start_us"),
        _us("end_us"),
        sa.Column("empty", sa.Boolean, nullable=False, server_default=sa.false()),
        _str("clip_key", 300),
        _str("clip_sha256", 64),
        sa.Column("clip_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("clip_start_us", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("clip_end_us", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("frames", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_requisition_parts_request_id", "requisition_parts", ["request_id"])
    op.create_table(
        "requisition_segments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("part_id", sa.Integer, nullable=False),
        sa.Column("segment_id", sa.String(32), nullable=False),
        sa.Column("object_key", sa.String(600), nullable=False),
        _us("start_us"),
        _us("end_us"),
        sa.Column("sha256", sa.String(64), nullable=False),
        _str("prev_sha256", 64),
        _str("mask_version", 64),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        _us("retention_end_us"),
    )
    op.create_index("ix_requisition_segments_request_id", "requisition_segments", ["request_id"])
    op.create_index("ix_requisition_segments_part_id", "requisition_segments", ["part_id"])
    op.create_table(
        "requisition_documents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_kind", sa.String(16), nullable=False),
        sa.Column("owner_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("object_key", sa.String(300), nullable=False),
        _us("created_us"),
        sa.Column("created_by", sa.String(200), nullable=False),
        _us("deleted_us", True),
    )
    op.create_index("ix_requisition_documents_owner", "requisition_documents", ["owner_kind", "owner_id"])
    op.create_table(
        "requisition_register",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        _us("time_us"),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("request_number", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("payload_json", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("key_fingerprint", sa.String(64), nullable=False),
    )
    op.create_index("ix_requisition_register_request_id", "requisition_register", ["request_id"])
    op.create_table(
        "requisition_register_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
    )
    op.execute(f"INSERT INTO requisition_register_head (id, seq, entry_hash) VALUES (1, 0, '{'0' * 64}')")
    op.create_table(
        "requisition_citizen_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("number", sa.String(32), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("birth_date", sa.String(10), nullable=False),
        sa.Column("id_document_kind", sa.String(100), nullable=False),
        sa.Column("id_document_number_sealed", sa.Text, nullable=False),
        _str("id_document_number_hint", 8),
        sa.Column("contact", sa.String(300), nullable=False),
        sa.Column("place", sa.String(300), nullable=False),
        _text("description"),
        sa.Column("camera_ids", sa.JSON, nullable=False),
        _us("window_start_us"),
        _us("window_end_us"),
        _us("created_us"),
        sa.Column("created_by", sa.String(200), nullable=False),
        _us("deadline_us"),
        _us("warned_us", True),
        _us("overdue_warned_us", True),
        _text("search_note"),
        _str("searched_by", 200),
        sa.Column("redactions", sa.JSON, nullable=False),
        sa.Column("holds", sa.JSON, nullable=False),
        _str("outcome", 16),
        _text("outcome_reason"),
        _str("outcome_by", 200),
        _us("closed_us", True),
    )
    op.create_index("ix_requisition_citizen_requests_state", "requisition_citizen_requests", ["state"])
    op.create_table(
        "requisition_kiosk_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        _us("code_expires_us"),
        sa.Column("token_hash", sa.String(64), nullable=True, unique=True),
        _us("paired_us", True),
        _str("paired_ip", 64),
        _us("expires_us"),
        _us("revoked_us", True),
        sa.Column("opened_by", sa.String(200), nullable=False),
        _us("created_us"),
        sa.Column("plays", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("code_hash", name="uq_requisition_kiosk_code"),
    )
    op.create_index("ix_requisition_kiosk_sessions_request_id", "requisition_kiosk_sessions", ["request_id"])


def downgrade() -> None:
    for table in (
        "requisition_kiosk_sessions",
        "requisition_citizen_requests",
        "requisition_register_head",
        "requisition_register",
        "requisition_documents",
        "requisition_segments",
        "requisition_parts",
        "requisition_transitions",
        "requisition_ranges",
        "requisition_requests",
    ):
        op.drop_table(table)
