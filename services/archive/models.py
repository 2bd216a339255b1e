"""The recordings index: one row per stored segment.

Times are integers, microseconds since the Unix epoch in UTC (`*_us`), like the frame envelope:
no time zone can be lost on the way through SQLite or PostgreSQL, comparisons are exact, and a
camera-day is a simple range scan on (camera_id, stream, start_us).

A segment covers [start_us, end_us): from its first frame's capture time to just after its last
frame. Consecutive segments of one camera touch when recording was continuous; a hole between
them is a gap (the camera was offline, or nothing was recorded).
"""

from sqlalchemy import BigInteger, Column, Index
from sqlmodel import Field, SQLModel


class Segment(SQLModel, table=True):
    __tablename__ = "archive_segments"
    __table_args__ = (Index("ix_archive_segments_camera_start", "camera_id", "stream", "start_us"),)

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
