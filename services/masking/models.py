"""Masking's tables: mask sets and their versions, PTZ cameras' calibrations, no-private-area
statements, mask-error reports, redaction jobs.

Times are integer microseconds since the epoch, UTC. Polygons and selections are JSON text,
identical on SQLite and PostgreSQL. Only masking reads these tables; everyone else asks
MaskingService.
Design: docs/design/schema.md
"""

from sqlalchemy import BigInteger, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class MaskSetRow(SQLModel, table=True):
    __tablename__ = "masking_mask_sets"
    __table_args__ = (UniqueConstraint("camera_id", "version", name="uq_masking_mask_sets_camera_version"),)

    id: str = Field(primary_key=True, max_length=32)
    camera_id: str = Field(max_length=64, index=True)
    version: int
    # draft -> approved -> superseded; a draft may also be discarded.
    status: str = Field(max_length=16)
    # "image" (normalised image coordinates) or "ptz" (generic pan/tilt space).
    space: str = Field(max_length=8)
    polygons_json: str = Field(sa_column=Column(Text, nullable=False))
    comment: str = Field(default="", sa_column=Column(Text, nullable=False))
    author: str = Field(max_length=200)
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    approver: str = Field(default="", max_length=200)
    approved_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    superseded_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    origin: str = Field(default="api", max_length=16)
    # PTZ sets: the camera calibration (its version) the polygons were drawn or given under; None:
    # none (a PTZ set with polygons is then not projected: its frames are masked whole).
    calibration_version: int | None = None


class CalibrationRow(SQLModel, table=True):
    """A PTZ camera's optics fitted from an operator's reference points (services/masking/calibration.py).
    Versions 1, 2, 3...; a mask set keeps the one it was drawn under."""

    __tablename__ = "masking_ptz_calibrations"
    __table_args__ = (UniqueConstraint("camera_id", "version", name="uq_masking_ptz_calibrations_camera_version"),)

    id: str = Field(primary_key=True, max_length=32)
    camera_id: str = Field(max_length=64, index=True)
    version: int
    optics_json: str = Field(sa_column=Column(Text, nullable=False))
    # The reference points with each one's residual: [{landmark, pan, tilt, zoom, x, y, residual_px}].
    points_json: str = Field(sa_column=Column(Text, nullable=False))
    rms_px: float
    max_px: float
    image_width: int
    image_height: int
    # The parameters the points determined (the others kept their defaults), space-separated.
    fitted: str = Field(max_length=200)
    comment: str = Field(default="", sa_column=Column(Text, nullable=False))
    author: str = Field(max_length=200)
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class StatementRow(SQLModel, table=True):
    __tablename__ = "masking_statements"

    id: str = Field(primary_key=True, max_length=32)
    camera_id: str = Field(max_length=64, index=True)
    supervisor: str = Field(max_length=200)
    text: str = Field(sa_column=Column(Text, nullable=False))
    signed_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    statement: str = Field(sa_column=Column(Text, nullable=False))
    signature: str = Field(sa_column=Column(Text, nullable=False))
    public_key_pem: str = Field(sa_column=Column(Text, nullable=False))
    recorded_by: str = Field(max_length=200)
    # A withdrawn statement is no longer in force (the camera is burned in again).
    withdrawn_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    withdrawn_by: str = Field(default="", max_length=200)


class MaskErrorRow(SQLModel, table=True):
    __tablename__ = "masking_error_reports"

    id: str = Field(primary_key=True, max_length=32)
    camera_id: str = Field(max_length=64, index=True)
    reporter: str = Field(max_length=200)
    description: str = Field(sa_column=Column(Text, nullable=False))
    snapshot_ref: str = Field(default="", max_length=500)
    mask_version: str = Field(default="", max_length=32)
    reported_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(max_length=16)
    closed_by: str = Field(default="", max_length=200)
    closed_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    resolution: str = Field(default="", sa_column=Column(Text, nullable=False))


class RedactionJobRow(SQLModel, table=True):
    __tablename__ = "masking_redaction_jobs"

    id: str = Field(primary_key=True, max_length=32)
    camera_id: str = Field(max_length=64, index=True)
    start_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    end_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    mode: str = Field(max_length=16)
    effect: str = Field(max_length=16)
    selection_json: str = Field(sa_column=Column(Text, nullable=False))
    # queued -> running -> done | failed | cancelled; done -> expired.
    status: str = Field(max_length=16, index=True)
    progress: float = 0.0
    error: str = Field(default="", sa_column=Column(Text, nullable=False))
    frames: int = 0
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    object_key: str = Field(default="", max_length=300)
    actor: str = Field(max_length=200)
    request_ref: str = Field(default="", max_length=200)
    created_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    finished_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    expires_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The replica working on it and its last sign of life (a dead worker's job is queued again).
    worker: str = Field(default="", max_length=100)
    heartbeat_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    cancel_requested: bool = False
    # The requester's box on every output frame: [[time_us, x, y, w, h] | [time_us], ...] (normalised).
    track_json: str = Field(default="", sa_column=Column(Text, nullable=False))
