"""Reads and writes of the recordings index (archive_segments, archive_gaps, archive_deletion_proofs)."""

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, text
from sqlmodel import col, select

from services.archive.models import DeletionProof, Gap, Segment
from services.common.db import session
from services.common.subjects import STREAMS
from services.common.timefmt import HOUR_US

# No segment is longer than this (CSU_SEGMENT_DURATION_S is at most 600 s, and a segment ends on
# the first keyframe after it, at most 2 s later): overlap queries then scan only a bounded slice
# of the (camera_id, stream, start_us) index instead of every older row of the camera.
MAX_SEGMENT_US = 11 * 60 * 1_000_000


def insert(engine: Engine, segment: Segment) -> bool:
    """Insert a segment row; inserting the same segment twice is a no-op (retries are safe).

    True when the row was new.
    """
    with session(engine) as s:
        if s.get(Segment, segment.id) is None:
            s.add(segment)
            s.commit()
            return True
    return False


def overlapping(engine: Engine, camera_id: str, stream: str, start_us: int, end_us: int) -> list[Segment]:
    """Segments of a camera that overlap [start_us, end_us), in time order."""
    with session(engine) as s:
        query = (
            select(Segment)
            .where(Segment.camera_id == camera_id, Segment.stream == stream)
            .where(Segment.start_us < end_us, Segment.start_us > start_us - MAX_SEGMENT_US)
            .where(Segment.end_us > start_us)
            .order_by(col(Segment.start_us))
        )
        return list(s.exec(query))


def spans(engine: Engine, camera_id: str, stream: str, start_us: int, end_us: int) -> list[tuple[int, int]]:
    """(start_us, end_us) of the segments overlapping the range, in time order (the timeline's input)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT start_us, end_us FROM archive_segments"
                " WHERE camera_id = :cam AND stream = :stream"
                " AND start_us < :end AND start_us > :low AND end_us > :start ORDER BY start_us"
            ),
            {"cam": camera_id, "stream": stream, "start": start_us, "end": end_us, "low": start_us - MAX_SEGMENT_US},
        )
        return [(int(a), int(b)) for a, b in rows]


def get(engine: Engine, segment_id: str) -> Segment | None:
    with session(engine) as s:
        return s.get(Segment, segment_id)


def by_key(engine: Engine, keys: Iterable[str]) -> dict[str, Segment]:
    wanted = list(keys)
    found: dict[str, Segment] = {}
    with session(engine) as s:
        for i in range(0, len(wanted), 500):
            for row in s.exec(select(Segment).where(col(Segment.object_key).in_(wanted[i : i + 500]))):
                found[row.object_key] = row
    return found


def chain(
    engine: Engine, camera_id: str, stream: str, start_us: int | None = None, end_us: int | None = None
) -> Iterator[Segment]:
    """Every segment of the camera (in [start_us, end_us) when given) in chain order, lazily."""
    with session(engine) as s:
        query = select(Segment).where(Segment.camera_id == camera_id, Segment.stream == stream)
        if start_us is not None:
            query = query.where(Segment.start_us >= start_us)
        if end_us is not None:
            query = query.where(Segment.start_us < end_us)
        yield from s.exec(query.order_by(col(Segment.start_us)).execution_options(yield_per=1000))


def predecessor(engine: Engine, camera_id: str, stream: str, start_us: int) -> Segment | None:
    """The camera's last segment starting before start_us."""
    with session(engine) as s:
        query = (
            select(Segment)
            .where(Segment.camera_id == camera_id, Segment.stream == stream, Segment.start_us < start_us)
            .order_by(col(Segment.start_us).desc())
            .limit(1)
        )
        return s.exec(query).first()


def last(engine: Engine, camera_id: str, stream: str) -> Segment | None:
    """The head of the camera's chain: its latest segment."""
    with session(engine) as s:
        query = (
            select(Segment)
            .where(Segment.camera_id == camera_id, Segment.stream == stream)
            .order_by(col(Segment.start_us).desc())
            .limit(1)
        )
        return s.exec(query).first()


def cameras(engine: Engine) -> list[tuple[str, str]]:
    """(camera_id, stream) pairs that have segments.

    A loose index scan (one index probe per camera, then one per stream) rather than SELECT
    DISTINCT, which would read every row: the sweeper asks every minute, on millions of rows.
    """
    walk = text(
        "WITH RECURSIVE cams(cam) AS ("
        " SELECT MIN(camera_id) FROM archive_segments"
        " UNION ALL"
        " SELECT (SELECT MIN(camera_id) FROM archive_segments WHERE camera_id > cams.cam)"
        " FROM cams WHERE cams.cam IS NOT NULL"
        ") SELECT cam FROM cams WHERE cam IS NOT NULL"
    )
    probe = text("SELECT 1 FROM archive_segments WHERE camera_id = :cam AND stream = :stream LIMIT 1")
    found: list[tuple[str, str]] = []
    with engine.connect() as conn:
        for (cam,) in conn.execute(walk):
            for stream in STREAMS:
                if conn.execute(probe, {"cam": cam, "stream": stream}).first() is not None:
                    found.append((cam, stream))
    return found


def camera_ids(engine: Engine) -> list[str]:
    return sorted({cam for cam, _ in cameras(engine)})


def expired(engine: Engine, camera_id: str, stream: str, cutoff_us: int, limit: int) -> list[Segment]:
    """The camera's oldest segments that started before cutoff_us, at most `limit`."""
    with session(engine) as s:
        query = (
            select(Segment)
            .where(Segment.camera_id == camera_id, Segment.stream == stream, Segment.start_us < cutoff_us)
            .order_by(col(Segment.start_us))
            .limit(limit)
        )
        return list(s.exec(query))


def delete_rows(engine: Engine, segment_ids: Sequence[str]) -> None:
    with session(engine) as s:
        s.exec(delete(Segment).where(col(Segment.id).in_(segment_ids)))
        s.commit()


# -- deletion proofs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletedSegment:
    start_us: int
    bytes: int
    sha256: str


def proof_digest(proof: DeletionProof) -> str:
    """SHA-256 over a proof's fields, in this exact text form, so an auditor can recompute it:

    "<camera_id>|<stream>|<hour_start_us>|<count>|<bytes>|<first_us>|<last_us>|<sha256s space-separated>"
    """
    canonical = "|".join(
        str(v)
        for v in (
            proof.camera_id,
            proof.stream,
            proof.hour_start_us,
            proof.count,
            proof.bytes,
            proof.first_us,
            proof.last_us,
            proof.sha256s,
        )
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def delete_with_proofs(
    engine: Engine, rows: Sequence[Segment], swept_us: int, retention_days: int
) -> list[DeletionProof]:
    """Remove the rows and add them to their camera-hour's deletion proof, in one transaction."""
    if not rows:
        return []
    by_hour: dict[tuple[str, str, int], list[Segment]] = {}
    for row in sorted(rows, key=lambda r: r.start_us):
        by_hour.setdefault((row.camera_id, row.stream, row.start_us - row.start_us % HOUR_US), []).append(row)
    proofs: list[DeletionProof] = []
    with session(engine) as s:
        s.exec(delete(Segment).where(col(Segment.id).in_([r.id for r in rows])))
        for (camera_id, stream, hour), deleted in by_hour.items():
            proof = s.exec(
                select(DeletionProof).where(
                    DeletionProof.camera_id == camera_id,
                    DeletionProof.stream == stream,
                    DeletionProof.hour_start_us == hour,
                )
            ).first()
            hashes = [r.sha256 for r in deleted]
            if proof is None:
                proof = DeletionProof(
                    camera_id=camera_id,
                    stream=stream,
                    hour_start_us=hour,
                    count=0,
                    bytes=0,
                    first_us=deleted[0].start_us,
                    last_us=deleted[-1].end_us,
                    sha256s="",
                    digest="",
                    swept_us=swept_us,
                    retention_days=retention_days,
                )
            proof.count += len(deleted)
            proof.bytes += sum(r.bytes for r in deleted)
            proof.first_us = min(proof.first_us, deleted[0].start_us)
            proof.last_us = max(proof.last_us, max(r.end_us for r in deleted))
            proof.sha256s = " ".join([*proof.sha256s.split(), *hashes])
            proof.swept_us = swept_us
            proof.retention_days = retention_days
            proof.digest = proof_digest(proof)
            s.add(proof)
            proofs.append(proof)
        s.commit()
    return proofs


def unaudited_proofs(engine: Engine, limit: int) -> list[DeletionProof]:
    """Proofs whose latest erasures are not in the audit trail yet, oldest hours first."""
    with session(engine) as s:
        query = select(DeletionProof).where(DeletionProof.audited_digest != DeletionProof.digest)
        return list(s.exec(query.order_by(col(DeletionProof.hour_start_us), col(DeletionProof.id)).limit(limit)))


def mark_audited(engine: Engine, audited: Sequence[DeletionProof]) -> None:
    """Record that these proofs, as they were read, are in the audit trail (one that grew since stays due)."""
    with session(engine) as s:
        for proof in audited:
            row = s.get(DeletionProof, proof.id)
            if row is not None and row.digest == proof.digest:
                row.audited_digest = proof.digest
                s.add(row)
        s.commit()


def proofs(engine: Engine, camera_id: str = "", start_us: int = 0, end_us: int = 0) -> list[DeletionProof]:
    with session(engine) as s:
        query = select(DeletionProof)
        if camera_id:
            query = query.where(DeletionProof.camera_id == camera_id)
        if end_us:
            query = query.where(DeletionProof.hour_start_us < end_us, DeletionProof.hour_start_us + HOUR_US > start_us)
        order = (col(DeletionProof.camera_id), col(DeletionProof.stream), col(DeletionProof.hour_start_us))
        return list(s.exec(query.order_by(*order)))


def deleted_hashes(engine: Engine, camera_id: str, stream: str) -> set[str]:
    """Every segment hash the sweeper deleted for the camera (chain links that may be absent)."""
    found: set[str] = set()
    with session(engine) as s:
        query = select(DeletionProof.sha256s).where(
            DeletionProof.camera_id == camera_id, DeletionProof.stream == stream
        )
        for hashes in s.exec(query):
            found.update(hashes.split())
    return found


# -- gaps ----------------------------------------------------------------------------------------


def add_gap(engine: Engine, gap: Gap) -> None:
    with session(engine) as s:
        s.add(gap)
        s.commit()


def gaps(engine: Engine, camera_id: str, stream: str, start_us: int, end_us: int) -> list[Gap]:
    with session(engine) as s:
        query = (
            select(Gap)
            .where(Gap.camera_id == camera_id, Gap.stream == stream)
            .where(Gap.start_us < end_us, Gap.end_us > start_us)
            .order_by(col(Gap.start_us))
        )
        return list(s.exec(query))


def lost_hashes(engine: Engine, camera_id: str, stream: str) -> set[str]:
    """Hashes of segments whose object was found missing by a reconcile (recorded in gap details)."""
    with session(engine) as s:
        query = select(Gap.detail).where(
            Gap.camera_id == camera_id, Gap.stream == stream, Gap.reason == "object_missing"
        )
        return {word for detail in s.exec(query) for word in detail.split() if len(word) == 64}


def delete_gaps_before(engine: Engine, camera_id: str, cutoff_us: int) -> int:
    """Gap records wholly older than retention go with the footage they describe."""
    with session(engine) as s:
        result = s.exec(delete(Gap).where(col(Gap.camera_id) == camera_id, col(Gap.end_us) < cutoff_us))
        s.commit()
        return int(result.rowcount or 0)


def count(engine: Engine) -> int:
    with session(engine) as s:
        return int(s.exec(select(func.count()).select_from(Segment)).one())
