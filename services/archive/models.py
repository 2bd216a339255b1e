"""The recordings index: one row per stored segment, plus gaps and deletion proofs.

Times are integers, microseconds since the Unix epoch in UTC (`*_us`), like the frame envelope:
no time zone can be lost on the way through SQLite or PostgreSQL, comparisons are exact, and a
camera-day is a simple range scan on (camera_id, stream, start_us).

A segment covers [start_us, end_us): from its first frame's capture time to just after its last
frame. Consecutive segments of one camera touch when recording was continuous; a hole between
them is a gap (the camera was offline, or nothing was recorded). When the archive knows why
nothing was recorded, it writes an `archive_gaps` row; the timeline shows the reason.

Every segment carries the SHA-256 of its bytes and the SHA-256 of the camera's previous segment
(`prev_sha256`, "" for the first): a per-camera hash chain, in storage order, which is time order.
Deleting or replacing a segment without leaving a deletion proof breaks the chain.
Design: docs/design/schema.md
"""

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.common.anchoring import CheckpointColumns


class Segment(SQLModel, table=True):
    __tablename__ = "archive_segments"
    __table_args__ = (
        Index("ix_archive_segments_camera_start", "camera_id", "stream", "start_us"),
        # The segment ledger finds the rows it has not taken in yet by when they were written.
        Index("ix_archive_segments_created", "created_us"),
    )

    id: str = Field(primary_key=True, max_length=32)
    camera_id: str = Field(max_length=64)
    stream: str = Field(max_length=8)
    start_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    end_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    object_key: str = Field(max_length=512, unique=True)
    bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: str = Field(max_length=64)
    frames: int
    mask_version: str = Field(max_length=64)
    fully_masked: bool = False
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    prev_sha256: str = Field(default="", max_length=64)


class Gap(SQLModel, table=True):
    """An interval known to have no recording, and why (the reasons the archive can tell)."""

    __tablename__ = "archive_gaps"
    __table_args__ = (Index("ix_archive_gaps_camera_start", "camera_id", "stream", "start_us"),)

    id: int | None = Field(default=None, primary_key=True)
    camera_id: str = Field(max_length=64)
    stream: str = Field(max_length=8)
    start_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    end_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    # "storage_outage", "archive_restart", "object_missing"; from camera status events
    # (camera_gaps.py) "camera_offline", "camera_maintenance", "authorisation_expired",
    # "camera_reconfigured".
    reason: str = Field(max_length=32)
    detail: str = Field(default="", max_length=512)
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class DeletionProof(SQLModel, table=True):
    """What the retention sweeper deleted for one camera and UTC hour (by segment start).

    Sweeping to the minute deletes an hour's segments over an hour of sweeps: the row grows with
    each deletion (count, bytes, last time, hashes) and its digest is recomputed, so it always
    describes everything deleted from that hour.
    """

    __tablename__ = "archive_deletion_proofs"
    __table_args__ = (UniqueConstraint("camera_id", "stream", "hour_start_us", name="uq_archive_proofs_hour"),)

    id: int | None = Field(default=None, primary_key=True)
    camera_id: str = Field(max_length=64)
    stream: str = Field(max_length=8)
    hour_start_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    count: int
    bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    first_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The deleted segments' SHA-256s in time order, space-separated.
    sha256s: str = Field(sa_column=Column(Text, nullable=False))
    digest: str = Field(max_length=64)
    swept_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    retention_days: int
    # The digest this proof had when it last went into the audit trail (erasure_audit.py); a proof
    # that grew since, or never went, differs: its erasures are still to be audited.
    audited_digest: str = Field(default="", max_length=64)


class CameraRetention(SQLModel, table=True):
    """The last retention ingest gave for each camera, kept so a restart while ingest is away
    never falls back to a longer default (retention is a legal maximum)."""

    __tablename__ = "archive_camera_retention"

    camera_id: str = Field(primary_key=True, max_length=64)
    days: int
    name: str = Field(max_length=128)
    updated_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class Hold(SQLModel, table=True):
    """Footage frozen against the retention sweep for a citizen's access request.

    A hold never extends a segment's life past its capture + the legal 30 days (see holds.py):
    `until_us` is what was asked, the sweeper applies the legal clamp per segment.
    """

    __tablename__ = "archive_holds"
    __table_args__ = (Index("ix_archive_holds_camera", "camera_id", "start_us"),)

    id: str = Field(primary_key=True, max_length=128)
    camera_id: str = Field(max_length=64)
    start_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    end_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    until_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    reason: str = Field(default="", max_length=500)
    actor: str = Field(default="", max_length=200)
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    released_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class LedgerEntry(SQLModel, table=True):
    """The segment ledger (ledger.py): each segment row as it was indexed, in one hash chain that
    signed checkpoints and heads published outside the database vouch for."""

    __tablename__ = "archive_ledger"
    __table_args__ = (Index("ix_archive_ledger_camera", "camera_id", "stream", "start_us"),)

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    segment_id: str = Field(max_length=32, unique=True)
    camera_id: str = Field(max_length=64)
    stream: str = Field(max_length=8)
    start_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    end_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    object_key: str = Field(max_length=512)
    bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: str = Field(max_length=64)
    prev_sha256: str = Field(max_length=64)
    frames: int
    mask_version: str = Field(max_length=64)
    fully_masked: bool
    # When the ledger took it in (the cadence's time).
    recorded_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64)


class LedgerHead(SQLModel, table=True):
    """One row (id 1): the ledger's last entry, how far the index has been read, what was purged."""

    __tablename__ = "archive_ledger_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    entry_hash: str = Field(default="0" * 64, max_length=64)
    # The newest created_us of the segment rows ledgered (rows are looked for from a margin before).
    watermark_us: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    # Entries up to this seq were purged (leading runs only, past the legal maximum).
    purged_through: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class LedgerCheckpoint(CheckpointColumns, table=True):
    """The ledger's signed checkpoints at their cadence (services/common/anchoring.py)."""

    __tablename__ = "archive_ledger_checkpoints"
