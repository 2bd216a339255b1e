"""The tables of the supervision room's operations: visitors, bollards, alarms, the shift journal.

Times are integer microseconds since the epoch, UTC. Every table is the gateway's own
(`gateway_*`, migration gateway_0002). Registers are never deleted from: a declaration is
cancelled, a journal entry is amended by a later one, an alarm is acknowledged — until the end of
their retention, when their personal fields are erased (operations/retention.py, gateway_0010).
"""

from sqlalchemy import JSON, BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel


class VisitorDeclaration(SQLModel, table=True):
    """A person expected in the viewing room, declared in advance to the prefecture."""

    __tablename__ = "gateway_visitors"
    __table_args__ = (
        Index("ix_gateway_visitors_window", "expected_start_us"),
        Index("ix_gateway_visitors_mail", "mail_status", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    organisation: str = Field(max_length=128)
    # "agent", "manager", "visitor", "contractor", "police", "other"; `quality` says more.
    role: str = Field(max_length=32)
    quality: str = Field(default="", max_length=128)
    purpose: str = Field(max_length=1000)
    expected_start_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    expected_end_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    declared_by: str = Field(max_length=160)
    declared_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    # "pending" (awaiting the prefecture), "validated", "refused", "cancelled".
    status: str = Field(default="pending", max_length=16)
    # The e-mail to the prefecture: "queued", "sent", "not_sent" (retried until sent).
    mail_status: str = Field(default="queued", max_length=16)
    mail_attempts: int = 0
    mail_error: str = Field(default="", max_length=500)
    mail_sent_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    mail_recipient: str = Field(default="", max_length=320)
    mail_message_id: str = Field(default="", max_length=200)
    # A sender holds the row until then, so two gateway replicas never send it twice at once.
    mail_claim_until_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    prefecture_ref: str = Field(default="", max_length=128)
    answer_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    answer_recorded_by: str = Field(default="", max_length=160)
    answer_recorded_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    answer_comment: str = Field(default="", max_length=1000)
    # When the visitor's identity was erased at the end of its retention (operations/retention.py).
    erased_us: int | None = Field(default=None, sa_column=Column(BigInteger))


class Bollard(SQLModel, table=True):
    """A retractable bollard of a pedestrian zone, with the camera that watches it."""

    __tablename__ = "gateway_bollards"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=128)
    location: str = Field(default="", max_length=256)
    camera_id: str = Field(max_length=64, index=True)
    # "simulated" or "http" (a generic HTTP relay).
    driver: str = Field(max_length=16)
    http_method: str = Field(default="POST", max_length=8)
    # The relay's URLs may carry credentials: sealed with the deployment's secrets key.
    open_url_sealed: str | None = Field(default=None, max_length=4096)
    close_url_sealed: str | None = Field(default=None, max_length=4096)
    # SHA-256 of the token the intercom presents when it reports a call.
    intercom_token_sha256: str = Field(max_length=64)
    # Last commanded state: "open", "closed" or "unknown".
    state: str = Field(default="unknown", max_length=16)
    state_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    active: bool = True
    created_by: str = Field(max_length=160)
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class BollardCommand(SQLModel, table=True):
    __tablename__ = "gateway_bollard_commands"
    __table_args__ = (Index("ix_gateway_bollard_commands_time", "time_us"),)

    id: int | None = Field(default=None, primary_key=True)
    bollard_id: str = Field(max_length=64, index=True)
    command: str = Field(max_length=8)
    reason: str = Field(max_length=500)
    plate: str = Field(default="", max_length=16)
    actor: str = Field(max_length=160)
    role: str = Field(max_length=32)
    time_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    # "ok" or "failed" (`error` says why).
    outcome: str = Field(max_length=8)
    error: str = Field(default="", max_length=500)


class BollardCall(SQLModel, table=True):
    """An intercom call from a bollard (a driver asking to get through)."""

    __tablename__ = "gateway_bollard_calls"
    __table_args__ = (Index("ix_gateway_bollard_calls_time", "time_us"),)

    id: int | None = Field(default=None, primary_key=True)
    bollard_id: str = Field(max_length=64, index=True)
    camera_id: str = Field(max_length=64)
    time_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    answered_by: str = Field(default="", max_length=160)
    answered_us: int | None = Field(default=None, sa_column=Column(BigInteger))


class Alarm(SQLModel, table=True):
    """An alarm for operators; repeats of an open alarm (same kind, source, camera) are counted on it."""

    __tablename__ = "gateway_alarms"
    __table_args__ = (Index("ix_gateway_alarms_key", "kind", "source", "camera_id", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64)
    source: str = Field(max_length=32)
    camera_id: str = Field(default="", max_length=64)
    message: str = Field(max_length=1000)
    first_raised_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_raised_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    count: int = 1
    # JetStream sequence numbers of the first and last events counted here (redeliveries are
    # recognised by them and not counted twice).
    first_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    # "open" or "acknowledged".
    state: str = Field(default="open", max_length=16)
    acked_by: str = Field(default="", max_length=160)
    acked_us: int | None = Field(default=None, sa_column=Column(BigInteger))
    ack_comment: str = Field(default="", max_length=1000)


class JournalEntry(SQLModel, table=True):
    """One line of the main courante: what an operator saw and did."""

    __tablename__ = "gateway_journal"
    __table_args__ = (Index("ix_gateway_journal_time", "occurred_us"),)

    id: int | None = Field(default=None, primary_key=True)
    occurred_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    author: str = Field(max_length=160)
    author_role: str = Field(max_length=32)
    category: str = Field(max_length=32)
    description: str = Field(sa_column=Column(Text, nullable=False))
    actions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    actions_note: str = Field(default="", max_length=1000)
    camera_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # An entry is never edited: a correction is a new entry that amends the earlier one.
    amends: int | None = None
    # When its free text (mentions of people) was erased at the end of its retention (operations/retention.py).
    erased_us: int | None = Field(default=None, sa_column=Column(BigInteger))


class JournalBookmark(SQLModel, table=True):
    """A camera and an instant worth finding again on the playback timeline."""

    __tablename__ = "gateway_journal_bookmarks"
    __table_args__ = (Index("ix_gateway_bookmarks_camera_time", "camera_id", "at_us"),)

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(index=True)
    camera_id: str = Field(max_length=64)
    at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    label: str = Field(default="", max_length=200)


class RetentionPeriod(SQLModel, table=True):
    """A retention period the data protection officer chose, within its kind's hard cap.

    No row: the kind's default (operations/retention.py, where each period's legal basis is).
    """

    __tablename__ = "gateway_retention_periods"

    kind: str = Field(primary_key=True, max_length=32)
    days: int
    set_by: str = Field(max_length=160)
    set_us: int = Field(sa_column=Column(BigInteger, nullable=False))
