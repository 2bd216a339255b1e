"""The audit trail for auditors (CNIL, prefect, IGS): search, export, verify."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from services.common.clock import to_us
from services.common.objectstore import StoreUnavailable
from services.common.timefmt import iso
from services.gateway.backends import Backends, BackendsDep
from services.gateway.identity import audit_export, audit_log
from services.gateway.identity.models import AuditEntry
from services.gateway.identity.security import Principal, audit, require
from services.gateway.video.timerange import parse_instant

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


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
    # The first entry it can no longer vouch for, and why.
    first_bad_seq: int | None
    problem: str | None
    # The last entry a signed checkpoint or published head vouches for (later ones: not signed yet).
    signed_through: int | None = None
    # The last entry a head published outside the database vouches for.
    anchored_through: int | None = None


def out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        seq=entry.seq,
        time=iso(entry.time_us),
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
    b: BackendsDep,
    actor: str | None = Query(None, max_length=160),
    target: str | None = Query(None, max_length=256, description='e.g. "camera:cam-42", "user:jdupont"'),
    action: str | None = Query(None, max_length=64, description='an action or its prefix, e.g. "ptz"'),
    start: str | None = Query(None, description="ISO 8601 with zone"),
    end: str | None = Query(None, description="ISO 8601 with zone"),
    after: int = Query(0, ge=0, le=2**62, description="continue after this sequence number"),
    limit: int = Query(200, ge=1, le=1000),
    principal: Principal = Depends(require("audit")),
) -> list[AuditOut]:
    await audit(principal, "audit.search", "audit", details={"actor": actor, "target": target, "action": action})
    return [out(e) for e in await _search(b, actor, target, action, start, end, after, limit)]


@router.get("/export")
async def export(
    b: BackendsDep,
    format: str = Query("csv", pattern="^(csv|json)$"),
    actor: str | None = Query(None, max_length=160),
    target: str | None = Query(None, max_length=256),
    action: str | None = Query(None, max_length=64),
    start: str | None = Query(None),
    end: str | None = Query(None),
    principal: Principal = Depends(require("audit")),
) -> StreamingResponse:
    """The trail as CSV or JSON, streamed page by page, with the signed checkpoints and the heads
    published outside the database, so `csuctl audit verify --export FILE` checks it offline
    (services/gateway/identity/audit_export.py). Filtered by actor, target or action, it is a listing that
    cannot be verified as a chain; a time range can."""
    await audit(principal, "audit.export", "audit", details={"format": format, "actor": actor, "target": target})
    start_us = to_us(parse_instant("start", start)) if start else None
    end_us = to_us(parse_instant("end", end)) if end else None
    listing = {"actor": actor, "target": target, "action": action}
    anchors, note = None, ""
    if not any(listing.values()):
        # Read before the range is planned: a head published meanwhile must not look past its end.
        try:
            anchors = await asyncio.to_thread(b.anchors.read, audit_log.CHAIN)
        except StoreUnavailable as exc:
            note = f"unavailable: {exc}"
    plan = await asyncio.to_thread(
        audit_export.plan, b.engine, b.signer, b.clock, b.cadence, start_us=start_us, end_us=end_us, listing=listing
    )
    plan = replace(plan, anchors_note=note)
    keep = audit_export.newest_claim(anchors, plan)
    search = listing | {"start_us": start_us, "end_us": end_us}
    writer = audit_export.CsvWriter() if format == "csv" else audit_export.JsonWriter()

    async def body() -> AsyncIterator[str]:
        yield writer.header()
        after, before = 0, plan.before
        while True:
            rows = await asyncio.to_thread(audit_export.page, b.engine, plan, after, search, anchors, keep)
            if not rows:
                break
            yield writer.rows(rows, before)
            after, before = rows[-1].entry.seq, None
        # Past the end of an export that runs to the head: a head published further says entries went.
        past = audit_export.past_end(anchors, plan) if end_us is None else []
        yield writer.end(plan, past)

    media, name = ("text/csv; charset=utf-8", "audit.csv") if format == "csv" else ("application/json", "audit.json")
    return StreamingResponse(
        body(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get("/verify", response_model=VerifyOut)
async def verify(b: BackendsDep, principal: Principal = Depends(require("audit"))) -> VerifyOut:
    """The chain, its signed checkpoints at their cadence, and the heads published outside the
    database; on failure, the first entry it can no longer vouch for and why."""
    await audit(principal, "audit.verify", "audit")
    try:
        verdict = await asyncio.to_thread(audit_log.verify_anchored, b.engine, b.signer.keyring(), b.anchors, b.cadence)
    except StoreUnavailable as exc:
        raise HTTPException(503, f"the heads published outside the database cannot be read: {exc}") from exc
    return VerifyOut(
        ok=verdict.ok,
        entries=verdict.entries,
        first_bad_seq=verdict.first_bad_seq,
        problem=verdict.problem,
        signed_through=verdict.signed_through,
        anchored_through=verdict.anchored_through,
    )
