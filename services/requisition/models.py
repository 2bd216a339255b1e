"""The requisition service's tables (prefix requisition_): requisitions and their extracts, the
documents, the register of extractions, citizens' access requests and kiosk sessions.

Times are integer microseconds since the epoch, UTC (`*_us`). Personal data is kept only as long
as its purpose: identity documents are deleted when the citizen's request closes; footage copies
(extracts, packages) are purged at their deadline or at delivery; names, contacts and free text
are erased at the end of their retention (retention.py); what stays is the record of what happened
(states, transitions, hashes, the signed register).
Design: docs/design/schema.md
"""

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.common.anchoring import CheckpointColumns


def _us(nullable: bool = False) -> Column:
    return Column(BigInteger, nullable=nullable)


class Requisition(SQLModel, table=True):
    __tablename__ = "requisition_requests"
    __table_args__ = (Index("ix_requisition_requests_state", "state", "buffer_deadline_us"),)

    id: str = Field(primary_key=True, max_length=32)
    number: str = Field(max_length=32, unique=True)
    state: str = Field(max_length=32)
    requesting_service: str = Field(max_length=200)
    officer: str = Field(max_length=200)
    officer_contact: str = Field(default="", max_length=200)
    case_reference: str = Field(max_length=200)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    channel: str = Field(max_length=16)
    partner: str = Field(default="", max_length=64, index=True)
    requested_by: str = Field(max_length=200)
    created_us: int = Field(sa_column=_us())
    updated_us: int = Field(sa_column=_us())
    # The buffer copy's deadline: the footage's own retention end (None: no extract, or held).
    buffer_deadline_us: int | None = Field(default=None, sa_column=_us(True))
    # Unextracted requests lapse when their footage passes its retention.
    footage_deadline_us: int = Field(sa_column=_us())
    # Set while an extraction runs (a claim, so two operators cannot extract at once).
    extracting_us: int | None = Field(default=None, sa_column=_us(True))
    # How far that extraction has got, 0 to 1 (None when none runs): see progress.py.
    extract_progress: float | None = Field(default=None)
    extracted_by: str = Field(default="", max_length=200)
    extracted_us: int | None = Field(default=None, sa_column=_us(True))
    # The signed requisition.
    req_number: str = Field(default="", max_length=100)
    req_authority: str = Field(default="", max_length=200)
    req_authority_kind: str = Field(default="", max_length=16)
    req_issued_on: str = Field(default="", max_length=10)
    req_document_id: str = Field(default="", max_length=32)
    received_us: int | None = Field(default=None, sa_column=_us(True))
    received_by: str = Field(default="", max_length=200)
    # Approval (register entry signed by the deployment key).
    approved_by: str = Field(default="", max_length=200)
    approved_by_name: str = Field(default="", max_length=200)
    approved_us: int | None = Field(default=None, sa_column=_us(True))
    approval_comment: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    approval_seq: int | None = Field(default=None, sa_column=_us(True))
    # The export package (one at a time; rebuilding replaces it), and how far a build has got.
    package_progress: float | None = Field(default=None)
    package_id: str = Field(default="", max_length=32)
    package_key: str = Field(default="", max_length=300)
    package_filename: str = Field(default="", max_length=200)
    package_sha256: str = Field(default="", max_length=64)
    package_size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    package_encrypted: bool = False
    package_created_us: int | None = Field(default=None, sa_column=_us(True))
    package_created_by: str = Field(default="", max_length=200)
    manifest_sha256: str = Field(default="", max_length=64)
    package_files: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Handover.
    delivered_us: int | None = Field(default=None, sa_column=_us(True))
    delivery_medium: str = Field(default="", max_length=16)
    recipient_name: str = Field(default="", max_length=200)
    recipient_service: str = Field(default="", max_length=200)
    recipient_id: str = Field(default="", max_length=200)
    recipient_partner: str = Field(default="", max_length=64)
    delivery_recorded_by: str = Field(default="", max_length=200)
    delivery_seq: int | None = Field(default=None, sa_column=_us(True))
    receipt_document_id: str = Field(default="", max_length=32)
    # Purge of the buffer copy (and package).
    purged_us: int | None = Field(default=None, sa_column=_us(True))
    purge_reason: str = Field(default="", max_length=16)
    # "Was it useful to the investigation?", after delivery.
    feedback_useful: bool | None = None
    feedback_comment: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    feedback_by: str = Field(default="", max_length=200)
    feedback_us: int | None = Field(default=None, sa_column=_us(True))
    # Its personal fields were erased at the end of their retention (services/requisition/retention.py).
    erased_us: int | None = Field(default=None, sa_column=_us(True))


class RequestedRange(SQLModel, table=True):
    __tablename__ = "requisition_ranges"

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=32, index=True)
    position: int
    camera_id: str = Field(max_length=64)
    camera_name: str = Field(default="", max_length=128)
    retention_days: int
    start_us: int = Field(sa_column=_us())
    end_us: int = Field(sa_column=_us())


class Transition(SQLModel, table=True):
    """Every state change of a requisition or a citizen's request: who, when, why."""

    __tablename__ = "requisition_transitions"
    __table_args__ = (Index("ix_requisition_transitions_subject", "subject_kind", "subject_id", "at_us"),)

    id: int | None = Field(default=None, primary_key=True)
    # "requisition" or "citizen_request".
    subject_kind: str = Field(max_length=16)
    subject_id: str = Field(max_length=32)
    from_state: str = Field(max_length=32)
    to_state: str = Field(max_length=32)
    actor: str = Field(max_length=200)
    role: str = Field(default="", max_length=32)
    at_us: int = Field(sa_column=_us())
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))


class ExtractPart(SQLModel, table=True):
    """One extracted piece of a requested range and the MP4 built from it for the package."""

    __tablename__ = "requisition_parts"

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=32, index=True)
    position: int
    camera_id: str = Field(max_length=64)
    camera_name: str = Field(default="", max_length=128)
    start_us: int = Field(sa_column=_us())
    end_us: int = Field(sa_column=_us())
    empty: bool = False
    clip_key: str = Field(default="", max_length=300)
    clip_sha256: str = Field(default="", max_length=64)
    clip_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    clip_start_us: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    clip_end_us: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    frames: int = 0


class ExtractSegment(SQLModel, table=True):
    """A segment copied unchanged into the extraction bucket, with its archive chain hashes."""

    __tablename__ = "requisition_segments"

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=32, index=True)
    part_id: int = Field(index=True)
    segment_id: str = Field(max_length=32)
    object_key: str = Field(max_length=600)
    start_us: int = Field(sa_column=_us())
    end_us: int = Field(sa_column=_us())
    sha256: str = Field(max_length=64)
    prev_sha256: str = Field(default="", max_length=64)
    mask_version: str = Field(default="", max_length=64)
    bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    retention_end_us: int = Field(sa_column=_us())


class Document(SQLModel, table=True):
    """An uploaded or generated document, stored encrypted in the documents bucket."""

    __tablename__ = "requisition_documents"
    __table_args__ = (Index("ix_requisition_documents_owner", "owner_kind", "owner_id"),)

    id: str = Field(primary_key=True, max_length=32)
    # "requisition" or "citizen_request".
    owner_kind: str = Field(max_length=16)
    owner_id: str = Field(max_length=32)
    # "requisition", "identity" or "receipt".
    kind: str = Field(max_length=16)
    filename: str = Field(max_length=200)
    content_type: str = Field(max_length=64)
    # Of the plaintext, as uploaded.
    sha256: str = Field(max_length=64)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    object_key: str = Field(max_length=300)
    created_us: int = Field(sa_column=_us())
    created_by: str = Field(max_length=200)
    deleted_us: int | None = Field(default=None, sa_column=_us(True))


class RegisterEntry(SQLModel, table=True):
    """The register of extractions (cahier des extractions): append-only, hash-chained, each entry
    signed with the deployment's Ed25519 key."""

    __tablename__ = "requisition_register"

    seq: int = Field(primary_key=True)
    time_us: int = Field(sa_column=_us())
    kind: str = Field(max_length=32)
    request_id: str = Field(max_length=32, index=True)
    request_number: str = Field(max_length=32)
    actor: str = Field(max_length=200)
    payload_json: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64, unique=True)
    signature: str = Field(max_length=128)
    key_fingerprint: str = Field(max_length=64)


class RegisterCheckpoint(CheckpointColumns, table=True):
    """The register's signed checkpoints at their cadence (services/common/anchoring.py): each
    entry is signed too, but only these say where the register ended, and when."""

    __tablename__ = "requisition_register_checkpoints"


class RegisterHead(SQLModel, table=True):
    """One row (id 1): the chain's last entry, locked while appending so the chain never forks."""

    __tablename__ = "requisition_register_head"

    id: int = Field(primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    entry_hash: str = Field(max_length=64)


class CitizenRequest(SQLModel, table=True):
    __tablename__ = "requisition_citizen_requests"

    id: str = Field(primary_key=True, max_length=32)
    number: str = Field(max_length=32, unique=True)
    state: str = Field(max_length=16, index=True)
    full_name: str = Field(max_length=200)
    birth_date: str = Field(max_length=10)
    id_document_kind: str = Field(max_length=100)
    # Sealed with the secrets key; only a hint of it is ever shown.
    id_document_number_sealed: str = Field(sa_column=Column(Text, nullable=False))
    id_document_number_hint: str = Field(default="", max_length=8)
    contact: str = Field(max_length=300)
    place: str = Field(max_length=300)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    camera_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    window_start_us: int = Field(sa_column=_us())
    window_end_us: int = Field(sa_column=_us())
    created_us: int = Field(sa_column=_us())
    created_by: str = Field(max_length=200)
    deadline_us: int = Field(sa_column=_us())
    warned_us: int | None = Field(default=None, sa_column=_us(True))
    overdue_warned_us: int | None = Field(default=None, sa_column=_us(True))
    search_note: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    searched_by: str = Field(default="", max_length=200)
    # [{"job_id", "camera_id", "start_us", "end_us"}]
    redactions: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # [{"id", "camera_id", "start_us", "end_us", "until_us"}]
    holds: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    outcome: str = Field(default="", max_length=16)
    outcome_reason: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    outcome_by: str = Field(default="", max_length=200)
    closed_us: int | None = Field(default=None, sa_column=_us(True))
    # Its personal fields were erased at the end of their retention (services/requisition/retention.py).
    erased_us: int | None = Field(default=None, sa_column=_us(True))


class KioskSession(SQLModel, table=True):
    """An on-site viewing session: paired with a one-time code, then a token only the kiosk holds."""

    __tablename__ = "requisition_kiosk_sessions"
    __table_args__ = (UniqueConstraint("code_hash", name="uq_requisition_kiosk_code"),)

    id: str = Field(primary_key=True, max_length=32)
    request_id: str = Field(max_length=32, index=True)
    # SHA-256 of the pairing code and of the session token: the database never holds usable ones.
    code_hash: str = Field(max_length=64)
    code_expires_us: int = Field(sa_column=_us())
    token_hash: str | None = Field(default=None, max_length=64, unique=True)
    paired_us: int | None = Field(default=None, sa_column=_us(True))
    paired_ip: str = Field(default="", max_length=64)
    expires_us: int = Field(sa_column=_us())
    revoked_us: int | None = Field(default=None, sa_column=_us(True))
    opened_by: str = Field(max_length=200)
    created_us: int = Field(sa_column=_us())
    plays: int = 0
