"""Redaction jobs in masking's database: queued by any replica, run by whichever claims them.

    queued -> running -> done | failed | cancelled;   done -> expired (clip deleted)

A replica claims a queued job with a compare-and-set on its status, so each job runs once; the
worker writes its progress (a heartbeat) every second and reads back whether cancellation was
asked. A running job whose worker fell silent for STALE_S (its replica died) is queued again.
"""

import json
import uuid

from sqlalchemy import Engine, update
from sqlmodel import col, select

from services.common import db
from services.common.clock import Clock, to_us
from services.common.refusals import Conflict, NotFound
from services.masking.models import RedactionJobRow

QUEUED, RUNNING, DONE, FAILED, CANCELLED, EXPIRED = "queued", "running", "done", "failed", "cancelled", "expired"
FINISHED = (DONE, FAILED, CANCELLED, EXPIRED)
STALE_S = 60.0


class RedactionJobs:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def now(self) -> int:
        return to_us(self.clock.now())

    def create(
        self,
        camera_id: str,
        start_us: int,
        end_us: int,
        mode: str,
        effect: str,
        selection: list[dict],
        expires_us: int,
        actor: str,
        request_ref: str,
    ) -> RedactionJobRow:
        row = RedactionJobRow(
            id=uuid.uuid4().hex,
            camera_id=camera_id,
            start_us=start_us,
            end_us=end_us,
            mode=mode,
            effect=effect,
            selection_json=json.dumps(selection),
            status=QUEUED,
            actor=actor,
            request_ref=request_ref,
            created_us=self.now(),
            expires_us=expires_us,
        )
        with db.session(self.engine) as s:
            s.add(row)
            s.commit()
        return row

    def get(self, job_id: str) -> RedactionJobRow:
        with db.session(self.engine) as s:
            row = s.get(RedactionJobRow, job_id)
        if row is None:
            raise NotFound(f"no redaction job {job_id!r}")
        return row

    def of_camera(self, camera_id: str = "") -> list[RedactionJobRow]:
        query = select(RedactionJobRow)
        if camera_id:
            query = query.where(RedactionJobRow.camera_id == camera_id)
        with db.session(self.engine) as s:
            return list(s.exec(query.order_by(col(RedactionJobRow.created_us))).all())

    def cancel(self, job_id: str) -> RedactionJobRow:
        with db.session(self.engine) as s:
            row = s.get(RedactionJobRow, job_id)
            if row is None:
                raise NotFound(f"no redaction job {job_id!r}")
            if row.status in FINISHED:
                raise Conflict(f"job {job_id} is already {row.status}")
            if row.status == QUEUED:
                row.status, row.finished_us = CANCELLED, self.now()
            row.cancel_requested = True
            s.add(row)
            s.commit()
            return row

    def claim(self, worker: str) -> RedactionJobRow | None:
        with db.session(self.engine) as s:
            candidates = s.exec(
                select(RedactionJobRow.id)
                .where(RedactionJobRow.status == QUEUED)
                .order_by(col(RedactionJobRow.created_us))
                .limit(5)
            ).all()
            for job_id in candidates:
                result = s.exec(
                    update(RedactionJobRow)
                    .where(col(RedactionJobRow.id) == job_id, col(RedactionJobRow.status) == QUEUED)
                    .values(status=RUNNING, worker=worker, heartbeat_us=self.now(), progress=0.0)
                )
                s.commit()
                if result.rowcount == 1:
                    return s.get(RedactionJobRow, job_id, populate_existing=True)
        return None

    def heartbeat(self, job_id: str, worker: str, progress: float) -> bool:
        """Record progress; True when the job must stop (cancelled, or no longer ours)."""
        with db.session(self.engine) as s:
            row = s.get(RedactionJobRow, job_id)
            if row is None or row.worker != worker or row.status != RUNNING:
                return True
            row.progress, row.heartbeat_us = max(0.0, min(1.0, progress)), self.now()
            s.add(row)
            s.commit()
            return row.cancel_requested

    def finish(self, job_id: str, worker: str, status: str, **fields: object) -> bool:
        """Record the outcome; False when the job is no longer this worker's (expired, requeued)."""
        with db.session(self.engine) as s:
            row = s.get(RedactionJobRow, job_id)
            if row is None or row.worker != worker or row.status != RUNNING:
                return False
            row.status, row.finished_us = status, self.now()
            if status == DONE:
                row.progress = 1.0
            for name, value in fields.items():
                setattr(row, name, value)
            s.add(row)
            s.commit()
            return True

    def requeue_stale(self) -> int:
        limit = self.now() - int(STALE_S * 1e6)
        with db.session(self.engine) as s:
            result = s.exec(
                update(RedactionJobRow)
                .where(col(RedactionJobRow.status) == RUNNING, col(RedactionJobRow.heartbeat_us) < limit)
                .values(status=QUEUED, worker="", progress=0.0)
            )
            s.commit()
            return result.rowcount

    def due_for_expiry(self) -> list[RedactionJobRow]:
        with db.session(self.engine) as s:
            return list(
                s.exec(
                    select(RedactionJobRow).where(
                        RedactionJobRow.expires_us <= self.now(), RedactionJobRow.status != EXPIRED
                    )
                ).all()
            )

    def mark_expired(self, job_id: str) -> None:
        with db.session(self.engine) as s:
            row = s.get(RedactionJobRow, job_id)
            if row is None:
                return
            if row.status in (QUEUED, RUNNING):
                row.cancel_requested = True
            row.status, row.object_key, row.track_json = EXPIRED, "", ""
            s.add(row)
            s.commit()
