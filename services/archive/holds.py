"""Holds: a camera's footage frozen against the retention sweep while a citizen's access request
is open (the right of access must not be defeated by the purge while the request is handled).

Rules, all applied here so the sweeper and the readers inherit them:
- a hold covers [start_us, end_us) of one camera (every stream) until `until_us`, unless released;
- a segment is kept by a hold only while now < min(until_us, its capture + 30 days): the legal
  maximum always wins, so no hold can make footage outlive it;
- held segments stay readable (the operator searches them, masking redacts them) on the same
  terms; everything else is read and swept on the camera's own retention as before;
- while any hold is active, the bucket's lifecycle backstop is set for the legal maximum (30 + 1
  days) so it does not delete held footage the sweeper keeps.
"""

import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Engine, and_, not_, or_
from sqlmodel import col, select

from services.archive.models import Hold, Segment
from services.common.clock import Clock, to_us
from services.common.db import session
from services.common.settings import LEGAL_MAX_RETENTION_DAYS
from services.common.subjects import check_camera_id
from services.common.timefmt import DAY_US

LEGAL_US = LEGAL_MAX_RETENTION_DAYS * DAY_US
HOLD_ID = re.compile(r"^[A-Za-z0-9_:-]{1,128}$")


class HoldError(ValueError):
    """A hold request refused; the message says why."""


class UnknownHold(KeyError):
    pass


@dataclass(frozen=True)
class HeldRange:
    start_us: int
    end_us: int


class HoldBook:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def _now_us(self) -> int:
        return to_us(self._clock.now())

    def place(
        self, hold_id: str, camera_id: str, start_us: int, end_us: int, until_us: int, reason: str, actor: str
    ) -> Hold:
        """Create the hold, or update it when the id exists (released holds come back to life)."""
        if not HOLD_ID.fullmatch(hold_id):
            raise HoldError(f"invalid hold id {hold_id!r}: 1-128 letters, digits, '-', '_' or ':'")
        try:
            check_camera_id(camera_id)
        except ValueError as exc:
            raise HoldError(str(exc)) from exc
        now = self._now_us()
        if start_us >= end_us:
            raise HoldError("start must be before end")
        if end_us - start_us > LEGAL_US:
            raise HoldError(f"a hold covers at most {LEGAL_MAX_RETENTION_DAYS} days of footage")
        if until_us <= now:
            raise HoldError("the hold would end in the past")
        if end_us <= now - LEGAL_US:
            raise HoldError(f"that footage is older than the legal {LEGAL_MAX_RETENTION_DAYS} days: nothing to hold")
        # No segment of the range may be kept past its capture + 30 days: past that instant the
        # hold can keep nothing, so it is clamped there.
        until_us = min(until_us, end_us + LEGAL_US)
        with session(self._engine) as s:
            row = s.get(Hold, hold_id)
            if row is None:
                row = Hold(id=hold_id, camera_id=camera_id, start_us=0, end_us=0, until_us=0, created_us=now)
            row.camera_id, row.start_us, row.end_us, row.until_us = camera_id, start_us, end_us, until_us
            row.reason, row.actor, row.released_us = reason[:500], actor[:200], None
            s.add(row)
            s.commit()
            s.refresh(row)
            return row

    def release(self, hold_id: str, actor: str) -> Hold:
        with session(self._engine) as s:
            row = s.get(Hold, hold_id)
            if row is None:
                raise UnknownHold(hold_id)
            if row.released_us is None:
                row.released_us = self._now_us()
                row.actor = actor[:200] or row.actor
                s.add(row)
                s.commit()
                s.refresh(row)
            return row

    def listing(self, camera_id: str = "", include_released: bool = False) -> list[Hold]:
        with session(self._engine) as s:
            query = select(Hold)
            if camera_id:
                query = query.where(Hold.camera_id == camera_id)
            if not include_released:
                query = query.where(col(Hold.released_us).is_(None), col(Hold.until_us) > self._now_us())
            return list(s.exec(query.order_by(col(Hold.camera_id), col(Hold.start_us))))

    def held_ranges(self, camera_id: str, now_us: int) -> list[HeldRange]:
        """The camera's active holds' ranges (their until is still ahead)."""
        with session(self._engine) as s:
            query = select(Hold.start_us, Hold.end_us).where(
                Hold.camera_id == camera_id,
                col(Hold.released_us).is_(None),
                Hold.until_us > now_us,
            )
            return [HeldRange(a, b) for a, b in s.exec(query)]

    def any_active(self) -> bool:
        with session(self._engine) as s:
            query = (
                select(col(Hold.id))
                .where(col(Hold.released_us).is_(None), col(Hold.until_us) > self._now_us())
                .limit(1)
            )
            return s.exec(query).first() is not None

    def backstop_days(self, longest_retention_days: int) -> int:
        """Days the recordings' lifecycle rule must allow: the legal maximum while anything is held."""
        return LEGAL_MAX_RETENTION_DAYS if self.any_active() else longest_retention_days

    def read_cutoff(self, camera_id: str, base_cutoff_us: int, start_us: int, end_us: int, now_us: int) -> int:
        """Footage of [start_us, end_us) that started before the returned instant is past retention.

        The camera's own cutoff, moved back (never before now - 30 days) to the earliest active
        hold overlapping the range.
        """
        starts = [
            h.start_us for h in self.held_ranges(camera_id, now_us) if h.start_us < end_us and h.end_us > start_us
        ]
        if not starts:
            return base_cutoff_us
        return min(base_cutoff_us, max(now_us - LEGAL_US, min(starts)))

    def expired_unheld(self, camera_id: str, stream: str, cutoff_us: int, limit: int, now_us: int) -> list[Segment]:
        """The camera's oldest segments past `cutoff_us` that no active hold keeps, at most `limit`."""
        condition = self.unheld_condition(camera_id, stream, cutoff_us, now_us)
        with session(self._engine) as s:
            return list(s.exec(select(Segment).where(condition).order_by(col(Segment.start_us)).limit(limit)))

    def unheld_condition(self, camera_id: str, stream: str, cutoff_us: int, now_us: int) -> ColumnElement[bool]:
        """Which of the camera's segments are past `cutoff_us` and kept by no active hold (the sweep's
        choice, also counted by its dry run)."""
        condition = and_(
            col(Segment.camera_id) == camera_id, col(Segment.stream) == stream, col(Segment.start_us) < cutoff_us
        )
        held = self.held_ranges(camera_id, now_us)
        if held:
            overlaps = or_(*[and_(col(Segment.start_us) < h.end_us, col(Segment.end_us) > h.start_us) for h in held])
            # Held, and still within the legal 30 days of its capture: kept.
            condition = and_(condition, not_(and_(col(Segment.start_us) > now_us - LEGAL_US, overlaps)))
        return condition
