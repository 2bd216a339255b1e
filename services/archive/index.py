"""Reads and writes of the recordings index (the archive_segments table)."""

from sqlalchemy import Engine
from sqlmodel import select

from services.archive.models import Segment
from services.common.db import session


def insert(engine: Engine, segment: Segment) -> None:
    """Insert a segment row; inserting the same segment twice is a no-op (retries are safe)."""
    with session(engine) as s:
        if s.get(Segment, segment.id) is None:
            s.add(segment)
            s.commit()


def overlapping(engine: Engine, camera_id: str, stream: str, start_us: int, end_us: int) -> list[Segment]:
    """Segments of a camera that overlap [start_us, end_us), in time order."""
    with session(engine) as s:
        query = (
            select(Segment)
            .where(Segment.camera_id == camera_id, Segment.stream == stream)
            .where(Segment.start_us < end_us, Segment.end_us > start_us)
            .order_by(Segment.start_us)
        )
        return list(s.exec(query))


def get(engine: Engine, segment_id: str) -> Segment | None:
    with session(engine) as s:
        return s.get(Segment, segment_id)
