"""The shift journal (main courante): writing and reading entries, the handover summary, the counts
per category for the city's reports, and the bookmarks the playback timeline shows.

Writing and reading need "live" (operators, supervisors, managers: those who watch) and are the
city's own staff's; naming a camera, or bookmarking one, needs "live" on it. Entries about cameras
outside a reader's habilitation are not shown to them. Counts are also open to auditors. Bookmarks
of a camera are read with "playback" on it, like its timeline.
"""

import asyncio
from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.common.clock import to_us
from services.common.timefmt import DAY_US, iso, paris_day_bounds
from services.gateway.backends import Backends, BackendsDep
from services.gateway.identity.security import ALL_GROUPS, Principal, audit, check_camera, refuse, require
from services.gateway.operations import alarms, bollards, journal
from services.gateway.operations.access import groups_by_camera, require_any, sees_camera
from services.gateway.operations.fields import CAMERA_ID, MAX_ID, line, text
from services.gateway.operations.models import Alarm, JournalBookmark, JournalEntry
from services.gateway.video.timerange import checked_us, parse_instant

router = APIRouter(prefix="/api/v1", tags=["shift journal"])
EntryId = Annotated[int, Path(ge=1, le=MAX_ID)]
Category = Literal["disturbance", "traffic", "event_security", "police_assistance", "other"]
Action = Literal[
    "police_called",
    "municipal_police_called",
    "fire_brigade_called",
    "ambulance_called",
    "bollard_opened",
    "bollard_closed",
    "camera_followed",
    "requisition_expected",
    "none",
    "other",
]
# An entry may be written after the fact (end of a busy night), not about next week.
LATE_ENTRY = timedelta(days=7)
EARLY_TOLERANCE = timedelta(minutes=5)
MAX_RANGE = timedelta(days=31)
MAX_STATS_DAYS = 366
WATCH = ("live",)


class BookmarkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_id: CAMERA_ID
    at: AwareDatetime
    label: line(200, 0) = ""  # type: ignore[valid-type]


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    occurred_at: AwareDatetime | None = Field(None, description="When it happened; default: now")
    category: Category
    description: text(4000)  # type: ignore[valid-type]
    actions: list[Action] = Field(default_factory=list, max_length=10)
    actions_note: text(1000, 0) = ""  # type: ignore[valid-type]
    camera_ids: list[CAMERA_ID] = Field(default_factory=list, max_length=20)
    bookmarks: list[BookmarkIn] = Field(default_factory=list, max_length=20)
    amends: int | None = Field(None, ge=1, le=MAX_ID, description="The entry this one corrects")


class BookmarkOut(BaseModel):
    id: int
    entry_id: int
    camera_id: str
    at: str
    label: str


class EntryOut(BaseModel):
    id: int
    occurred: str
    written: str
    author: str
    category: str
    description: str
    actions: list[str]
    actions_note: str
    camera_ids: list[str]
    bookmarks: list[BookmarkOut]
    amends: int | None


class AlarmBrief(BaseModel):
    id: int
    kind: str
    camera_id: str
    message: str
    count: int
    last_raised: str


class HandoverOut(BaseModel):
    shift_start: str
    shift_end: str
    entries: list[EntryOut]
    by_category: dict[str, int]
    open_alarms: list[AlarmBrief]
    unanswered_calls: int
    bollard_commands: dict[str, int]


class StatsOut(BaseModel):
    first_day: str
    last_day: str
    total: int
    by_category: dict[str, int]
    by_day: dict[str, dict[str, int]]


def bookmark_out(m: JournalBookmark) -> BookmarkOut:
    assert m.id is not None
    return BookmarkOut(id=m.id, entry_id=m.entry_id, camera_id=m.camera_id, at=iso(m.at_us) or "", label=m.label)


def out(entry: JournalEntry, marks: list[JournalBookmark]) -> EntryOut:
    assert entry.id is not None
    return EntryOut(
        id=entry.id,
        occurred=iso(entry.occurred_us) or "",
        written=iso(entry.created_us) or "",
        author=entry.author,
        category=entry.category,
        description=entry.description,
        actions=list(entry.actions),
        actions_note=entry.actions_note,
        camera_ids=list(entry.camera_ids),
        bookmarks=[bookmark_out(m) for m in marks],
        amends=entry.amends,
    )


async def _readable(
    principal: Principal, rows: list[tuple[JournalEntry, list[JournalBookmark]]]
) -> list[tuple[JournalEntry, list[JournalBookmark]]]:
    """Entries about no camera, or about at least one camera the reader may watch."""
    groups = None
    if ALL_GROUPS not in principal.camera_groups and any(e.camera_ids for e, _ in rows):
        groups = await groups_by_camera(principal)
    return [
        (e, m)
        for e, m in rows
        if not e.camera_ids or any(sees_camera(principal, WATCH, c, groups) for c in e.camera_ids)
    ]


def _range(b: Backends, start: str | None, end: str | None) -> tuple[int, int]:
    """[start, end) from the query; default: the current shift."""
    if start is None and end is None:
        return journal.shift_bounds(b.settings.shift_changes, to_us(b.clock.now()))
    end_at = parse_instant("end", end) if end else b.clock.now()
    start_at = parse_instant("start", start) if start else end_at - timedelta(hours=24)
    start_us, end_us = checked_us("start", start_at), checked_us("end", end_at)
    if start_us >= end_us:
        raise HTTPException(422, "start must be before end")
    if end_us - start_us > MAX_RANGE.total_seconds() * 1e6:
        raise HTTPException(422, f"at most {MAX_RANGE.days} days at once")
    return start_us, end_us


@router.post("/journal", response_model=EntryOut, status_code=201)
async def write(
    body: EntryIn,
    b: BackendsDep,
    principal: Principal = Depends(require_any(*WATCH, city_staff=True)),
) -> EntryOut:
    """Log what was seen and done; an entry is never changed (write another that `amends` it)."""
    now = b.clock.now()
    occurred_us = checked_us("occurred_at", body.occurred_at) if body.occurred_at else to_us(now)
    if occurred_us > to_us(now + EARLY_TOLERANCE):
        raise HTTPException(422, "occurred_at is in the future")
    if occurred_us < to_us(now - LATE_ENTRY):
        raise HTTPException(422, f"occurred_at is more than {LATE_ENTRY.days} days ago")
    cameras = list(dict.fromkeys(body.camera_ids))
    marks: list[journal.NewBookmark] = []
    for mark in body.bookmarks:
        at_us = checked_us("bookmarks.at", mark.at)
        if at_us > to_us(now + EARLY_TOLERANCE):
            raise HTTPException(422, "a bookmark cannot point to the future")
        marks.append(journal.NewBookmark(camera_id=mark.camera_id, at_us=at_us, label=mark.label))
        if mark.camera_id not in cameras:
            cameras.append(mark.camera_id)  # a bookmarked camera is a camera of the entry
    if len(cameras) > 20:
        raise HTTPException(422, "an entry names at most 20 cameras")
    for camera_id in cameras:
        await check_camera(principal, "live", camera_id)
    if body.amends is not None:
        try:
            await asyncio.to_thread(journal.get, b.engine, body.amends)
        except journal.JournalError as exc:
            raise HTTPException(422, f"entry {body.amends} (amends) does not exist") from exc
    await audit(
        principal,
        "journal.write",
        "journal",
        details={"category": body.category, "camera_ids": cameras, "bookmarks": len(marks), "amends": body.amends},
    )
    new = journal.NewEntry(
        occurred_us=occurred_us,
        category=body.category,
        description=body.description,
        actions=list(dict.fromkeys(body.actions)),
        actions_note=body.actions_note,
        camera_ids=cameras,
        bookmarks=marks,
        amends=body.amends,
    )
    entry, saved = await asyncio.to_thread(journal.write, b.engine, b.clock, new, principal.username, principal.role)
    return out(entry, saved)


@router.get("/journal", response_model=list[EntryOut])
async def read(
    b: BackendsDep,
    start: str | None = Query(None, description="ISO 8601 with zone; default (with end): the current shift"),
    end: str | None = Query(None, description="ISO 8601 with zone"),
    category: Category | None = Query(None),
    camera_id: str | None = Query(None, pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    limit: int = Query(500, ge=1, le=1000),
    principal: Principal = Depends(require_any(*WATCH, city_staff=True)),
) -> list[EntryOut]:
    """Entries whose event happened in the range, oldest first."""
    start_us, end_us = _range(b, start, end)
    rows = await asyncio.to_thread(
        journal.entries, b.engine, start_us=start_us, end_us=end_us, category=category, camera_id=camera_id, limit=limit
    )
    return [out(e, m) for e, m in await _readable(principal, rows)]


@router.get("/journal/handover", response_model=HandoverOut)
async def handover(
    b: BackendsDep,
    at: str | None = Query(None, description="An instant of the shift (ISO 8601 with zone); default: now"),
    principal: Principal = Depends(require_any(*WATCH, city_staff=True)),
) -> HandoverOut:
    """For the supervisor taking over: the shift's entries and counts, and what is still open."""
    at_us = checked_us("at", parse_instant("at", at)) if at else to_us(b.clock.now())
    start_us, end_us = journal.shift_bounds(b.settings.shift_changes, at_us)
    rows = await _readable(
        principal, await asyncio.to_thread(journal.entries, b.engine, start_us=start_us, end_us=end_us)
    )
    by_category = {name: 0 for name in journal.CATEGORIES}
    for entry, _ in rows:
        by_category[entry.category] = by_category.get(entry.category, 0) + 1
    open_alarms: list[Alarm] = []
    if principal.may("camera_health", principal.camera_groups):
        open_alarms = await alarms.visible(principal, await asyncio.to_thread(alarms.search, b.engine, state="open"))
    calls = await asyncio.to_thread(bollards.calls, b.engine, start_us=start_us, end_us=end_us, unanswered_only=True)
    commands = await asyncio.to_thread(bollards.commands, b.engine, bollard_id=None, start_us=start_us, end_us=end_us)
    done = {"open": 0, "close": 0, "failed": 0}
    for command in commands:
        done["failed" if command.outcome != "ok" else command.command] += 1
    return HandoverOut(
        shift_start=iso(start_us) or "",
        shift_end=iso(end_us) or "",
        entries=[out(e, m) for e, m in rows],
        by_category=by_category,
        open_alarms=[
            AlarmBrief(
                id=a.id or 0,
                kind=a.kind,
                camera_id=a.camera_id,
                message=a.message,
                count=a.count,
                last_raised=iso(a.last_raised_us) or "",
            )
            for a in open_alarms
        ],
        unanswered_calls=len(calls),
        bollard_commands=done,
    )


@router.get("/journal/stats", response_model=StatsOut)
async def stats(
    b: BackendsDep,
    start: date = Query(description="First day (Europe/Paris)"),
    end: date = Query(description="Last day, included"),
    principal: Principal = Depends(require_any("live", "audit", city_staff=True)),
) -> StatsOut:
    """Entries per category over whole days, for the city's reports (counts only, no content)."""
    if end < start:
        raise HTTPException(422, "end must not be before start")
    if (end - start).days >= MAX_STATS_DAYS:
        raise HTTPException(422, f"at most {MAX_STATS_DAYS} days at once")
    if start.year < 2000 or end.year >= 2100:
        raise HTTPException(422, "days must be between 2000 and 2099")
    start_us, end_us = paris_day_bounds(start, end)
    by_category, by_day = await asyncio.to_thread(journal.counts, b.engine, start_us, end_us)
    return StatsOut(
        first_day=start.isoformat(),
        last_day=end.isoformat(),
        total=sum(by_category.values()),
        by_category=by_category,
        by_day=by_day,
    )


@router.get("/journal/{entry_id}", response_model=EntryOut)
async def one(
    entry_id: EntryId,
    b: BackendsDep,
    principal: Principal = Depends(require_any(*WATCH, city_staff=True)),
) -> EntryOut:
    row = await asyncio.to_thread(journal.get, b.engine, entry_id)
    if not await _readable(principal, [row]):
        # Answered as an unknown entry, like a camera outside one's groups (security.check_camera).
        unknown = journal.unknown(entry_id)
        reason = "your habilitation does not cover the cameras of this entry"
        await refuse(
            principal, "live", f"journal:{entry_id}", reason, answer=HTTPException(unknown.status, unknown.message)
        )
    return out(*row)


@router.get("/cameras/{camera_id}/bookmarks", response_model=list[BookmarkOut])
async def camera_bookmarks(
    camera_id: str,
    b: BackendsDep,
    start: str = Query(description="ISO 8601 with zone"),
    end: str = Query(description="ISO 8601 with zone"),
    principal: Principal = Depends(require("playback", camera="camera_id")),
) -> list[BookmarkOut]:
    """The journal's bookmarks on this camera in [start, end), for the playback timeline."""
    start_us = checked_us("start", parse_instant("start", start))
    end_us = checked_us("end", parse_instant("end", end))
    if start_us >= end_us:
        raise HTTPException(422, "start must be before end")
    if end_us - start_us > MAX_STATS_DAYS * DAY_US:
        raise HTTPException(422, f"at most {MAX_STATS_DAYS} days at once")
    return [bookmark_out(m) for m in await asyncio.to_thread(journal.bookmarks, b.engine, camera_id, start_us, end_us)]
