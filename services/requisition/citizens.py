"""Citizens' right of access to footage of themselves (RGPD art. 15; CSI L253-5).

    open --(operator finds the requester)--> found --(outcome)--> closed
    open --(operator: not found)-----------------------------> closed (not_found)
    open | found --(clerk: refused, with the legal ground)--> closed (refused)
    found --(viewed at the kiosk)----------------------------> closed (viewed)
    open | found --(nobody closed it; retention over)--------> closed (expired), erased (retention.py)

A clerk registers the request with the requester's identity, a copy of their identity document
(checked, encrypted; deleted when the request closes), the place, cameras and time window, and a
contact. The answer is due within one month (calendar month, Paris): the deadline is shown, warned
before it passes, and flagged when overdue. The footage concerned is held in the archive (never
beyond the legal 30 days from capture) while the request is open, so the purge cannot defeat the
right of access. An operator searches it, confirms the requester appears (or records "not
found"), and launches redaction jobs (masking service) that keep only the requester visible; the
requester watches the result on the kiosk (kiosk.py).

Closing deletes the identity document (object and its sealed number), releases the holds,
revokes kiosk sessions and cancels unfinished redaction jobs; the deadline loop retries whatever
could not be done at once.
"""

import secrets
import uuid
from calendar import monthrange
from datetime import date, datetime, time, timedelta
from typing import Any

import grpc
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from services.common import refusals
from services.common.clock import to_us
from services.common.db import session
from services.common.log import get_logger
from services.common.pb.csu.v1 import archive_pb2, masking_pb2, requisition_pb2
from services.common.refusals import Conflict, Denied, Invalid, NotFound, Unavailable
from services.common.subjects import check_camera_id
from services.common.timefmt import DAY_US, HOUR_US, PARIS
from services.requisition import documents, fields, transitions
from services.requisition.context import Context
from services.requisition.models import CitizenRequest, Document, KioskSession, Transition
from services.requisition.numbering import next_number
from services.requisition.timefmt import paris_date, utc

log = get_logger(__name__)
KIND = "citizen_request"
OPEN, FOUND, CLOSED = "open", "found", "closed"
OUTCOMES = ("viewed", "refused", "not_found")
RPC_TIMEOUT_S = 30.0
MAX_CAMERAS = 16


def deadline_after(registered_us: int) -> int:
    """The end (Paris) of the same day next month: one calendar month to answer."""
    day = paris_date(registered_us)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    due = date(year, month, min(day.day, monthrange(year, month)[1]))
    return to_us(datetime.combine(due + timedelta(days=1), time(0), PARIS))


def _now(ctx: Context) -> int:
    return to_us(ctx.clock.now())


def load(s: Session, request_id: str, lock: bool = False) -> CitizenRequest:
    query = select(CitizenRequest).where(CitizenRequest.id == request_id)
    if lock:
        query = query.with_for_update()
    row = s.exec(query).first()
    if row is None:
        raise NotFound(f"unknown citizen request {request_id!r}")
    return row


def _staff(actor: requisition_pb2.Actor) -> None:
    if actor.partner:
        raise Denied("citizens' access requests are handled by CSU staff")


# -- holds in the archive --------------------------------------------------------------------------


def hold_id(request_id: str, camera_id: str) -> str:
    return f"citizen:{request_id}:{camera_id}"


async def place_holds(ctx: Context, row: CitizenRequest, camera_ids: list[str], actor: str) -> list[dict]:
    placed: list[dict] = []
    try:
        for camera_id in camera_ids:
            info = await ctx.archive.PlaceHold(
                archive_pb2.HoldRequest(
                    id=hold_id(row.id, camera_id),
                    camera_id=camera_id,
                    start_us=row.window_start_us,
                    end_us=row.window_end_us,
                    until_us=row.deadline_us,
                    reason=f"citizen access request {row.number}",
                    actor=actor,
                ),
                timeout=RPC_TIMEOUT_S,
            )
            placed.append(
                {
                    "id": info.id,
                    "camera_id": info.camera_id,
                    "start_us": info.start_us,
                    "end_us": info.end_us,
                    "until_us": info.until_us,
                }
            )
    except grpc.aio.AioRpcError as exc:
        await release_holds(ctx, [p["id"] for p in placed], actor)
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise Invalid(f"the footage cannot be held: {exc.details()}") from exc
        raise Unavailable("the archive is unavailable: the footage could not be held; try again shortly") from exc
    return placed


async def release_holds(ctx: Context, ids: list[str], actor: str) -> bool:
    ok = True
    for hold in ids:
        try:
            await ctx.archive.ReleaseHold(archive_pb2.HoldRef(id=hold, actor=actor), timeout=RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                log.warning("hold not released yet; retried", hold=hold, code=exc.code().name)
                ok = False
    return ok


# -- registering ------------------------------------------------------------------------------------


def _validate(ctx: Context, meta: requisition_pb2.CitizenUploadMeta, now: int) -> dict:
    values: dict[str, Any] = {
        "full_name": fields.line("full_name", meta.full_name, 200),
        "id_document_kind": fields.line("id_document_kind", meta.id_document_kind, 100),
        "id_document_number": fields.line("id_document_number", meta.id_document_number, 64),
        "contact": fields.line("contact", meta.contact, 300),
        "place": fields.line("place", meta.place, 300),
        "description": fields.text("description", meta.description, 2000, required=False),
    }
    born = fields.iso_date("birth_date", meta.birth_date)
    if born >= paris_date(now) or born.year < 1900:
        raise Invalid(f"birth_date {born} is not a plausible date of birth")
    values["birth_date"] = born.isoformat()
    cameras = list(dict.fromkeys(meta.camera_ids))
    if not cameras:
        raise Invalid("name at least one camera covering the place")
    if len(cameras) > MAX_CAMERAS:
        raise Invalid(f"at most {MAX_CAMERAS} cameras per request")
    for camera_id in cameras:
        try:
            check_camera_id(camera_id)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
    start, end = meta.window_start_us, meta.window_end_us
    if start >= end:
        raise Invalid("the time window's start must be before its end")
    if end - start > ctx.settings.max_query_range_hours * HOUR_US:
        raise Invalid(f"the time window is wider than {ctx.settings.max_query_range_hours:g} hours")
    if end > now + 10_000_000:
        raise Invalid("the time window ends in the future")
    retention = {c.camera_id: max(1, min(int(c.retention_days or 30), 30)) for c in meta.cameras}
    for camera_id in cameras:
        days = retention.get(camera_id, 30)
        if start < now - days * DAY_US:
            raise Invalid(
                f"camera {camera_id} keeps {days} days: footage before {utc(now - days * DAY_US)} no longer exists"
            )
    values.update(camera_ids=cameras, window_start_us=start, window_end_us=end)
    return values


async def create(
    ctx: Context, meta: requisition_pb2.CitizenUploadMeta, data: bytes
) -> tuple[CitizenRequest, Transition]:
    actor = meta.actor
    _staff(actor)
    now = _now(ctx)
    values = _validate(ctx, meta, now)
    checked = documents.check(data, meta.filename, ctx.settings.max_upload_bytes)
    number_hint = values["id_document_number"][-3:]
    row = CitizenRequest(
        id=uuid.uuid4().hex,
        number="",
        state=OPEN,
        full_name=values["full_name"],
        birth_date=values["birth_date"],
        id_document_kind=values["id_document_kind"],
        id_document_number_sealed=ctx.box.seal(values["id_document_number"]),
        id_document_number_hint=number_hint,
        contact=values["contact"],
        place=values["place"],
        description=values["description"],
        camera_ids=values["camera_ids"],
        window_start_us=values["window_start_us"],
        window_end_us=values["window_end_us"],
        created_us=now,
        created_by=actor.username,
        deadline_us=deadline_after(now),
    )
    doc = documents.store(
        ctx.documents,
        ctx.box,
        checked,
        owner_kind=KIND,
        owner_id=row.id,
        kind="identity",
        created_us=now,
        created_by=actor.username,
    )
    holds: list[dict] = []
    try:
        holds = await place_holds(ctx, row, values["camera_ids"], actor.username)
        row.holds = holds
        for attempt in range(5):
            try:
                with session(ctx.engine) as s:
                    row.number = next_number(s, CitizenRequest, "DA", now)
                    s.add(row)
                    s.add(doc)
                    transition = transitions.opened(
                        s, KIND, row, actor, now, f"registered; answer due by {utc(row.deadline_us)}"
                    )
                    s.commit()
                    return row, transition
            except IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")
    except BaseException:
        # Nothing is kept of a refused registration: no document, no hold.
        ctx.documents.delete(doc.object_key)
        await release_holds(ctx, [h["id"] for h in holds], actor.username)
        raise


# -- reading ----------------------------------------------------------------------------------------


async def _redaction_states(ctx: Context, row: CitizenRequest) -> dict[str, masking_pb2.RedactionJob]:
    states: dict[str, masking_pb2.RedactionJob] = {}
    if ctx.masking is None:
        return states
    for ref in row.redactions:
        try:
            states[ref["job_id"]] = await ctx.masking.GetRedaction(
                masking_pb2.RedactionRef(id=ref["job_id"]), timeout=RPC_TIMEOUT_S
            )
        except grpc.aio.AioRpcError:
            continue  # shown as "unknown" for now
    return states


def _message(
    s: Session, row: CitizenRequest, jobs: dict[str, masking_pb2.RedactionJob], now: int, operator_view: bool
) -> requisition_pb2.CitizenRequest:
    message = requisition_pb2.CitizenRequest(
        id=row.id,
        number=row.number,
        state=row.state,
        place=row.place,
        camera_ids=row.camera_ids,
        window_start_us=row.window_start_us,
        window_end_us=row.window_end_us,
        description=row.description,
        created_us=row.created_us,
        created_by=row.created_by,
        deadline_us=row.deadline_us,
        overdue=row.closed_us is None and row.deadline_us <= now,
        deadline_warned=row.warned_us is not None,
        search_note=row.search_note,
        searched_by=row.searched_by,
        outcome=row.outcome,
        outcome_reason=row.outcome_reason,
        outcome_by=row.outcome_by,
        closed_us=row.closed_us or 0,
    )
    if not operator_view:
        # Identity and contact are for the clerks; operators searching footage get the description.
        message.full_name = row.full_name
        message.birth_date = row.birth_date
        message.id_document_kind = row.id_document_kind
        message.id_document_number_hint = f"…{row.id_document_number_hint}" if row.id_document_number_hint else ""
        message.contact = row.contact
        message.identity_document_kept = (
            s.exec(
                select(Document.id).where(
                    Document.owner_kind == KIND,
                    Document.owner_id == row.id,
                    col(Document.deleted_us).is_(None),
                )
            ).first()
            is not None
        )
    for ref in row.redactions:
        job = jobs.get(ref["job_id"])
        message.redactions.add(
            job_id=ref["job_id"],
            camera_id=ref["camera_id"],
            start_us=ref["start_us"],
            end_us=ref["end_us"],
            status=job.status if job else "unknown",
            progress=job.progress if job else 0.0,
            error=job.error if job else "",
        )
    for hold in row.holds:
        message.holds.add(**hold)
    message.transitions.extend(transitions.message(t) for t in transitions.of(s, KIND, row.id))
    return message


async def describe(ctx: Context, request_id: str, operator_view: bool) -> requisition_pb2.CitizenRequest:
    with session(ctx.engine) as s:
        row = load(s, request_id)
    jobs = await _redaction_states(ctx, row)
    with session(ctx.engine) as s:
        return _message(s, row, jobs, _now(ctx), operator_view)


async def listing(
    ctx: Context, request: requisition_pb2.ListCitizenRequestsRequest
) -> list[requisition_pb2.CitizenRequest]:
    limit = min(max(int(request.limit or 100), 1), 500)
    query = select(CitizenRequest)
    if request.state == "open":
        query = query.where(CitizenRequest.state != CLOSED)
    elif request.state:
        if request.state not in (OPEN, FOUND, CLOSED):
            raise Invalid(f"unknown state {request.state!r}: open, found or closed")
        query = query.where(CitizenRequest.state == request.state)
    with session(ctx.engine) as s:
        rows = list(s.exec(query.order_by(col(CitizenRequest.deadline_us)).limit(limit)))
    now = _now(ctx)
    found = []
    for row in rows:
        jobs = await _redaction_states(ctx, row) if row.state == FOUND else {}
        with session(ctx.engine) as s:
            found.append(_message(s, row, jobs, now, request.operator_view))
    return found


def identity_document(ctx: Context, request_id: str) -> tuple[Document, bytes]:
    with session(ctx.engine) as s:
        row = load(s, request_id)
        doc = s.exec(
            select(Document).where(
                Document.owner_kind == KIND,
                Document.owner_id == row.id,
                col(Document.deleted_us).is_(None),
            )
        ).first()
    if doc is None:
        raise NotFound(f"the identity document of {row.number} was deleted when the request closed")
    return doc, documents.read(ctx.documents, ctx.box, doc)


# -- the operator's search and the redaction --------------------------------------------------------


async def record_search(ctx: Context, request: requisition_pb2.SearchResultRequest) -> CitizenRequest:
    actor = request.actor
    _staff(actor)
    now = _now(ctx)
    note = fields.text("note", request.note, 2000, required=not request.found)
    with session(ctx.engine) as s:
        row = load(s, request.id)
    if row.state not in (OPEN, FOUND):
        raise Conflict(f"request {row.number} is {row.state}")
    if not request.found:
        return await close(ctx, row.id, actor, "not_found", note)
    added = [c.camera_id for c in request.cameras if c.camera_id not in row.camera_ids]
    for camera_id in added:
        try:
            check_camera_id(camera_id)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
    if len(row.camera_ids) + len(added) > MAX_CAMERAS:
        raise Invalid(f"at most {MAX_CAMERAS} cameras per request")
    holds = await place_holds(ctx, row, added, actor.username) if added else []
    try:
        with session(ctx.engine) as s:
            row = load(s, request.id, lock=True)
            if row.state not in (OPEN, FOUND):
                raise Conflict(f"request {row.number} is {row.state}")
            row.camera_ids = [*row.camera_ids, *added]
            row.holds = [*row.holds, *holds]
            row.search_note, row.searched_by = note, actor.username
            transition = row.state != FOUND
            if transition:
                transitions.record(s, KIND, row, FOUND, actor, now, note or "the requester appears in the footage")
            s.add(row)
            s.commit()
            return row
    except BaseException:
        await release_holds(ctx, [h["id"] for h in holds], actor.username)
        raise


async def start_redaction(ctx: Context, request: requisition_pb2.StartRedactionRequest) -> CitizenRequest:
    actor = request.actor
    _staff(actor)
    if ctx.masking is None:
        raise Unavailable("redaction is not configured (no masking service)")
    with session(ctx.engine) as s:
        row = load(s, request.id)
    if row.state != FOUND:
        raise Conflict(f"request {row.number} is {row.state}: confirm the requester appears in the footage first")
    if request.camera_id not in row.camera_ids:
        raise Invalid(f"camera {request.camera_id!r} is not one of the request's cameras")
    if not (row.window_start_us <= request.start_us < request.end_us <= row.window_end_us):
        raise Invalid("the redacted range must lie within the request's time window")
    try:
        job = await ctx.masking.CreateRedaction(
            masking_pb2.CreateRedactionRequest(
                camera_id=request.camera_id,
                start_us=request.start_us,
                end_us=request.end_us,
                selection=[
                    masking_pb2.RedactionBox(time_us=b.time_us, x=b.x, y=b.y, width=b.width, height=b.height)
                    for b in request.selection
                ],
                mode=request.mode,
                effect=request.effect,
                expires_us=row.deadline_us,
                request_ref=row.number,
                actor=actor.username,
            ),
            timeout=RPC_TIMEOUT_S,
        )
    except grpc.aio.AioRpcError as exc:
        raise refusals.relayed(exc, "masking") from exc
    with session(ctx.engine) as s:
        row = load(s, request.id, lock=True)
        row.redactions = [
            *row.redactions,
            {"job_id": job.id, "camera_id": job.camera_id, "start_us": job.start_us, "end_us": job.end_us},
        ]
        s.add(row)
        s.commit()
        return row


# -- the outcome and closing ------------------------------------------------------------------------


async def close(
    ctx: Context, request_id: str, actor: requisition_pb2.Actor, outcome: str, reason: str
) -> CitizenRequest:
    _staff(actor)
    outcome = fields.choice("outcome", outcome, OUTCOMES)
    reason = fields.text("reason", reason, 2000, required=outcome == "refused", min_length=5)
    now = _now(ctx)
    with session(ctx.engine) as s:
        row = load(s, request_id, lock=True)
        if row.state == CLOSED:
            raise Conflict(f"request {row.number} is already closed ({row.outcome})")
        if outcome == "viewed" and row.state != FOUND:
            raise Conflict(f"request {row.number} is {row.state}: nothing was found to view")
        row.outcome, row.outcome_reason, row.outcome_by, row.closed_us = outcome, reason, actor.username, now
        # The identity document's number goes with the document (data minimisation).
        row.id_document_number_sealed = ""
        transitions.record(s, KIND, row, CLOSED, actor, now, f"{outcome}: {reason}" if reason else outcome)
        for kiosk in s.exec(
            select(KioskSession).where(col(KioskSession.request_id) == row.id, col(KioskSession.revoked_us).is_(None))
        ):
            kiosk.revoked_us = now
            s.add(kiosk)
        s.commit()
    await cleanup(ctx, request_id)
    with session(ctx.engine) as s:
        return load(s, request_id)


async def cleanup(ctx: Context, request_id: str) -> bool:
    """What a closed request must not keep: identity documents, holds, unfinished jobs. True when done."""
    with session(ctx.engine) as s:
        row = load(s, request_id)
        docs = list(
            s.exec(
                select(Document).where(
                    Document.owner_kind == KIND,
                    Document.owner_id == row.id,
                    col(Document.deleted_us).is_(None),
                )
            )
        )
    if row.state != CLOSED:
        return True
    done = True
    for doc in docs:
        try:
            ctx.documents.delete(doc.object_key)
        except Exception as exc:  # noqa: BLE001 - the store is away: retried by the deadline loop
            log.warning("identity document not deleted yet", request=row.number, error=str(exc))
            done = False
            continue
        with session(ctx.engine) as s:
            stored = s.get(Document, doc.id)
            if stored is not None:
                stored.deleted_us = _now(ctx)
                s.add(stored)
                s.commit()
    if row.holds and await release_holds(ctx, [h["id"] for h in row.holds], "system"):
        with session(ctx.engine) as s:
            stored_row = load(s, request_id, lock=True)
            stored_row.holds = []
            s.add(stored_row)
            s.commit()
    elif row.holds:
        done = False
    if ctx.masking is not None:
        for ref in row.redactions:
            try:
                await ctx.masking.CancelRedaction(
                    masking_pb2.RedactionRef(id=ref["job_id"], actor="system"), timeout=RPC_TIMEOUT_S
                )
            except grpc.aio.AioRpcError:
                pass  # finished jobs cannot be cancelled; their clips expire with the request's deadline
    return done


def due_cleanup(ctx: Context) -> list[str]:
    """Closed requests that still hold something (documents, holds)."""
    with session(ctx.engine) as s:
        with_docs = s.exec(
            select(col(Document.owner_id)).where(col(Document.owner_kind) == KIND, col(Document.deleted_us).is_(None))
        )
        ids = set(with_docs)
        closed = {
            r.id for r in s.exec(select(CitizenRequest).where(CitizenRequest.state == CLOSED)) if r.id in ids or r.holds
        }
        return sorted(closed)


def deadline_warnings(ctx: Context) -> list[tuple[str, str]]:
    """(kind, message) alarms due now, marked as given: warned N days ahead, and when overdue."""
    now = _now(ctx)
    ahead = ctx.settings.citizen_deadline_warning_days * DAY_US
    alarms: list[tuple[str, str]] = []
    with session(ctx.engine) as s:
        rows = list(s.exec(select(CitizenRequest).where(CitizenRequest.state != CLOSED)))
        for row in rows:
            if row.deadline_us <= now and row.overdue_warned_us is None:
                row.overdue_warned_us = now
                row.warned_us = row.warned_us or now
                alarms.append(
                    (
                        "requisition.citizen_overdue",
                        f"citizen access request {row.number} is overdue: the answer was due by {utc(row.deadline_us)}",
                    )
                )
            elif row.deadline_us - ahead <= now and row.warned_us is None:
                row.warned_us = now
                alarms.append(
                    (
                        "requisition.citizen_deadline",
                        f"citizen access request {row.number} must be answered by {utc(row.deadline_us)}; "
                        "unanswered, it expires at the end of its retention (closed as expired, personal data erased)",
                    )
                )
            else:
                continue
            s.add(row)
        s.commit()
    return alarms


def new_code() -> str:
    """A pairing code: 10 characters without look-alikes, shown as XXXXX-XXXXX."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"
