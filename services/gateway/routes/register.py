"""The register of extractions (cahier des extractions) for managers and auditors: read it, print
it (PDF), export it (CSV, JSON) for the CNIL or the prefect, and verify its chain and signatures
(a broken chain is reported with its first bad entry). Every consultation is audited."""

import json

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import AwareDatetime

from services.common.pb.csu.v1 import requisition_pb2
from services.gateway.backends import Backends, backends
from services.gateway.operations.timefmt import checked_us, iso
from services.gateway.routes.requisitions import (
    RPC_TIMEOUT_S,
    actor_of,
    file_response,
    read_stream,
    requisition_errors,
    service,
)
from services.gateway.security import Principal, audit, require

router = APIRouter(prefix="/api/v1/register", tags=["register"])


def entry_out(e: requisition_pb2.RegisterEntry) -> dict:
    return {
        "seq": e.seq,
        "time": iso(e.time_us),
        "kind": e.kind,
        "request_id": e.request_id,
        "request_number": e.request_number,
        "actor": e.actor,
        "details": json.loads(e.payload_json or "{}"),
        "prev_hash": e.prev_hash,
        "entry_hash": e.entry_hash,
        "signature": e.signature,
        "key_fingerprint": e.key_fingerprint,
    }


@router.get("")
async def entries(
    after: int = Query(0, ge=0, le=2**62, description="continue after this entry number"),
    limit: int = Query(500, ge=1, le=2000),
    start: AwareDatetime | None = Query(None),
    end: AwareDatetime | None = Query(None),
    request_id: str | None = Query(None, pattern=r"^[0-9a-f]{32}$"),
    principal: Principal = Depends(require("register")),
    b: Backends = Depends(backends),
) -> list[dict]:
    await audit(principal, "register.read", "register", details={"after": after, "request_id": request_id})
    async with requisition_errors():
        answer = await service(b).ListRegister(
            requisition_pb2.ListRegisterRequest(
                after_seq=after,
                limit=limit,
                start_us=checked_us("start", start) if start else 0,
                end_us=checked_us("end", end) if end else 0,
                request_id=request_id or "",
            ),
            timeout=RPC_TIMEOUT_S,
        )
    return [entry_out(e) for e in answer.entries]


@router.get("/verify")
async def verify(principal: Principal = Depends(require("register")), b: Backends = Depends(backends)) -> dict:
    """Recompute every hash and check every signature from the first entry."""
    await audit(principal, "register.verify", "register")
    async with requisition_errors():
        verdict = await service(b).VerifyRegister(
            requisition_pb2.VerifyRegisterRequest(actor=actor_of(principal)), timeout=RPC_TIMEOUT_S * 4
        )
    return {
        "ok": verdict.ok,
        "entries": verdict.entries,
        "first_bad_seq": verdict.first_bad_seq or None,
        "problem": verdict.problem or None,
        "public_key_fingerprint": verdict.public_key_fingerprint,
    }


@router.get("/export")
async def export(
    format: str = Query("pdf", pattern="^(pdf|csv|json)$", description="pdf (printable), csv or json"),
    start: AwareDatetime | None = Query(None),
    end: AwareDatetime | None = Query(None),
    principal: Principal = Depends(require("register")),
    b: Backends = Depends(backends),
) -> Response:
    await audit(principal, "register.export", "register", details={"format": format})
    call = service(b).RenderRegister(
        requisition_pb2.RenderRegisterRequest(
            format=format,
            start_us=checked_us("start", start) if start else 0,
            end_us=checked_us("end", end) if end else 0,
            actor=actor_of(principal),
        ),
        timeout=RPC_TIMEOUT_S * 4,
    )
    info, data = await read_stream(call)
    return file_response(info, data, inline=format == "pdf")


@router.get("/public-key")
async def public_key(principal: Principal = Depends(require("register")), b: Backends = Depends(backends)) -> dict:
    """The deployment's public key and its fingerprint (what recipients compare when verifying)."""
    async with requisition_errors():
        key = await service(b).GetPublicKey(requisition_pb2.PublicKeyRequest(), timeout=RPC_TIMEOUT_S)
    return {"pem": key.pem, "fingerprint": key.fingerprint}
