"""The audit trail for auditors (CNIL, prefect, IGS): search, export, verify."""

import asyncio
import csv
import io
import json

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel

from services.common.clock import from_us, to_us
from services.gateway import audit_log
from services.gateway.backends import Backends, backends
from services.gateway.models import AuditEntry
from services.gateway.security import Principal, audit, require
from services.gateway.timerange import parse_instant

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
FIELDS = [
    "seq",
    "time",
    "actor",
    "role",
    "origin_ip",
    "partner",
    "action",
    "target",
    "justification",
    "recipient",
    "outcome",
    "details",
    "entry_hash",
]


class AuditOut(BaseModel):
    seq: int
    time: str
    actor: str
    role: str
    origin_ip: str
    partner: str
    action: str
    target: str
    justification: str
    recipient: str
    outcome: str
    details: dict
    entry_hash: str


class VerifyOut(BaseModel):
    ok: bool
    entries: int
    first_bad_seq: int | None
    problem: str | None


def out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        seq=entry.seq,
        time=from_us(entry.time_us).isoformat().replace("+00:00", "Z"),
        actor=entry.actor,
        role=entry.role,
        origin_ip=entry.origin_ip,
        partner=entry.partner,
        action=entry.action,
        target=entry.target,
        justification=entry.justification,
        recipient=entry.recipient,
        outcome=entry.outcome,
        details=json.loads(entry.details_json or "{}"),
        entry_hash=entry.entry_hash,
    )


async def _search(
    b: Backends,
    actor: str | None,
    target: str | None,
    action: str | None,
    start: str | None,
    end: str | None,
    after: int,
    limit: int,
) -> list[AuditEntry]:
    return await asyncio.to_thread(
        audit_log.search,
        b.engine,
        actor=actor,
        target=target,
        action=action,
        start_us=to_us(parse_instant("start", start)) if start else None,
        end_us=to_us(parse_instant("end", end)) if end else None,
        after_seq=after,
        limit=limit,
    )


@router.get("", response_model=list[AuditOut])
async def search(
    actor: str | None = Query(None, max_length=160),
    target: str | None = Query(None, max_length=256, description='e.g. "camera:cam-42", "user:jdupont"'),
    action: str | None = Query(None, max_length=64, description='an action or its prefix, e.g. "ptz"'),
    start: str | None = Query(None, description="ISO 8601 with zone"),
    end: str | None = Query(None, description="ISO 8601 with zone"),
    after: int = Query(0, ge=0, le=2**62, description="continue after this sequence number"),
    limit: int = Query(200, ge=1, le=1000),
    principal: Principal = Depends(require("audit")),
    b: Backends = Depends(backends),
) -> list[AuditOut]:
    await audit(principal, "audit.search", "audit", details={"actor": actor, "target": target, "action": action})
    return [out(e) for e in await _search(b, actor, target, action, start, end, after, limit)]


@router.get("/export")
async def export(
    format: str = Query("csv", pattern="^(csv|json)$"),
    actor: str | None = Query(None, max_length=160),
    target: str | None = Query(None, max_length=256),
    action: str | None = Query(None, max_length=64),
    start: str | None = Query(None),
    end: str | None = Query(None),
    principal: Principal = Depends(require("audit")),
    b: Backends = Depends(backends),
) -> Response:
    await audit(principal, "audit.export", "audit", details={"format": format, "actor": actor, "target": target})
    rows: list[AuditOut] = []
    after = 0
    while True:  # the whole matching trail, in pages
        page = await _search(b, actor, target, action, start, end, after, 1000)
        rows += [out(e) for e in page]
        if len(page) < 1000:
            break
        after = page[-1].seq
    if format == "json":
        body = json.dumps([r.model_dump() for r in rows], ensure_ascii=False, indent=1)
        return Response(
            body, media_type="application/json", headers={"Content-Disposition": 'attachment; filename="audit.json"'}
        )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS)
    writer.writeheader()
    for r in rows:
        writer.writerow(r.model_dump() | {"details": json.dumps(r.details, ensure_ascii=False)})
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )


@router.get("/verify", response_model=VerifyOut)
async def verify(principal: Principal = Depends(require("audit")), b: Backends = Depends(backends)) -> VerifyOut:
    await audit(principal, "audit.verify", "audit")
    verdict = await asyncio.to_thread(audit_log.verify_chain, b.engine, b.signer.keyring())
    return VerifyOut(
        ok=verdict.ok, entries=verdict.entries, first_bad_seq=verdict.first_bad_seq, problem=verdict.problem
    )
