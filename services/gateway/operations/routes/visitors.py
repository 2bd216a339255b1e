"""The viewing-room register: declaring people to the prefecture, recording its answer, reading it.

Declaring, recording answers, cancelling and resending are administration ("users": the people
who manage accounts and habilitations); reading and exporting the register is for auditors
("audit") and administrators. Everything is audited before it happens.
"""

import asyncio
import csv
import io
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict

from services.common.clock import to_us
from services.common.timefmt import iso
from services.gateway.backends import Backends, BackendsDep
from services.gateway.identity.security import Principal, audit, require
from services.gateway.operations import visitors
from services.gateway.operations.access import require_any
from services.gateway.operations.fields import MAX_ID, csv_cell, line, text
from services.gateway.operations.models import VisitorDeclaration
from services.gateway.video.timerange import checked_us, parse_instant

router = APIRouter(prefix="/api/v1/visitors", tags=["viewing-room register"])
MAX_VISIT = timedelta(days=31)
# A declaration may be filed late by this much (someone already on their way), never for a past visit.
LATE_START = timedelta(hours=24)
CSV_FIELDS = [
    "reference",
    "name",
    "organisation",
    "role",
    "quality",
    "purpose",
    "expected_start",
    "expected_end",
    "declared_by",
    "declared",
    "status",
    "mail_status",
    "mail_attempts",
    "mail_error",
    "mail_sent",
    "mail_recipient",
    "prefecture_ref",
    "answer",
    "answer_recorded_by",
    "answer_comment",
]
Role = Literal["agent", "manager", "visitor", "police", "contractor", "other"]
DeclarationId = Annotated[int, Path(ge=1, le=MAX_ID)]


class DeclarationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: line(128)  # type: ignore[valid-type]
    organisation: line(128)  # type: ignore[valid-type]
    role: Role
    quality: line(128, 0) = ""  # type: ignore[valid-type]
    purpose: text(1000)  # type: ignore[valid-type]
    expected_start: AwareDatetime
    expected_end: AwareDatetime


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["validated", "refused"]
    prefecture_ref: line(128, 0) = ""  # type: ignore[valid-type]
    answered_at: AwareDatetime
    comment: text(1000, 0) = ""  # type: ignore[valid-type]


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: text(1000)  # type: ignore[valid-type]


class DeclarationOut(BaseModel):
    id: int
    reference: str
    name: str
    organisation: str
    role: str
    quality: str
    purpose: str
    expected_start: str
    expected_end: str
    declared_by: str
    declared: str
    status: str
    mail_status: str
    mail_attempts: int
    mail_error: str
    mail_sent: str | None
    mail_recipient: str
    prefecture_ref: str
    answer: str | None
    answer_recorded_by: str
    answer_comment: str


def out(row: VisitorDeclaration) -> DeclarationOut:
    assert row.id is not None
    return DeclarationOut(
        id=row.id,
        reference=visitors.reference(row),
        name=row.name,
        organisation=row.organisation,
        role=row.role,
        quality=row.quality,
        purpose=row.purpose,
        expected_start=iso(row.expected_start_us) or "",
        expected_end=iso(row.expected_end_us) or "",
        declared_by=row.declared_by,
        declared=iso(row.declared_us) or "",
        status=row.status,
        mail_status=row.mail_status,
        mail_attempts=row.mail_attempts,
        mail_error=row.mail_error,
        mail_sent=iso(row.mail_sent_us),
        mail_recipient=row.mail_recipient,
        prefecture_ref=row.prefecture_ref,
        answer=iso(row.answer_us),
        answer_recorded_by=row.answer_recorded_by,
        answer_comment=row.answer_comment,
    )


async def _existing(b: Backends, declaration_id: int) -> VisitorDeclaration:
    return await asyncio.to_thread(visitors.get, b.engine, declaration_id)


@router.post("", response_model=DeclarationOut, status_code=201)
async def declare(
    body: DeclarationIn, b: BackendsDep, principal: Principal = Depends(require("users"))
) -> DeclarationOut:
    """Declare a person expected in the viewing room; the declaration is mailed to the prefecture."""
    start_us = checked_us("expected_start", body.expected_start)
    end_us = checked_us("expected_end", body.expected_end)
    now = b.clock.now()
    if end_us <= start_us:
        raise HTTPException(422, "expected_end must be after expected_start")
    if end_us - start_us > MAX_VISIT.total_seconds() * 1e6:
        raise HTTPException(422, f"a declared presence lasts at most {MAX_VISIT.days} days: declare it again after")
    if end_us <= to_us(now):
        raise HTTPException(422, "the expected presence has already ended: declarations are made in advance")
    if start_us < to_us(now - LATE_START):
        raise HTTPException(422, "expected_start is more than 24 hours in the past")
    await audit(
        principal,
        "visitors.declare",
        "visitors",
        details={
            "name": body.name,
            "organisation": body.organisation,
            "role": body.role,
            "expected_start": iso(start_us),
            "expected_end": iso(end_us),
        },
    )
    new = visitors.NewDeclaration(
        name=body.name,
        organisation=body.organisation,
        role=body.role,
        quality=body.quality,
        purpose=body.purpose,
        expected_start_us=start_us,
        expected_end_us=end_us,
    )
    row = await asyncio.to_thread(visitors.declare, b.engine, b.clock, new, principal.username)
    assert row.id is not None
    # Sent now, in the request: the answer tells the administrator at once whether it left.
    await visitors.deliver(b.engine, b.settings, b.clock, [row.id])
    return out(await _existing(b, row.id))


@router.get("", response_model=list[DeclarationOut])
async def search(
    b: BackendsDep,
    start: str | None = Query(None, description="ISO 8601 with zone: presences still expected from then"),
    end: str | None = Query(None, description="ISO 8601 with zone: presences expected before then"),
    status: Literal["pending", "validated", "refused", "cancelled"] | None = Query(None),
    mail_status: Literal["queued", "sent", "not_sent"] | None = Query(None),
    after: int = Query(0, ge=0, le=MAX_ID, description="continue after this declaration id"),
    limit: int = Query(200, ge=1, le=1000),
    principal: Principal = Depends(require_any("audit", "users")),
) -> list[DeclarationOut]:
    start_us = checked_us("start", parse_instant("start", start)) if start else None
    end_us = checked_us("end", parse_instant("end", end)) if end else None
    await audit(principal, "visitors.consult", "visitors", details={"start": start, "end": end, "status": status})
    rows = await asyncio.to_thread(
        visitors.search,
        b.engine,
        start_us=start_us,
        end_us=end_us,
        status=status,
        mail_status=mail_status,
        after_id=after,
        limit=limit,
    )
    return [out(r) for r in rows]


@router.get("/export")
async def export(
    b: BackendsDep,
    start: str | None = Query(None, description="ISO 8601 with zone"),
    end: str | None = Query(None, description="ISO 8601 with zone"),
    principal: Principal = Depends(require_any("audit", "users")),
) -> Response:
    """The register as CSV (UTF-8 with a BOM, so spreadsheet software shows accents)."""
    start_us = checked_us("start", parse_instant("start", start)) if start else None
    end_us = checked_us("end", parse_instant("end", end)) if end else None
    await audit(principal, "visitors.export", "visitors", details={"start": start, "end": end, "format": "csv"})
    rows: list[VisitorDeclaration] = []
    after = 0
    while True:
        page = await asyncio.to_thread(
            visitors.search, b.engine, start_us=start_us, end_us=end_us, after_id=after, limit=1000
        )
        rows += page
        if len(page) < 1000:
            break
        after = page[-1].id or 0
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell(v) for k, v in out(row).model_dump().items()})
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="viewing-room-register.csv"'},
    )


@router.get("/{declaration_id}", response_model=DeclarationOut)
async def one(
    declaration_id: DeclarationId,
    b: BackendsDep,
    principal: Principal = Depends(require_any("audit", "users")),
) -> DeclarationOut:
    row = await _existing(b, declaration_id)
    await audit(principal, "visitors.consult", f"visitor:{declaration_id}")
    return out(row)


@router.post("/{declaration_id}/answer", response_model=DeclarationOut)
async def answer(
    declaration_id: DeclarationId,
    body: AnswerIn,
    b: BackendsDep,
    principal: Principal = Depends(require("users")),
) -> DeclarationOut:
    """Record the prefecture's answer: validated (with its reference) or refused."""
    answer_us = checked_us("answered_at", body.answered_at)
    if answer_us > to_us(b.clock.now() + timedelta(minutes=5)):
        raise HTTPException(422, "answered_at is in the future")
    if body.decision == "validated" and not body.prefecture_ref:
        raise HTTPException(422, "a validation needs the prefecture's reference (prefecture_ref)")
    row = await _existing(b, declaration_id)
    if row.status != "pending":
        raise HTTPException(409, f"declaration {visitors.reference(row)} is already {row.status}")
    await audit(
        principal,
        f"visitors.{body.decision}",
        f"visitor:{declaration_id}",
        details={"prefecture_ref": body.prefecture_ref, "answered_at": iso(answer_us), "name": row.name},
    )
    row = await asyncio.to_thread(
        visitors.record_answer,
        b.engine,
        b.clock,
        declaration_id,
        validated=body.decision == "validated",
        prefecture_ref=body.prefecture_ref,
        answer_us=answer_us,
        comment=body.comment,
        recorded_by=principal.username,
    )
    return out(row)


@router.post("/{declaration_id}/cancel", response_model=DeclarationOut)
async def cancel(
    declaration_id: DeclarationId,
    body: CancelIn,
    b: BackendsDep,
    principal: Principal = Depends(require("users")),
) -> DeclarationOut:
    """The visit will not happen; the declaration stays in the register, cancelled."""
    row = await _existing(b, declaration_id)
    if row.status in ("cancelled", "refused"):
        raise HTTPException(409, f"declaration {visitors.reference(row)} is already {row.status}")
    await audit(principal, "visitors.cancel", f"visitor:{declaration_id}", details={"comment": body.comment})
    row = await asyncio.to_thread(visitors.cancel, b.engine, b.clock, declaration_id, body.comment, principal.username)
    return out(row)


@router.post("/{declaration_id}/resend", response_model=DeclarationOut)
async def resend(
    declaration_id: DeclarationId, b: BackendsDep, principal: Principal = Depends(require("users"))
) -> DeclarationOut:
    """Try the mail to the prefecture again now (it is retried on its own too)."""
    row = await _existing(b, declaration_id)
    if row.status != "pending":
        raise HTTPException(409, f"declaration {visitors.reference(row)} is {row.status}: nothing to send")
    if row.mail_status == "sent":
        raise HTTPException(409, f"declaration {visitors.reference(row)} was already sent on {iso(row.mail_sent_us)}")
    await audit(principal, "visitors.resend", f"visitor:{declaration_id}")
    await visitors.deliver(b.engine, b.settings, b.clock, [declaration_id])
    return out(await _existing(b, declaration_id))
