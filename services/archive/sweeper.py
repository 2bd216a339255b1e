"""The retention sweeper: deletes every segment older than its camera's retention, to the minute.

Each run, per camera and stream, in batches of CSU_ARCHIVE_SWEEP_BATCH (one S3 multi-object
delete each): the objects are deleted first, then — in one database transaction — their index
rows, while their camera-hour's deletion proof grows by what was deleted (count, bytes, times,
hashes). If the process dies between the two, the rows are still there and the next run deletes
the (already absent) objects again and writes the proof: a deletion always ends with its proof.

A segment goes as soon as its *start* passes the cutoff, so no second of footage outlives the
retention (at most one segment's worth goes early). The retention is the camera's, from ingest,
clamped to the legal 30 days here again, whatever configuration slipped through.

Holds (citizens' access requests, see holds.py) keep the segments they cover, never past 30 days
from capture.

For a store without its own lifecycle engine (the local directory), the sweeper also applies the
bucket's lifecycle rule, hourly, as S3 would: the backstop for objects the index does not know.

`dry_run` answers what a sweep would delete now (per camera and stream: count, bytes, oldest), with
the same cutoffs and holds, and deletes nothing: `csuctl segments sweep --dry-run` through
ArchiveService.DryRunSweep. It counts indexed segments only, not what the backstop would remove.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import ColumnElement, Engine, and_, func
from sqlmodel import col, select

from services.archive import index, lifecycle
from services.archive.holds import HoldBook
from services.archive.models import DeletionProof, Segment
from services.archive.retention import RetentionPolicy
from services.common.clock import Clock, to_us
from services.common.db import session
from services.common.log import get_logger
from services.common.objectstore import ObjectStore
from services.common.settings import LEGAL_MAX_RETENTION_DAYS
from services.common.timefmt import DAY_US

log = get_logger(__name__)
SWEPT = Counter("csu_archive_segments_swept_total", "Segments deleted by the retention sweeper", ["camera"])
BACKSTOP_INTERVAL = timedelta(hours=1)


@dataclass
class SweepResult:
    deleted: int = 0
    bytes: int = 0
    proofs: list[DeletionProof] = field(default_factory=list)
    backstop_deleted: int = 0


@dataclass(frozen=True)
class PendingDeletion:
    """What a sweep now would delete of one camera's stream (a dry run)."""

    camera_id: str
    stream: str
    retention_days: int
    cutoff_us: int
    count: int
    bytes: int
    oldest_us: int | None
    newest_us: int | None
    # Past the cutoff but kept by a hold (citizens' access request).
    held: int


class Sweeper:
    def __init__(
        self,
        engine: Engine,
        store: ObjectStore,
        clock: Clock,
        retention: RetentionPolicy,
        batch: int = 1000,
        holds: HoldBook | None = None,
    ) -> None:
        self._engine = engine
        self._store = store
        self._clock = clock
        self._retention = retention
        self._batch = max(1, min(batch, 1000))
        self._last_backstop: datetime | None = None
        self._holds = holds

    def sweep(self) -> SweepResult:
        result = SweepResult()
        now = self._clock.now()
        now_us = to_us(now)
        for camera_id, stream in index.cameras(self._engine):
            days = min(self._retention.days_for(camera_id), LEGAL_MAX_RETENTION_DAYS)
            cutoff_us = now_us - days * DAY_US
            while True:
                if self._holds is not None:
                    rows = self._holds.expired_unheld(camera_id, stream, cutoff_us, self._batch, now_us)
                else:
                    rows = index.expired(self._engine, camera_id, stream, cutoff_us, self._batch)
                if not rows:
                    break
                self._store.delete_many([r.object_key for r in rows])
                proofs = index.delete_with_proofs(self._engine, rows, now_us, days)
                result.deleted += len(rows)
                result.bytes += sum(r.bytes for r in rows)
                result.proofs.extend(proofs)
                SWEPT.labels(camera_id).inc(len(rows))
                if len(rows) < self._batch:
                    break
            index.delete_gaps_before(self._engine, camera_id, cutoff_us)
        if result.deleted:
            log.info("retention sweep", deleted=result.deleted, bytes=result.bytes, proofs=len(result.proofs))
        if not self._store.expires_by_itself and (
            self._last_backstop is None or now - self._last_backstop >= BACKSTOP_INTERVAL
        ):
            result.backstop_deleted = lifecycle.apply_expiry_rules(self._store, now, self._batch)
            self._last_backstop = now
        return result

    def dry_run(self, camera_id: str = "") -> list[PendingDeletion]:
        """What sweep() would delete now, per camera (every camera when "") and stream; deletes nothing."""
        now_us = to_us(self._clock.now())
        pending = []
        for camera, stream in index.cameras(self._engine):
            if camera_id and camera != camera_id:
                continue
            days = min(self._retention.days_for(camera), LEGAL_MAX_RETENTION_DAYS)
            cutoff_us = now_us - days * DAY_US
            past = and_(
                col(Segment.camera_id) == camera, col(Segment.stream) == stream, col(Segment.start_us) < cutoff_us
            )
            # The very condition sweep() deletes by (expired_unheld), so the two cannot disagree.
            swept = self._holds.unheld_condition(camera, stream, cutoff_us, now_us) if self._holds is not None else past
            count, size, oldest, newest = self._totals(swept)
            past_count = self._totals(past)[0] if self._holds is not None else count
            pending.append(
                PendingDeletion(camera, stream, days, cutoff_us, count, size, oldest, newest, past_count - count)
            )
        return pending

    def _totals(self, condition: ColumnElement[bool]) -> tuple[int, int, int | None, int | None]:
        size = func.coalesce(func.sum(Segment.bytes), 0)
        query = select(func.count(), size, func.min(Segment.start_us), func.max(Segment.start_us)).where(condition)
        with session(self._engine) as s:
            count, total, oldest, newest = s.exec(query).one()
        return int(count), int(total), oldest, newest
