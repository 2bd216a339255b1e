"""The register of extractions (cahier des extractions) for managers and auditors: read it, print
it (PDF), export it (CSV, JSON) for the CNIL or the prefect, and verify its chain and signatures
(a broken chain is reported with its first bad entry). Every consultation is audited."""

import json

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import AwareDatetime

from services.common.pb.csu.v1 import requisition_pb2
from services.common.timefmt import iso
from services.gateway.backends import Backends, BackendsDep, rpc_errors
from services.gateway.casework.client import (
    REQUISITION_TIMEOUT_S,
    actor_of,
    case_cameras,
    file_response,
    read_stream,
)
from services.gateway.identity.access import may_see
from services.gateway.identity.security import ALL_GROUPS, Principal, audit, refuse, require
from services.gateway.video.timerange import checked_us

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
    b: BackendsDep,
    after: int = Query(0, ge=0, le=2**62, description="continue after this entry number"),
    limit: int = Query(500, ge=1, le=2000),
    start: AwareDatetime | None = Query(None),
    end: AwareDatetime | None = Query(None),
    request_id: str | None = Query(None, pattern=r"^[0-9a-f]{32}$"),
    principal: Principal = Depends(require("register")),
) -> list[dict]:
    await audit(principal, "register.read", "register", details={"after": after, "request_id": request_id})
    shown: list[requisition_pb2.RegisterEntry] = []
    cursor = after
    # Pages until `limit` entries the caller may see (or the end): an entry about a request they
    # may not see is left out, as if it did not exist (its seq is a gap, the chain is verify's).
    while len(shown) < limit:
        page = await _page(b, cursor, limit, start, end, request_id or "")
        shown += await _visible(principal, b, page)
        if len(page) < limit:
            break
        cursor = page[-1].seq
    return [entry_out(e) for e in shown[:limit]]


async def _page(
    b: Backends, after: int, limit: int, start: AwareDatetime | None, end: AwareDatetime | None, request_id: str = ""
) -> list[requisition_pb2.RegisterEntry]:
    async with rpc_errors("requisition"):
        answer = await b.requisition.ListRegister(
            requisition_pb2.ListRegisterRequest(
                after_seq=after,
                limit=limit,
                start_us=checked_us("start", start) if start else 0,
                end_us=checked_us("end", end) if end else 0,
                request_id=request_id,
            ),
            timeout=REQUISITION_TIMEOUT_S,
        )
    return list(answer.entries)


async def _visible(
    principal: Principal, b: Backends, entries: list[requisition_pb2.RegisterEntry]
) -> list[requisition_pb2.RegisterEntry]:
    """The entries about requests the caller may see under the case rule (access.py)."""
    if ALL_GROUPS in principal.camera_groups:
        return entries
    seen: dict[str, bool] = {}
    for request_id in {e.request_id for e in entries if e.request_id}:
        async with rpc_errors("requisition"):
            r = await b.requisition.GetRequisition(
                requisition_pb2.RequisitionRef(id=request_id, actor=actor_of(principal)), timeout=REQUISITION_TIMEOUT_S
            )
        seen[request_id] = await may_see(principal, ("register",), case_cameras(r))
    return [e for e in entries if not e.request_id or seen[e.request_id]]


@router.get("/verify")
async def verify(b: BackendsDep, principal: Principal = Depends(require("register"))) -> dict:
    """Recompute every hash and check every signature from the first entry."""
    await audit(principal, "register.verify", "register")
    async with rpc_errors("requisition"):
        verdict = await b.requisition.VerifyRegister(
            requisition_pb2.VerifyRegisterRequest(actor=actor_of(principal)), timeout=REQUISITION_TIMEOUT_S * 4
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
    b: BackendsDep,
    format: str = Query("pdf", pattern="^(pdf|csv|json)$", description="pdf (printable), csv or json"),
    start: AwareDatetime | None = Query(None),
    end: AwareDatetime | None = Query(None),
    principal: Principal = Depends(require("register")),
) -> Response:
    if ALL_GROUPS not in principal.camera_groups:
        # The printed register is the whole period's; a caller who may not see some of its
        # requests narrows the period or asks someone habilitated for every camera. (What those
        # requests are is not said: the entries they may see are at GET /register.)
        after = 0
        while page := await _page(b, after, 2000, start, end):
            if len(await _visible(principal, b, page)) < len(page):
                await refuse(
                    principal,
                    "register",
                    "register",
                    "the register of this period records requests on cameras outside your habilitation: "
                    "export it for a period you are cleared for, or ask someone cleared for every camera",
                )
            after = page[-1].seq
    await audit(principal, "register.export", "register", details={"format": format})
    # The whole register is rendered (a PDF of thousands of entries: seconds to a minute) before
    # the first message, which is bounded by the call's own deadline rather than by the bound on
    # silence; the file is small, its messages follow at once.
    render_timeout_s = REQUISITION_TIMEOUT_S * 4
    call = b.requisition.RenderRegister(
        requisition_pb2.RenderRegisterRequest(
            format=format,
            start_us=checked_us("start", start) if start else 0,
            end_us=checked_us("end", end) if end else 0,
            actor=actor_of(principal),
        ),
        timeout=render_timeout_s,
    )
    info, data = await read_stream(b, call, first_s=render_timeout_s)
    return file_response(info, data, inline=format == "pdf")


@router.get("/public-key")
async def public_key(b: BackendsDep, principal: Principal = Depends(require("register"))) -> dict:
    """The deployment's public key and its fingerprint (what recipients compare when verifying)."""
    async with rpc_errors("requisition"):
        key = await b.requisition.GetPublicKey(requisition_pb2.PublicKeyRequest(), timeout=REQUISITION_TIMEOUT_S)
    return {"pem": key.pem, "fingerprint": key.fingerprint}
