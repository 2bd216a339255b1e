"""Every personal datum has a retention period, and is erased at its end.

Footage (CSI L.252-5, 30 days at most; the archive's sweeper) and the audit trail
(CSU_AUDIT_RETENTION_DAYS) have their own. Everything else that names or identifies a person is
listed in POLICIES below with its period, the hard cap the data protection officer cannot exceed,
and the legal basis of both. The DPO may shorten a period (or lengthen it up to its cap) through
`PUT /api/v1/retention/{kind}`: set_period is the one place the cap is enforced, like a camera's
retention is held to the legal 30 days by its one validator.

The sweep (run by the gateway every CSU_RETENTION_SWEEP_INTERVAL_S) erases, for each kind, what
is past its period — the personal fields, or the whole row when nothing else in it is worth
keeping — and records one `retention.erase` entry per kind that erased something: the kind, how
many records, and up to when (the instant before which the records' retention ended). Citizens'
requests and requisition cases are the requisition service's tables: it erases them itself on the
gateway's call (EraseExpired), so the periods and the sweep stay in one place.

What stays after erasure is what the supervision centre must still be able to show: that a visit
was declared and answered, when the room's agents and visitors came and went (not who), that a
bollard was opened by whom and why, that a journal entry existed, a request's number, states and
dates.
"""

import asyncio
import json
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from fastapi import HTTPException
from sqlalchemy import ColumnElement, case, delete, func, true, update
from sqlalchemy.orm import Mapped
from sqlmodel import SQLModel, col, select

from services.common import audit as audit_events
from services.common.clock import to_us
from services.common.db import session
from services.common.log import get_logger
from services.common.pb.csu.v1 import requisition_pb2
from services.common.timefmt import DAY_US, iso
from services.gateway.backends import RPC_TIMEOUT_S, Backends
from services.gateway.identity.models import AuditEntry
from services.gateway.operations.models import (
    BollardCall,
    BollardCommand,
    JournalBookmark,
    JournalEntry,
    RetentionPeriod,
    VisitorDeclaration,
)
from services.gateway.operations.room import RoomPresence

log = get_logger(__name__)
ERASE_ACTION = "retention.erase"
SET_ACTION = "retention.set"
# What a personal text that must stay non-empty holds once erased (a name, a journal's description).
ERASED = "[effacé]"


@dataclass(frozen=True)
class Policy:
    kind: str
    what: str  # the personal fields erased
    counted_from: str
    default_days: int
    cap_days: int
    basis: str  # why this period, and why not longer


POLICIES: dict[str, Policy] = {
    p.kind: p
    for p in (
        Policy(
            "visitors",
            "viewing-room register: visitor's name, organisation, quality, purpose, answer comment (a declaration "
            "still unanswered is cancelled)",
            "the end of the declared visit",
            365,
            365,
            # 1 year: the departmental video-protection commission and the prefect may check who
            # entered the viewing room (CSI L.251-4, L.252-3: controls at any time); one year covers
            # their yearly control. CNIL guidance on visitor registers: no longer than that purpose.
            "CSI L.252-3 and L.251-4 (controls of the commission and the prefect, yearly); CNIL guidance on "
            "access-control and visitor registers",
        ),
        Policy(
            "room_presence",
            "viewing-room door: who entered and left (agents' accounts, the agents who let visitors in and out, "
            "the visitor's declaration); the stay's kind and times stay, so the room's staffing can still be shown",
            "the exit from the room (a stay still open is never erased)",
            365,
            365,
            # Like the register it points to: the commission and the prefect check who was in the
            # room (CSI L.251-4, L.252-3), yearly; an agent's presence is also working-time data,
            # kept no longer than that control needs (CNIL guidance on access-control registers).
            "CSI L.252-3 and L.251-4 (controls of the commission and the prefect, yearly); CNIL guidance on "
            "access-control and visitor registers",
        ),
        Policy(
            "bollard_plates",
            "bollard commands: the vehicle's plate (the command, its author and reason stay)",
            "the command",
            45,
            90,
            # 45 days: a fine for entering the pedestrian zone is contested within 45 days (CPP
            # art. 529-2); at most 3 months, the CNIL's figure for vehicle access-control logs.
            "CPP art. 529-2 (45 days to contest a fine); CNIL guidance on vehicle access control (3 months at most)",
        ),
        Policy(
            "intercom_calls",
            "bollard intercom calls (the whole record: camera, time, who answered)",
            "the call",
            30,
            30,
            # A call is answered by watching the bollard's camera: its record points to footage of
            # the driver and lives no longer than footage may (30 days at most).
            "CSI L.252-5 (images kept 30 days at most; the call's record points to them)",
        ),
        Policy(
            "journal",
            "shift journal: the free text (description, actions note, bookmark labels) that may name people",
            "the entry's writing",
            365,
            365,
            # 1 year: what the journal notes is mostly contraventions, prescribed after one year
            # (CPP art. 9); beyond, a mention of a person serves no procedure.
            "CPP art. 9 (contraventions prescribed after 1 year); CNIL guidance on mains courantes "
            "(free-text mentions of people only as long as needed)",
        ),
        Policy(
            "citizen_requests",
            "citizens' access requests: identity, birth date, identity document kind and number, contact, "
            "place, description, notes (a request nobody closed expires: closed as expired, then erased)",
            "the request's closing (or its answer deadline when never closed)",
            365,
            365,
            # The answer is due within a month (GDPR art. 12(3)); the request's trace proves the
            # answer if the requester complains to the CNIL; one year covers that. The identity
            # document itself goes at closing (data minimisation, GDPR art. 5(1)(c)).
            "GDPR art. 12(3), 15 and 5(1)(e); CSI L.253-5; CNIL guidance on the exercise of rights (proof of "
            "the answer, 1 year)",
        ),
        Policy(
            "requisitions",
            "requisition cases: officer and contact, case reference, reason, authority, recipient, comments, "
            "and the signed requisition and receipt documents (the signed register keeps the hashes)",
            "the case's last change once delivered, closed, refused, cancelled or expired",
            1095,
            1095,
            # 3 years, like the audit trail: the prefect's commission and the CNIL check each
            # extraction against its requisition (CSI L.252-3, L.253-1); the register of
            # extractions and its hashes remain beyond.
            "CPP art. 60-1 and 77-1-1 (requisitions); CSI L.252-3 and L.253-1 (controls); kept as long as the "
            "audit trail (3 years)",
        ),
    )
}
REQUISITION_KINDS = ("citizen_requests", "requisitions")


def _policy(kind: str) -> Policy:
    policy = POLICIES.get(kind)
    if policy is None:
        raise HTTPException(404, f"unknown kind {kind!r}; kinds: {', '.join(POLICIES)}")
    return policy


def periods(b: Backends) -> dict[str, dict[str, Any]]:
    """Each kind's policy with the period in force (the DPO's, else the default)."""
    with session(b.engine) as s:
        chosen = {r.kind: r for r in s.exec(select(RetentionPeriod))}
    result = {}
    for kind, policy in POLICIES.items():
        row = chosen.get(kind)
        result[kind] = asdict(policy) | {
            "days": min(row.days, policy.cap_days) if row else policy.default_days,
            "set_by": row.set_by if row else None,
            "set_at": iso(row.set_us) if row else None,
        }
    return result


def check_period(kind: str, days: int) -> Policy:
    """The one place a period is checked against its hard cap: unknown kind 404, out of bounds 422."""
    policy = _policy(kind)
    if days < 1:
        raise HTTPException(422, f"{kind}: a retention period is at least 1 day")
    if days > policy.cap_days:
        raise HTTPException(
            422, f"{kind}: {days} days is above the hard cap of {policy.cap_days} days ({policy.basis})"
        )
    return policy


def set_period(b: Backends, kind: str, days: int, actor: str) -> dict[str, Any]:
    check_period(kind, days)
    with session(b.engine) as s:
        row = s.get(RetentionPeriod, kind) or RetentionPeriod(kind=kind, days=days, set_by=actor, set_us=0)
        row.days, row.set_by, row.set_us = days, actor, to_us(b.clock.now())
        s.add(row)
        s.commit()
    return periods(b)[kind]


# -- the gateway's own tables ------------------------------------------------------------------


def _erase_local(b: Backends, kind: str, before_us: int, dry_run: bool) -> tuple[int, int]:
    """(erased — or due —, start of the oldest record still kept, 0: none) for a gateway table."""
    now = to_us(b.clock.now())
    # The table's time column (when its retention counts from) and which of its rows are still kept.
    start: Mapped[int] | Mapped[int | None]
    pending: ColumnElement[bool]
    table: type[SQLModel]
    with session(b.engine) as s:
        if kind == "visitors":
            start, pending = col(VisitorDeclaration.expected_end_us), col(VisitorDeclaration.erased_us).is_(None)
            change = {
                "name": ERASED,
                "organisation": "",
                "quality": "",
                "purpose": ERASED,
                "answer_comment": "",
                "erased_us": now,
                # Still unanswered a retention period after the visit: moot, and never to be mailed
                # to the prefecture without its visitor's name.
                "status": case(
                    (col(VisitorDeclaration.status) == "pending", "cancelled"), else_=VisitorDeclaration.status
                ),
            }
            table = VisitorDeclaration
        elif kind == "room_presence":
            # Only closed stays: an open one is someone inside now. Erased, a stay names nobody and
            # points at no declaration (the declaration may be kept longer, with its visitor's name).
            start = col(RoomPresence.exited_us)
            pending = col(RoomPresence.exited_us).is_not(None) & (col(RoomPresence.entered_by) != "")
            change = {"username": "", "declaration_id": None, "entered_by": "", "exited_by": ""}
            table = RoomPresence
        elif kind == "journal":
            start, pending = col(JournalEntry.created_us), col(JournalEntry.erased_us).is_(None)
            change = {"description": ERASED, "actions_note": "", "erased_us": now}
            table = JournalEntry
        elif kind == "bollard_plates":
            start, pending = col(BollardCommand.time_us), col(BollardCommand.plate) != ""
            change = {"plate": ""}
            table = BollardCommand
        else:  # intercom_calls: nothing in the row outlives the person
            start, pending, change, table = col(BollardCall.time_us), true(), {}, BollardCall
        due = (pending, start < before_us)
        count = 0
        if dry_run:
            count = s.exec(select(func.count()).select_from(table).where(*due)).one()
        elif kind == "intercom_calls":
            count = s.exec(delete(table).where(*due)).rowcount
        else:
            if kind == "journal":
                ids = select(JournalEntry.id).where(*due)
                s.exec(update(JournalBookmark).where(col(JournalBookmark.entry_id).in_(ids)).values(label=""))
            count = s.exec(update(table).where(*due).values(**change)).rowcount
        s.commit()
        oldest = s.exec(select(func.min(start)).select_from(table).where(pending)).one()
    return int(count), int(oldest or 0)


async def _erase(b: Backends, kind: str, before_us: int, dry_run: bool) -> tuple[int, int]:
    if kind in REQUISITION_KINDS:
        answer = await b.requisition.EraseExpired(
            requisition_pb2.EraseExpiredRequest(kind=kind, before_us=before_us, dry_run=dry_run),
            timeout=RPC_TIMEOUT_S,
        )
        return answer.erased, answer.oldest_kept_us
    return await asyncio.to_thread(_erase_local, b, kind, before_us, dry_run)


# Erasures done but not yet in the audit trail (NATS was away): recorded first at the next sweep.
_UNRECORDED: list[dict[str, Any]] = []


async def _record_erasures(b: Backends) -> None:
    """Write the erasures not yet in the audit trail, oldest first; an error leaves the rest for later."""
    assert b.js is not None
    while _UNRECORDED:
        details = _UNRECORDED[0]
        await audit_events.record(
            b.js,
            b.settings.nats_prefix,
            b.clock,
            actor="system",
            role="",
            action=ERASE_ACTION,
            target=details["kind"],
            details=details,
        )
        _UNRECORDED.pop(0)


async def sweep(b: Backends) -> list[dict[str, Any]]:
    """Erase every kind's records past their period; one audit entry per kind that erased something.

    The erasure comes first and its record after, so the count is exact even when two gateway
    replicas sweep at once (the second finds nothing left); a record that could not be written is
    kept and written first at the next sweep. A kind that fails (the requisition service away) is
    logged and retried next sweep; the others go on.
    """
    await _record_erasures(b)
    now = b.clock.now()
    done = []
    for kind, period in (await asyncio.to_thread(periods, b)).items():
        before_us = to_us(now - timedelta(days=period["days"]))
        try:
            erased, _ = await _erase(b, kind, before_us, dry_run=False)
        except Exception as exc:  # noqa: BLE001 - retried next sweep; the report shows what is overdue
            log.warning("retention sweep failed", kind=kind, error=str(exc) or type(exc).__name__)
            continue
        if erased:
            details = {"kind": kind, "erased": erased, "up_to": iso(before_us), "retention_days": period["days"]}
            log.info("personal data erased at retention", **details)
            done.append(details)
            _UNRECORDED.append(details)
    await _record_erasures(b)
    return done


async def run(b: Backends) -> None:
    """The gateway's retention sweeper: a sweep every CSU_RETENTION_SWEEP_INTERVAL_S."""
    while True:
        try:
            await sweep(b)
        except Exception as exc:  # noqa: BLE001 - retried next round
            log.warning("retention sweep failed", error=str(exc) or type(exc).__name__)
        await asyncio.sleep(b.settings.retention_sweep_interval_s)


# -- the compliance report -----------------------------------------------------------------------


def _last_erasures(b: Backends) -> dict[str, dict[str, Any]]:
    with session(b.engine) as s:
        newest = (
            select(AuditEntry.target, func.max(AuditEntry.seq).label("seq"), func.count().label("sweeps"))
            .where(AuditEntry.action == ERASE_ACTION)
            .group_by(AuditEntry.target)
            .subquery()
        )
        rows = s.exec(select(AuditEntry, newest.c.sweeps).join(newest, col(AuditEntry.seq) == newest.c.seq)).all()
    result = {}
    for entry, sweeps in rows:
        details = json.loads(entry.details_json or "{}")
        result[entry.target] = {
            "at": iso(entry.time_us),
            "erased": details.get("erased"),
            "up_to": details.get("up_to"),
            "sweeps_in_trail": sweeps,
        }
    return result


async def report(b: Backends, findings: list[str]) -> dict[str, Any]:
    """Per kind: period, cap and basis, the last erasure (from the audit trail), what is due next."""
    now = b.clock.now()
    last = await asyncio.to_thread(_last_erasures, b)
    # Past its period by more than two sweeps and still there: the sweeper is not doing its job.
    late = timedelta(seconds=2 * b.settings.retention_sweep_interval_s)
    kinds = []
    for kind, period in (await asyncio.to_thread(periods, b)).items():
        row = period | {"last_erasure": last.get(kind)}
        try:
            overdue, oldest = await _erase(b, kind, to_us(now - timedelta(days=period["days"]) - late), dry_run=True)
        except Exception as exc:  # noqa: BLE001 - said in the report, the other kinds still shown
            row["due"] = None
            findings.append(f"retention of {kind}: could not be checked ({type(exc).__name__})")
        else:
            row["due"] = {
                "overdue": overdue,
                "next_due_at": iso(oldest + period["days"] * DAY_US) if oldest else None,
            }
            if overdue:
                findings.append(f"retention of {kind}: {overdue} record(s) past their {period['days']}-day period")
        kinds.append(row)
    return {"kinds": kinds}
