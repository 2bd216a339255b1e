"""Requisitions: creating, reading and moving them through the workflow (workflow.py), with every
transition recorded (who, when, why) and the register entries that go with it.

The functions here are synchronous (database and object store); the gRPC layer runs them in
threads. Extraction (archive calls), packaging and purges live in their own modules.

Federated users (police nationale partners) only ever see and act on their own partner's
requests: another partner's request is "unknown" to them.
"""

import uuid

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from services.common.clock import to_us
from services.common.db import session
from services.common.pb.csu.v1 import requisition_pb2
from services.common.refusals import Conflict, Denied, Invalid, NotFound
from services.common.subjects import check_camera_id
from services.common.timefmt import DAY_US
from services.requisition import documents, fields, register, transitions, workflow
from services.requisition.context import Context
from services.requisition.models import (
    Document,
    ExtractPart,
    ExtractSegment,
    RequestedRange,
    Requisition,
    Transition,
)
from services.requisition.numbering import next_number
from services.requisition.timefmt import paris_date, utc

CHANNELS_LOCAL = ("phone", "email", "mail", "in_person")
AUTHORITY_KINDS = ("magistrate", "opj")
MAX_RANGES = 32
# A requested range is at most this wide (a camera's retention never exceeds 30 days).
MAX_RANGE_US = 30 * DAY_US
FUTURE_TOLERANCE_US = 10_000_000
KIND = "requisition"


def _now(ctx: Context) -> int:
    return to_us(ctx.clock.now())


def visible(row: Requisition, actor: requisition_pb2.Actor) -> bool:
    return not actor.partner or row.partner == actor.partner


def load(s: Session, request_id: str, actor: requisition_pb2.Actor, lock: bool = False) -> Requisition:
    query = select(Requisition).where(Requisition.id == request_id)
    if lock:
        query = query.with_for_update()
    row = s.exec(query).first()
    if row is None or not visible(row, actor):
        raise NotFound(f"unknown requisition request {request_id!r}")
    return row


def move(
    s: Session, row: Requisition, target: str, actor: requisition_pb2.Actor, now_us: int, reason: str = ""
) -> Transition:
    """Check and apply a transition in the session (the caller commits)."""
    workflow.check(row.number, row.state, target)
    row.updated_us = now_us
    transition = transitions.record(s, KIND, row, target, actor, now_us, reason)
    return transition


# -- creating ---------------------------------------------------------------------------------------


def _ranges(ctx: Context, wanted: list[requisition_pb2.CameraRange], now_us: int) -> list[RequestedRange]:
    if not wanted:
        raise Invalid("a request needs at least one camera and time range")
    if len(wanted) > MAX_RANGES:
        raise Invalid(f"a request covers at most {MAX_RANGES} ranges")
    ranges = []
    for i, r in enumerate(wanted):
        try:
            check_camera_id(r.camera_id)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        if r.start_us >= r.end_us:
            raise Invalid(f"range {i + 1} ({r.camera_id}): start must be before end")
        if r.end_us - r.start_us > MAX_RANGE_US:
            raise Invalid(f"range {i + 1} ({r.camera_id}) is wider than 30 days")
        if r.end_us > now_us + FUTURE_TOLERANCE_US:
            raise Invalid(f"range {i + 1} ({r.camera_id}) ends in the future: only recorded footage can be requested")
        days = max(1, min(int(r.retention_days or 30), 30))
        oldest = now_us - days * DAY_US
        if r.start_us < oldest:
            raise Invalid(
                f"range {i + 1} ({r.camera_id}) starts before the oldest footage kept: camera {r.camera_id} keeps "
                f"{days} days, nothing before {utc(oldest)} exists any more"
            )
        ranges.append(
            RequestedRange(  # type: ignore[call-arg]  # request_id: create() sets it once the requisition has one
                position=i,
                camera_id=r.camera_id,
                camera_name=(r.camera_name or r.camera_id)[:128],
                retention_days=days,
                start_us=r.start_us,
                end_us=r.end_us,
            )
        )
    return ranges


def create(ctx: Context, request: requisition_pb2.CreateRequisitionRequest) -> tuple[Requisition, Transition]:
    actor = request.actor
    now = _now(ctx)
    service = fields.line("requesting_service", request.requesting_service, 200)
    officer = fields.line("officer", request.officer, 200)
    contact = fields.line("officer_contact", request.officer_contact, 200, required=False)
    case = fields.line("case_reference", request.case_reference, 200)
    reason = fields.text("reason", request.reason, 2000, min_length=5)
    if actor.partner:
        # Requests through the federation door are the partner's own, whatever the body says.
        channel = "federation"
    else:
        channel = fields.choice("channel", request.channel, CHANNELS_LOCAL)
    ranges = _ranges(ctx, list(request.ranges), now)
    footage_deadline = min(r.start_us + r.retention_days * DAY_US for r in ranges)
    for attempt in range(5):
        try:
            with session(ctx.engine) as s:
                row = Requisition(
                    id=uuid.uuid4().hex,
                    number=next_number(s, Requisition, "RQ", now),
                    state=workflow.REQUESTED,
                    requesting_service=service,
                    officer=officer,
                    officer_contact=contact,
                    case_reference=case,
                    reason=reason,
                    channel=channel,
                    partner=actor.partner,
                    requested_by=actor.username,
                    created_us=now,
                    updated_us=now,
                    footage_deadline_us=footage_deadline,
                )
                s.add(row)
                for r in ranges:
                    r.request_id = row.id
                    s.add(r)
                transition = transitions.opened(s, KIND, row, actor, now, f"{channel} request: {reason}")
                s.commit()
                return row, transition
        except IntegrityError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


# -- reading ----------------------------------------------------------------------------------------


def parts_of(s: Session, request_id: str) -> list[tuple[ExtractPart, list[ExtractSegment]]]:
    parts = list(
        s.exec(select(ExtractPart).where(col(ExtractPart.request_id) == request_id).order_by(col(ExtractPart.position)))
    )
    segments = list(
        s.exec(
            select(ExtractSegment)
            .where(col(ExtractSegment.request_id) == request_id)
            .order_by(col(ExtractSegment.start_us))
        )
    )
    by_part: dict[int, list[ExtractSegment]] = {}
    for seg in segments:
        by_part.setdefault(seg.part_id, []).append(seg)
    return [(p, by_part.get(p.id or 0, [])) for p in parts]


def ranges_of(s: Session, request_id: str) -> list[RequestedRange]:
    return list(
        s.exec(
            select(RequestedRange)
            .where(col(RequestedRange.request_id) == request_id)
            .order_by(col(RequestedRange.position))
        )
    )


def to_message(s: Session, row: Requisition, key_fingerprint: str) -> requisition_pb2.Requisition:
    message = requisition_pb2.Requisition(
        id=row.id,
        number=row.number,
        state=row.state,
        requesting_service=row.requesting_service,
        officer=row.officer,
        officer_contact=row.officer_contact,
        case_reference=row.case_reference,
        reason=row.reason,
        channel=row.channel,
        partner=row.partner,
        requested_by=row.requested_by,
        created_us=row.created_us,
        updated_us=row.updated_us,
        buffer_deadline_us=row.buffer_deadline_us or 0,
        legal_hold=row.state in workflow.LEGAL_HOLD,
        extracted_by=row.extracted_by,
        extracted_us=row.extracted_us or 0,
        purge_reason=row.purge_reason,
        purged_us=row.purged_us or 0,
    )
    if row.state == workflow.REQUESTED and row.extracting_us is not None:
        message.extraction_progress = row.extract_progress or 0.0
    if row.package_progress is not None:
        message.package_progress = row.package_progress
    for r in ranges_of(s, row.id):
        message.ranges.add(
            camera_id=r.camera_id,
            start_us=r.start_us,
            end_us=r.end_us,
            camera_name=r.camera_name,
            retention_days=r.retention_days,
        )
    message.transitions.extend(transitions.message(t) for t in transitions.of(s, KIND, row.id))
    for part, segments in parts_of(s, row.id):
        message.parts.add(
            camera_id=part.camera_id,
            camera_name=part.camera_name,
            start_us=part.start_us,
            end_us=part.end_us,
            empty=part.empty,
            clip_start_us=part.clip_start_us,
            clip_end_us=part.clip_end_us,
            clip_bytes=part.clip_bytes,
            clip_sha256=part.clip_sha256,
            frames=part.frames,
            segments=[
                requisition_pb2.ExtractedSegmentRef(
                    segment_id=g.segment_id,
                    start_us=g.start_us,
                    end_us=g.end_us,
                    sha256=g.sha256,
                    prev_sha256=g.prev_sha256,
                    mask_version=g.mask_version,
                    bytes=g.bytes,
                    retention_end_us=g.retention_end_us,
                )
                for g in segments
            ],
        )
    if row.req_document_id:
        doc = s.get(Document, row.req_document_id)
        message.requisition.CopyFrom(
            requisition_pb2.RequisitionDocument(
                number=row.req_number,
                authority=row.req_authority,
                authority_kind=row.req_authority_kind,
                issued_on=row.req_issued_on,
                document_id=row.req_document_id,
                filename=doc.filename if doc else "",
                content_type=doc.content_type if doc else "",
                sha256=doc.sha256 if doc else "",
                size=doc.size if doc else 0,
                received_us=row.received_us or 0,
                received_by=row.received_by,
            )
        )
    if row.approved_us:
        entry = s.get(register.RegisterEntry, row.approval_seq) if row.approval_seq else None
        message.approval.CopyFrom(
            requisition_pb2.Approval(
                manager=row.approved_by,
                manager_name=row.approved_by_name,
                approved_us=row.approved_us,
                comment=row.approval_comment,
                register_seq=row.approval_seq or 0,
                register_entry_hash=entry.entry_hash if entry else "",
                signature=entry.signature if entry else "",
            )
        )
    if row.package_id:
        message.package.CopyFrom(
            requisition_pb2.PackageInfo(
                id=row.package_id,
                filename=row.package_filename,
                sha256=row.package_sha256,
                size=row.package_size,
                encrypted=row.package_encrypted,
                created_us=row.package_created_us or 0,
                created_by=row.package_created_by,
                manifest_sha256=row.manifest_sha256,
                public_key_fingerprint=key_fingerprint,
                files=[
                    requisition_pb2.PackageFile(path=f["path"], sha256=f["sha256"], size=f["bytes"])
                    for f in row.package_files
                ],
                available=bool(row.package_key) and row.purged_us is None,
            )
        )
    if row.delivered_us:
        receipt = s.get(Document, row.receipt_document_id) if row.receipt_document_id else None
        message.delivery.CopyFrom(
            requisition_pb2.Delivery(
                medium=row.delivery_medium,
                recipient_name=row.recipient_name,
                recipient_service=row.recipient_service,
                recipient_id=row.recipient_id,
                recipient_partner=row.recipient_partner,
                package_sha256=row.package_sha256,
                delivered_us=row.delivered_us,
                recorded_by=row.delivery_recorded_by,
                register_seq=row.delivery_seq or 0,
                receipt_sha256=receipt.sha256 if receipt else "",
            )
        )
    if row.feedback_us:
        message.feedback.CopyFrom(
            requisition_pb2.Feedback(
                useful=bool(row.feedback_useful),
                comment=row.feedback_comment,
                by=row.feedback_by,
                at_us=row.feedback_us,
            )
        )
    return message


def describe(ctx: Context, request_id: str, actor: requisition_pb2.Actor) -> requisition_pb2.Requisition:
    with session(ctx.engine) as s:
        return to_message(s, load(s, request_id, actor), ctx.key_fingerprint)


def listing(ctx: Context, request: requisition_pb2.ListRequisitionsRequest) -> list[requisition_pb2.Requisition]:
    if request.state and request.state not in workflow.STATES:
        raise Invalid(f"unknown state {request.state!r}; states: {', '.join(sorted(workflow.STATES))}")
    limit = min(max(int(request.limit or 100), 1), 500)
    query = select(Requisition)
    if request.state:
        query = query.where(Requisition.state == request.state)
    if request.partner:
        query = query.where(Requisition.partner == request.partner)
    if request.before_us:
        query = query.where(Requisition.created_us < request.before_us)
    with session(ctx.engine) as s:
        rows = list(s.exec(query.order_by(col(Requisition.created_us).desc()).limit(limit)))
        return [to_message(s, row, ctx.key_fingerprint) for row in rows]


# -- the signed requisition -------------------------------------------------------------------------


def receive(ctx: Context, meta: requisition_pb2.RequisitionUploadMeta, data: bytes) -> tuple[Requisition, Transition]:
    """extracted -> requisition_received: the scan is checked, encrypted, stored; legal hold starts."""
    actor = meta.actor
    now = _now(ctx)
    with session(ctx.engine) as s:
        row = load(s, meta.requisition_id, actor)
        workflow.check(row.number, row.state, workflow.RECEIVED)
    number = fields.line("number", meta.number, 100)
    authority = fields.line("authority", meta.authority, 200)
    kind = fields.choice("authority_kind", meta.authority_kind, AUTHORITY_KINDS)
    issued = fields.iso_date("issued_on", meta.issued_on)
    if issued > paris_date(now):
        raise Invalid(f"issued_on {issued} is in the future")
    if issued < paris_date(now - 366 * DAY_US):
        raise Invalid(f"issued_on {issued} is more than a year ago")
    checked = documents.check(data, meta.filename, ctx.settings.max_upload_bytes)
    doc = documents.store(
        ctx.documents,
        ctx.box,
        checked,
        owner_kind=KIND,
        owner_id=row.id,
        kind="requisition",
        created_us=now,
        created_by=actor.username,
    )
    try:
        with session(ctx.engine) as s:
            row = load(s, meta.requisition_id, actor, lock=True)
            transition = move(s, row, workflow.RECEIVED, actor, now, f"requisition {number} by {authority} ({kind})")
            row.req_number, row.req_authority, row.req_authority_kind = number, authority, kind
            row.req_issued_on = issued.isoformat()
            row.req_document_id = doc.id
            row.received_us, row.received_by = now, actor.username
            # Footage tied to a judicial procedure: kept for it until delivered (legal hold).
            row.buffer_deadline_us = None
            s.add(doc)
            register.append(
                s,
                ctx.signer,
                cadence=ctx.cadence,
                time_us=now,
                kind="requisition_received",
                request_id=row.id,
                request_number=row.number,
                actor=actor.username,
                payload={
                    "requisition_number": number,
                    "authority": authority,
                    "authority_kind": kind,
                    "issued_on": issued.isoformat(),
                    "document_sha256": doc.sha256,
                    "document_type": doc.content_type,
                    "legal_hold": "from now until delivery: footage tied to a judicial procedure",
                },
            )
            s.commit()
            return row, transition
    except BaseException:
        ctx.documents.delete(doc.object_key)  # nothing is kept of a refused upload
        raise


def read_document(
    ctx: Context, request_id: str, document_id: str, actor: requisition_pb2.Actor
) -> tuple[Document, bytes]:
    with session(ctx.engine) as s:
        row = load(s, request_id, actor)
        doc = s.get(Document, document_id)
        if doc is None or doc.owner_kind != KIND or doc.owner_id != row.id:
            raise NotFound(f"request {row.number} has no document {document_id!r}")
    return doc, documents.read(ctx.documents, ctx.box, doc)


# -- approval, refusal, cancellation, closure, feedback ---------------------------------------------


def summary(s: Session, row: Requisition) -> dict:
    """The request as the register records it: cameras, ranges, what was extracted."""
    return {
        "requesting_service": row.requesting_service,
        "officer": row.officer,
        "case_reference": row.case_reference,
        "ranges": [
            {"camera_id": r.camera_id, "camera_name": r.camera_name, "start": utc(r.start_us), "end": utc(r.end_us)}
            for r in ranges_of(s, row.id)
        ],
        "parts": [
            {
                "camera_id": p.camera_id,
                "start": utc(p.start_us),
                "end": utc(p.end_us),
                "empty": p.empty,
                "clip_sha256": p.clip_sha256,
                "segments": [g.sha256 for g in segs],
            }
            for p, segs in parts_of(s, row.id)
        ],
    }


def approve(ctx: Context, request: requisition_pb2.ApproveRequest) -> tuple[Requisition, Transition]:
    actor = request.actor
    now = _now(ctx)
    if actor.partner or actor.role != "manager":
        raise Denied("only a CSU manager approves a requisition")
    if not request.reauthenticated_us:
        # The gateway re-authenticates the manager (password and TOTP) right before this call.
        raise Denied("approving needs a fresh re-authentication (password and TOTP)")
    comment = fields.text("comment", request.comment, 2000, required=False)
    with session(ctx.engine) as s:
        row = load(s, request.id, actor, lock=True)
        workflow.check(row.number, row.state, workflow.APPROVED)
        if row.extracted_by == actor.username:
            raise Conflict(
                f"{actor.username} extracted this footage: another manager must approve it (four-eyes principle)"
            )
        transition = move(s, row, workflow.APPROVED, actor, now, comment or "approved")
        entry = register.append(
            s,
            ctx.signer,
            cadence=ctx.cadence,
            time_us=now,
            kind="approval",
            request_id=row.id,
            request_number=row.number,
            actor=actor.username,
            payload=summary(s, row)
            | {
                "requisition_number": row.req_number,
                "authority": row.req_authority,
                "authority_kind": row.req_authority_kind,
                "issued_on": row.req_issued_on,
                "operator": row.extracted_by,
                "manager": actor.username,
                "manager_name": actor.display_name,
                "reauthenticated": utc(request.reauthenticated_us),
                "comment": comment,
            },
        )
        row.approved_by, row.approved_by_name, row.approved_us = actor.username, actor.display_name, now
        row.approval_comment, row.approval_seq = comment, entry.seq
        s.commit()
        return row, transition


def end(ctx: Context, request: requisition_pb2.ReasonRequest, target: str) -> tuple[Requisition, Transition]:
    """refused / cancelled (the buffer is purged next, by purge.py) or closed."""
    actor = request.actor
    now = _now(ctx)
    reason = fields.text(
        "reason",
        request.reason,
        2000,
        min_length=5 if target != workflow.CLOSED else 1,
        required=target != workflow.CLOSED,
    )
    with session(ctx.engine) as s:
        row = load(s, request.id, actor, lock=True)
        workflow.check(row.number, row.state, target)
        if target == workflow.REFUSED and (actor.partner or actor.role != "manager"):
            raise Denied("only a CSU manager refuses a requisition request")
        if target == workflow.CLOSED and actor.partner:
            raise Denied("the CSU closes a delivered request")
        transition = move(s, row, target, actor, now, reason or "closed")
        extracted = row.extracted_us is not None
        if extracted or target == workflow.CLOSED:
            kind = {workflow.REFUSED: "refusal", workflow.CANCELLED: "cancellation", workflow.CLOSED: "closure"}[target]
            register.append(
                s,
                ctx.signer,
                cadence=ctx.cadence,
                time_us=now,
                kind=kind,
                request_id=row.id,
                request_number=row.number,
                actor=actor.username,
                payload={"reason": reason, "from_state": transition.from_state},
            )
        s.commit()
        return row, transition


def feedback(ctx: Context, request: requisition_pb2.FeedbackRequest) -> Requisition:
    actor = request.actor
    now = _now(ctx)
    comment = fields.text("comment", request.comment, 2000, required=False)
    with session(ctx.engine) as s:
        row = load(s, request.id, actor, lock=True)
        if row.state not in (workflow.DELIVERED, workflow.CLOSED):
            raise Conflict(f"request {row.number} is {row.state}: feedback comes after delivery")
        row.feedback_useful, row.feedback_comment = request.useful, comment
        row.feedback_by, row.feedback_us = actor.username, now
        row.updated_us = now
        s.add(row)
        s.commit()
        return row


def due_for_expiry(ctx: Context, now_us: int) -> list[str]:
    """Requests whose footage or buffer deadline has passed without the requisition."""
    with session(ctx.engine) as s:
        extracted = s.exec(
            select(Requisition.id).where(
                Requisition.state == workflow.EXTRACTED,
                col(Requisition.buffer_deadline_us).is_not(None),
                col(Requisition.buffer_deadline_us) <= now_us,
            )
        )
        requested = s.exec(
            select(Requisition.id).where(
                Requisition.state == workflow.REQUESTED, Requisition.footage_deadline_us <= now_us
            )
        )
        return [*extracted, *requested]


SYSTEM = requisition_pb2.Actor(username="system", display_name="CSU platform", role="system")


def expire(ctx: Context, request_id: str, now_us: int) -> tuple[Requisition, Transition] | None:
    """Move a request past its deadline to expired (the purge follows, purge.py)."""
    with session(ctx.engine) as s:
        row = load(s, request_id, SYSTEM, lock=True)
        if row.state == workflow.EXTRACTED and (row.buffer_deadline_us or now_us + 1) > now_us:
            return None
        if row.state == workflow.REQUESTED and row.footage_deadline_us > now_us:
            return None
        if row.state not in (workflow.EXTRACTED, workflow.REQUESTED):
            return None
        if row.state == workflow.REQUESTED and row.extracting_us is not None:
            return None  # an extraction is running: it ends (or fails) first
        deadline = row.buffer_deadline_us or row.footage_deadline_us
        transition = move(
            s,
            row,
            workflow.EXPIRED,
            SYSTEM,
            now_us,
            f"no requisition received before the footage's retention ended ({utc(deadline)})",
        )
        s.commit()
        return row, transition
