"""The shift journal (main courante): what operators saw and did, shift by shift.

An entry has the time of the event, the cameras involved, a category, a description, the actions
taken, and bookmarks (a camera and an instant) that the playback timeline shows. Entries are never
changed: a correction is a new entry that names the one it amends, so the journal stays a faithful
record of what was written when.

Shifts change at fixed local times (CSU_SHIFT_CHANGES, Europe/Paris, e.g. 06:00, 14:00, 22:00);
the handover summary of a shift lists its entries and what is still open (alarms, calls).
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import Engine
from sqlmodel import col, select

from services.common.clock import Clock, from_us, to_us
from services.common.db import session
from services.common.timefmt import PARIS, paris_day
from services.gateway.errors import Refusal
from services.gateway.operations.models import JournalBookmark, JournalEntry

CATEGORIES: dict[str, str] = {
    "disturbance": "trouble à l'ordre public",
    "traffic": "circulation",
    "event_security": "sécurisation d'événement",
    "police_assistance": "assistance aux forces de l'ordre",
    "other": "autre",
}
ACTIONS: dict[str, str] = {
    "police_called": "police nationale appelée",
    "municipal_police_called": "police municipale appelée",
    "fire_brigade_called": "pompiers appelés",
    "ambulance_called": "secours médicaux appelés",
    "bollard_opened": "borne abaissée",
    "bollard_closed": "borne relevée",
    "camera_followed": "suivi caméra",
    "requisition_expected": "réquisition attendue",
    "none": "aucune",
    "other": "autre",
}


class JournalError(Refusal):
    """A refusal of this domain (errors.Refusal: status and message)."""


@dataclass(frozen=True)
class NewBookmark:
    camera_id: str
    at_us: int
    label: str


@dataclass(frozen=True)
class NewEntry:
    occurred_us: int
    category: str
    description: str
    actions: list[str]
    actions_note: str
    camera_ids: list[str]
    bookmarks: list[NewBookmark]
    amends: int | None


def write(
    engine: Engine, clock: Clock, new: NewEntry, author: str, role: str
) -> tuple[JournalEntry, list[JournalBookmark]]:
    with session(engine) as s:
        if new.amends is not None and s.get(JournalEntry, new.amends) is None:
            raise JournalError(422, f"entry {new.amends} (amends) does not exist")
        entry = JournalEntry(
            occurred_us=new.occurred_us,
            created_us=to_us(clock.now()),
            author=author,
            author_role=role,
            category=new.category,
            description=new.description,
            actions=list(new.actions),
            actions_note=new.actions_note,
            camera_ids=list(new.camera_ids),
            amends=new.amends,
        )
        s.add(entry)
        s.flush()
        assert entry.id is not None
        marks = [
            JournalBookmark(entry_id=entry.id, camera_id=m.camera_id, at_us=m.at_us, label=m.label)
            for m in new.bookmarks
        ]
        s.add_all(marks)
        s.commit()
        s.refresh(entry)
        for mark in marks:
            s.refresh(mark)
        return entry, marks


def unknown(entry_id: int) -> JournalError:
    """The one answer for an entry that does not exist and for one about cameras the caller may not see."""
    return JournalError(404, f"unknown journal entry {entry_id}")


def get(engine: Engine, entry_id: int) -> tuple[JournalEntry, list[JournalBookmark]]:
    with session(engine) as s:
        entry = s.get(JournalEntry, entry_id)
        if entry is None:
            raise unknown(entry_id)
        marks = list(s.exec(select(JournalBookmark).where(JournalBookmark.entry_id == entry_id)))
        return entry, marks


def entries(
    engine: Engine,
    *,
    start_us: int,
    end_us: int,
    category: str | None = None,
    camera_id: str | None = None,
    limit: int = 1000,
) -> list[tuple[JournalEntry, list[JournalBookmark]]]:
    """Entries whose event happened in [start, end), oldest first, with their bookmarks."""
    query = select(JournalEntry).where(JournalEntry.occurred_us >= start_us).where(JournalEntry.occurred_us < end_us)
    if category:
        query = query.where(JournalEntry.category == category)
    with session(engine) as s:
        rows = list(s.exec(query.order_by(col(JournalEntry.occurred_us), col(JournalEntry.id)).limit(limit)))
        if camera_id:
            # camera_ids is a JSON list (portable across SQLite and PostgreSQL): filtered here.
            rows = [r for r in rows if camera_id in r.camera_ids]
        ids = [r.id for r in rows]
        marks: dict[int, list[JournalBookmark]] = {}
        if ids:
            for mark in s.exec(select(JournalBookmark).where(col(JournalBookmark.entry_id).in_(ids))):
                marks.setdefault(mark.entry_id, []).append(mark)
        return [(r, marks.get(r.id or 0, [])) for r in rows]


def bookmarks(engine: Engine, camera_id: str, start_us: int, end_us: int, limit: int = 1000) -> list[JournalBookmark]:
    """A camera's bookmarks in [start, end): what the playback timeline marks."""
    with session(engine) as s:
        return list(
            s.exec(
                select(JournalBookmark)
                .where(JournalBookmark.camera_id == camera_id)
                .where(JournalBookmark.at_us >= start_us)
                .where(JournalBookmark.at_us < end_us)
                .order_by(col(JournalBookmark.at_us))
                .limit(limit)
            )
        )


def counts(engine: Engine, start_us: int, end_us: int) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Entries per category whose event happened in [start, end): overall, and per Paris day."""
    with session(engine) as s:
        rows = list(
            s.exec(
                select(JournalEntry.category, JournalEntry.occurred_us)
                .where(JournalEntry.occurred_us >= start_us)
                .where(JournalEntry.occurred_us < end_us)
            )
        )
    overall: Counter[str] = Counter()
    per_day: dict[str, Counter[str]] = {}
    for category, occurred_us in rows:
        overall[category] += 1
        per_day.setdefault(paris_day(occurred_us), Counter())[category] += 1

    def listed(found: Counter[str]) -> dict[str, int]:
        return {name: found.get(name, 0) for name in CATEGORIES} | {
            k: v for k, v in found.items() if k not in CATEGORIES
        }

    return listed(overall), {day: listed(found) for day, found in sorted(per_day.items())}


# -- shifts ------------------------------------------------------------------------------------


def shift_times(changes: str) -> list[time]:
    return sorted({time.fromisoformat(t) for t in changes.split(",")})


def shift_bounds(changes: str, at_us: int) -> tuple[int, int]:
    """[start, end) of the shift that `at` falls in, as microseconds (local change times, Paris)."""
    local = from_us(at_us).astimezone(PARIS)
    times = shift_times(changes)
    candidates: list[datetime] = []
    for day_offset in (-1, 0, 1):
        day = local.date() + timedelta(days=day_offset)
        candidates += [datetime.combine(day, t, PARIS) for t in times]
    # Computed on UTC instants: a change time skipped or doubled by daylight saving stays ordered.
    instants = sorted({to_us(c) for c in candidates})
    start = max(i for i in instants if i <= at_us)
    end = min(i for i in instants if i > at_us)
    return start, end
