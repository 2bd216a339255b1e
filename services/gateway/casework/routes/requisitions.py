"""Judicial requisitions: the workflow's REST side (RequisitionService does the work).

    requested -> extracted -> requisition_received -> approved -> delivered -> closed
    (+ expired, refused, cancelled; a transition the state does not allow is a 409)

Who: a request is recorded by a federated police user (their partner's own) or by CSU staff
taking a phone or e-mail request ("export" or "playback" on the cameras); CSU staff with "export"
on every camera extract, build the package and record handovers; the signed requisition is
uploaded by CSU staff or the requesting partner; a manager ("sign") approves — re-entering their
password and current TOTP — or refuses; the requesting partner downloads the package through the
federation door and confirms its SHA-256. Every step is audited before it happens.

What the casework routes share (the requisition service's errors, the caller as an `Actor`, files
and uploads) is services/gateway/casework/.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from services.common.clock import to_us
from services.common.pb.csu.v1 import requisition_pb2
from services.common.timefmt import iso
from services.gateway.backends import Backends, BackendsDep, rpc_errors
from services.gateway.casework.client import (
    REQUISITION_TIMEOUT_S,
    actor_of,
    ascii_filename,
    case_cameras,
    check_cameras,
    file_response,
    read_stream,
)
from services.gateway.casework.forms import UPLOAD_DOC, read_form
from services.gateway.identity import login
from services.gateway.identity.access import Case, case_dependency, may_see, require_role
from services.gateway.identity.security import Principal, audit, require
from services.gateway.operations.access import require_any
from services.gateway.operations.fields import CAMERA_ID, line, text
from services.gateway.streams import Relay
from services.gateway.video.timerange import checked_us

router = APIRouter(prefix="/api/v1/requisitions", tags=["requisitions"])
# Extraction copies hours of footage and builds its clips; packaging hashes and zips them.
LONG_RPC_TIMEOUT_S = 1800.0
# Who may list and read requests (each one then under the case rule of access.py).
LIST_ACTIONS = ("export", "playback", "register")
RequestId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="the request's id")]


# -- bodies ------------------------------------------------------------------------------------------


class RangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_id: CAMERA_ID
    start: AwareDatetime
    end: AwareDatetime


class RequisitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requesting_service: line(200)  # type: ignore[valid-type]
    officer: line(200)  # type: ignore[valid-type]
    officer_contact: line(200, 0) = ""  # type: ignore[valid-type]
    case_reference: line(200)  # type: ignore[valid-type]
    reason: text(2000)  # type: ignore[valid-type]
    channel: Literal["phone", "email", "mail", "in_person", "federation"] = "phone"
    ranges: list[RangeIn] = Field(min_length=1, max_length=32)


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=1, max_length=256)
    totp: str = Field("", max_length=10)
    comment: text(2000, 0) = ""  # type: ignore[valid-type]


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: text(2000)  # type: ignore[valid-type]


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: text(2000, 0) = ""  # type: ignore[valid-type]


class PackageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field("", max_length=256, description="optional AES-256 zip password (12 characters or more)")


class DeliveryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    medium: Literal["usb", "download"]
    package_sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    recipient_name: line(200, 0) = ""  # type: ignore[valid-type]
    recipient_service: line(200, 0) = ""  # type: ignore[valid-type]
    recipient_id: line(200, 0) = ""  # type: ignore[valid-type]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    useful: bool
    comment: text(2000, 0) = ""  # type: ignore[valid-type]


# -- answers -------------------------------------------------------------------------------------------


def progress_out(r: requisition_pb2.Requisition) -> dict:
    """How far a running extraction and package build have got, 0 to 1 (null when none runs)."""
    return {
        name: round(getattr(r, name), 3) if r.HasField(name) else None
        for name in ("extraction_progress", "package_progress")
    }


def requisition_out(r: requisition_pb2.Requisition) -> dict:
    out: dict = {
        "id": r.id,
        "number": r.number,
        "state": r.state,
        "requesting_service": r.requesting_service,
        "officer": r.officer,
        "officer_contact": r.officer_contact,
        "case_reference": r.case_reference,
        "reason": r.reason,
        "channel": r.channel,
        "partner": r.partner or None,
        "requested_by": r.requested_by,
        "created": iso(r.created_us),
        "updated": iso(r.updated_us),
        "ranges": [
            {
                "camera_id": x.camera_id,
                "camera_name": x.camera_name,
                "start": iso(x.start_us),
                "end": iso(x.end_us),
                "retention_days": x.retention_days,
            }
            for x in r.ranges
        ],
        "transitions": [
            {
                "from": t.from_state or None,
                "to": t.to_state,
                "by": t.actor,
                "role": t.role,
                "at": iso(t.at_us),
                "reason": t.reason,
            }
            for t in r.transitions
        ],
        "buffer_deadline": iso(r.buffer_deadline_us) if r.buffer_deadline_us else None,
        "legal_hold": r.legal_hold,
        "extracted_by": r.extracted_by or None,
        "extracted": iso(r.extracted_us) if r.extracted_us else None,
        **progress_out(r),
        "parts": [
            {
                "camera_id": p.camera_id,
                "camera_name": p.camera_name,
                "start": iso(p.start_us),
                "end": iso(p.end_us),
                "empty": p.empty,
                "clip_sha256": p.clip_sha256 or None,
                "clip_bytes": p.clip_bytes,
                "frames": p.frames,
                "segments": [
                    {
                        "id": g.segment_id,
                        "start": iso(g.start_us),
                        "end": iso(g.end_us),
                        "sha256": g.sha256,
                        "prev_sha256": g.prev_sha256,
                        "mask_version": g.mask_version,
                        "bytes": g.bytes,
                    }
                    for g in p.segments
                ],
            }
            for p in r.parts
        ],
        "requisition": None,
        "approval": None,
        "package": None,
        "delivery": None,
        "feedback": None,
        "purged": iso(r.purged_us) if r.purged_us else None,
        "purge_reason": r.purge_reason or None,
    }
    if r.HasField("requisition"):
        d = r.requisition
        out["requisition"] = {
            "number": d.number,
            "authority": d.authority,
            "authority_kind": d.authority_kind,
            "issued_on": d.issued_on,
            "document_id": d.document_id,
            "filename": d.filename,
            "content_type": d.content_type,
            "sha256": d.sha256,
            "size": d.size,
            "received": iso(d.received_us),
            "received_by": d.received_by,
        }
    if r.HasField("approval"):
        a = r.approval
        out["approval"] = {
            "manager": a.manager,
            "manager_name": a.manager_name,
            "approved": iso(a.approved_us),
            "comment": a.comment,
            "register_seq": a.register_seq,
            "register_entry_hash": a.register_entry_hash,
            "signature": a.signature,
        }
    if r.HasField("package"):
        k = r.package
        out["package"] = {
            "id": k.id,
            "filename": k.filename,
            "sha256": k.sha256,
            "size": k.size,
            "encrypted": k.encrypted,
            "created": iso(k.created_us),
            "created_by": k.created_by,
            "manifest_sha256": k.manifest_sha256,
            "public_key_fingerprint": k.public_key_fingerprint,
            "files": [{"path": f.path, "sha256": f.sha256, "bytes": f.size} for f in k.files],
            "available": k.available,
        }
    if r.HasField("delivery"):
        d2 = r.delivery
        out["delivery"] = {
            "medium": d2.medium,
            "recipient_name": d2.recipient_name,
            "recipient_service": d2.recipient_service,
            "recipient_id": d2.recipient_id,
            "recipient_partner": d2.recipient_partner or None,
            "package_sha256": d2.package_sha256,
            "delivered": iso(d2.delivered_us),
            "recorded_by": d2.recorded_by,
            "register_seq": d2.register_seq,
            "receipt_sha256": d2.receipt_sha256 or None,
        }
    if r.HasField("feedback"):
        f2 = r.feedback
        out["feedback"] = {"useful": f2.useful, "comment": f2.comment, "by": f2.by, "at": iso(f2.at_us)}
    return out


# -- helpers -------------------------------------------------------------------------------------------


async def _get(b: Backends, request_id: str, principal: Principal) -> requisition_pb2.Requisition:
    async with rpc_errors("requisition"):
        return await b.requisition.GetRequisition(
            requisition_pb2.RequisitionRef(id=request_id, actor=actor_of(principal)), timeout=REQUISITION_TIMEOUT_S
        )


RequisitionCase = Case[requisition_pb2.Requisition]


def _target(r: requisition_pb2.Requisition) -> str:
    return f"requisition:{r.number}"


def _cameras(r: requisition_pb2.Requisition) -> list[str]:
    return sorted({x.camera_id for x in r.ranges})


def on_case(*actions: str) -> Callable[[HTTPConnection], Awaitable[RequisitionCase]]:
    """FastAPI dependency: the caller and the request of path parameter `request_id`, under the
    case rule (access.py) for `actions`; a request they may not see is unknown to them (404)."""
    return case_dependency("requisition request", "request_id", actions, _get, case_cameras, _target)


def _city_staff(principal: Principal, what: str) -> None:
    if principal.partner:
        raise HTTPException(403, f"{what} is done by CSU staff")


# -- routes --------------------------------------------------------------------------------------------


@router.post("", status_code=201)
async def create(
    body: RequisitionIn,
    b: BackendsDep,
    principal: Principal = Depends(require_any("export", "playback")),
) -> dict:
    """Record a request: by a federated police user, or by CSU staff taking a phone/e-mail request."""
    ranges = []
    for i, r in enumerate(body.ranges, start=1):
        start_us, end_us = checked_us(f"ranges[{i}].start", r.start), checked_us(f"ranges[{i}].end", r.end)
        if start_us >= end_us:
            raise HTTPException(422, f"range {i}: start must be before end")
        ranges.append((r.camera_id, start_us, end_us))
    cameras = await check_cameras(principal, b, sorted({c for c, _, _ in ranges}), ("export", "playback"))
    if body.channel == "federation" and not principal.partner:
        raise HTTPException(422, "channel 'federation' is for requests made through the federation door")
    await audit(
        principal,
        "requisition.create",
        "requisitions",
        justification=body.reason,
        details={
            "case_reference": body.case_reference,
            "requesting_service": body.requesting_service,
            "ranges": [{"camera_id": c, "start": iso(s), "end": iso(e)} for c, s, e in ranges],
        },
    )
    request = requisition_pb2.CreateRequisitionRequest(
        requesting_service=body.requesting_service,
        officer=body.officer,
        officer_contact=body.officer_contact,
        case_reference=body.case_reference,
        reason=body.reason,
        channel=body.channel,
        ranges=[
            requisition_pb2.CameraRange(
                camera_id=c,
                start_us=s,
                end_us=e,
                camera_name=cameras[c].name,
                retention_days=cameras[c].retention_days,
            )
            for c, s, e in ranges
        ],
        actor=actor_of(principal),
    )
    async with rpc_errors("requisition"):
        created = await b.requisition.CreateRequisition(request, timeout=REQUISITION_TIMEOUT_S)
    return requisition_out(created)


@router.get("")
async def listing(
    b: BackendsDep,
    state: str | None = Query(None, max_length=32),
    before: AwareDatetime | None = Query(None, description="requests created before this instant"),
    limit: int = Query(100, ge=1, le=500),
    principal: Principal = Depends(require_role(*LIST_ACTIONS)),
) -> list[dict]:
    await audit(principal, "requisition.list", "requisitions", details={"state": state})
    shown: list[requisition_pb2.Requisition] = []
    cursor = checked_us("before", before) if before else 0
    # Pages until `limit` requests the caller may see (or the end): the hidden ones are not
    # counted, not hinted at; the next page starts before the last one looked at.
    while len(shown) < limit:
        request = requisition_pb2.ListRequisitionsRequest(
            state=state or "", partner=principal.partner or "", limit=limit, before_us=cursor
        )
        async with rpc_errors("requisition"):
            answer = await b.requisition.ListRequisitions(request, timeout=REQUISITION_TIMEOUT_S)
        page = list(answer.requisitions)
        for r in page:
            if await may_see(principal, LIST_ACTIONS, case_cameras(r)):
                shown.append(r)
        if len(page) < limit:
            break
        cursor = page[-1].created_us
    return [requisition_out(r) for r in shown[:limit]]


@router.get("/statistics")
async def statistics(
    b: BackendsDep,
    start: AwareDatetime | None = Query(None),
    end: AwareDatetime | None = Query(None),
    principal: Principal = Depends(require("register")),
) -> dict:
    """Requisitions per month/year and requesting service, lead times, outcomes, usefulness."""
    await audit(principal, "requisition.statistics", "requisitions")
    request = requisition_pb2.StatisticsRequest(
        start_us=checked_us("start", start) if start else 0, end_us=checked_us("end", end) if end else 0
    )
    async with rpc_errors("requisition"):
        s = await b.requisition.GetStatistics(request, timeout=REQUISITION_TIMEOUT_S)
    counts = [{"period": c.period, "requesting_service": c.requesting_service, "count": c.count} for c in s.per_month]
    return {
        "per_month": counts,
        "per_year": [
            {"period": c.period, "requesting_service": c.requesting_service, "count": c.count} for c in s.per_year
        ],
        "lead_times": [
            {
                "step": t.step,
                "count": t.count,
                "mean_hours": round(t.mean_hours, 3),
                "median_hours": round(t.median_hours, 3),
                "max_hours": round(t.max_hours, 3),
            }
            for t in s.lead_times
        ],
        "states": {c.state: c.count for c in s.requisition_states},
        "delivered": s.delivered,
        "expired": s.expired,
        "useful_to_investigation": {
            "yes": s.feedback_useful,
            "no": s.feedback_not_useful,
            "not_answered": s.feedback_missing,
        },
        "citizen_requests": s.citizen_requests,
        "citizen_outcomes": {c.state: c.count for c in s.citizen_outcomes},
        "citizen_overdue": s.citizen_overdue,
    }


@router.get("/{request_id}")
async def get(
    request_id: RequestId,
    b: BackendsDep,
    case: RequisitionCase = Depends(on_case(*LIST_ACTIONS)),
) -> dict:
    principal, current = case.principal, case.case
    await audit(principal, "requisition.read", _target(current))
    return requisition_out(current)


@router.get("/{request_id}/progress")
async def progress(request_id: RequestId, b: BackendsDep, case: RequisitionCase = Depends(on_case("export"))) -> dict:
    """How far the running extraction and package build have got, 0 to 1 (null when none runs).

    Polled every second by the console while it waits, so not audited: it shows neither footage
    nor the case (the extraction and the build themselves are audited, and so is reading the request).
    """
    return progress_out(case.case)


@router.post("/{request_id}/extract")
async def extract(request_id: RequestId, b: BackendsDep, case: RequisitionCase = Depends(on_case("export"))) -> dict:
    """Copy the ranges into the extraction buffer (no re-encoding); the buffer's deadline starts."""
    principal, current = case.principal, case.case
    _city_staff(principal, "extraction")
    await audit(
        principal,
        "requisition.extract",
        _target(current),
        justification=current.reason,
        recipient=current.requesting_service,
        details={"cameras": _cameras(current), "case_reference": current.case_reference},
    )
    async with rpc_errors("requisition"):
        done = await b.requisition.Extract(
            requisition_pb2.RequisitionRef(id=request_id, actor=actor_of(principal)), timeout=LONG_RPC_TIMEOUT_S
        )
    return requisition_out(done)


@router.post("/{request_id}/requisition", openapi_extra=UPLOAD_DOC)
async def receive(
    request_id: RequestId,
    request: Request,
    b: BackendsDep,
    case: RequisitionCase = Depends(on_case("export")),
) -> dict:
    """The signed requisition: multipart fields number, authority, authority_kind (magistrate|opj),
    issued_on (YYYY-MM-DD), and the file part `document` (PDF, JPEG or PNG, checked by content)."""
    form = await read_form(request)
    filename, data = form.file("document")
    principal, current = case.principal, case.case
    await audit(
        principal,
        "requisition.receive",
        _target(current),
        details={"number": form.get("number"), "authority": form.get("authority"), "bytes": len(data)},
    )
    meta = requisition_pb2.RequisitionUploadMeta(
        requisition_id=request_id,
        number=form.get("number"),
        authority=form.get("authority"),
        authority_kind=form.get("authority_kind"),
        issued_on=form.get("issued_on"),
        filename=filename,
        actor=actor_of(principal),
    )

    async def messages() -> AsyncIterator[requisition_pb2.RequisitionUpload]:
        yield requisition_pb2.RequisitionUpload(meta=meta)
        for i in range(0, len(data), 1024 * 1024):
            yield requisition_pb2.RequisitionUpload(data=data[i : i + 1024 * 1024])

    async with rpc_errors("requisition"):
        done = await b.requisition.ReceiveRequisition(messages(), timeout=REQUISITION_TIMEOUT_S)
    return requisition_out(done)


@router.get("/{request_id}/documents/{document_id}")
async def document(
    request_id: RequestId,
    document_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
    b: BackendsDep,
    case: RequisitionCase = Depends(on_case("export", "sign", "register")),
) -> Response:
    """The signed requisition as received (what the manager reviews before approving)."""
    principal, current = case.principal, case.case
    await audit(principal, "requisition.document.read", _target(current), details={"document_id": document_id})
    call = b.requisition.ReadDocument(
        requisition_pb2.DocumentRef(requisition_id=request_id, document_id=document_id, actor=actor_of(principal)),
        timeout=REQUISITION_TIMEOUT_S,
    )
    info, data = await read_stream(b, call)
    return file_response(info, data, inline=True)


@router.post("/{request_id}/approve")
async def approve(
    request_id: RequestId,
    body: ApproveIn,
    b: BackendsDep,
    case: RequisitionCase = Depends(on_case("sign")),
) -> dict:
    """A manager approves: password and current TOTP again; the register entry is signed."""
    principal, current = case.principal, case.case
    if current.state != "requisition_received":
        # Said before asking for the password: re-authenticating would not change the answer.
        raise HTTPException(
            409, f"request {current.number} is {current.state}: cannot approve (only a received requisition)"
        )
    try:  # the login's own limits, lock and TOTP rule (services/gateway/identity/login.py)
        await login.reauthenticate(b, principal, body.password, body.totp)
    except login.Refused as exc:
        await _reauth_refused(principal, current, exc.reason)
        raise exc.http("re-authentication failed: ") from exc
    await audit(
        principal,
        "requisition.approve",
        _target(current),
        justification=body.comment or None,
        details={"requisition_number": current.requisition.number, "reauthenticated": True},
    )
    async with rpc_errors("requisition"):
        done = await b.requisition.Approve(
            requisition_pb2.ApproveRequest(
                id=request_id, actor=actor_of(principal), comment=body.comment, reauthenticated_us=to_us(b.clock.now())
            ),
            timeout=REQUISITION_TIMEOUT_S,
        )
    return requisition_out(done)


async def _reauth_refused(principal: Principal, current: requisition_pb2.Requisition, reason: str) -> None:
    try:
        await audit(
            principal, "requisition.approve.refused", _target(current), outcome="refused", details={"reason": reason}
        )
    except HTTPException:
        pass  # the refusal stands whether or not it could be recorded


@router.post("/{request_id}/refuse")
async def refuse_request(
    request_id: RequestId,
    body: ReasonIn,
    b: BackendsDep,
    case: RequisitionCase = Depends(on_case("sign")),
) -> dict:
    principal, current = case.principal, case.case
    await audit(principal, "requisition.refuse", _target(current), justification=body.reason)
    async with rpc_errors("requisition"):
        done = await b.requisition.Refuse(
            requisition_pb2.ReasonRequest(id=request_id, actor=actor_of(principal), reason=body.reason),
            timeout=REQUISITION_TIMEOUT_S,
        )
    return requisition_out(done)


@router.post("/{request_id}/cancel")
async def cancel(
    request_id: RequestId,
    body: ReasonIn,
    b: BackendsDep,
    case: RequisitionCase = Depends(on_case("export", "playback")),
) -> dict:
    principal, current = case.principal, case.case
    await audit(principal, "requisition.cancel", _target(current), justification=body.reason)
    async with rpc_errors("requisition"):
        done = await b.requisition.Cancel(
            requisition_pb2.ReasonRequest(id=request_id, actor=actor_of(principal), reason=body.reason),
            timeout=REQUISITION_TIMEOUT_S,
        )
    return requisition_out(done)


@router.post("/{request_id}/package")
async def build_package(
    request_id: RequestId,
    b: BackendsDep,
    body: PackageIn | None = None,
    case: RequisitionCase = Depends(on_case("export")),
) -> dict:
    """Build the export package (folder + zip, signed manifest, verifier); optional zip password."""
    principal, current = case.principal, case.case
    _city_staff(principal, "packaging")
    password = body.password if body else ""
    await audit(
        principal,
        "requisition.package",
        _target(current),
        recipient=current.requesting_service,
        details={"encrypted": bool(password), "cameras": _cameras(current)},
    )
    async with rpc_errors("requisition"):
        done = await b.requisition.BuildPackage(
            requisition_pb2.BuildPackageRequest(id=request_id, actor=actor_of(principal), password=password),
            timeout=LONG_RPC_TIMEOUT_S,
        )
    return requisition_out(done)


@router.get("/{request_id}/package")
async def download_package(
    request_id: RequestId, b: BackendsDep, case: RequisitionCase = Depends(on_case("export"))
) -> StreamingResponse:
    """The package's zip: for CSU staff to write on a USB medium, or for the requesting partner."""
    principal, current = case.principal, case.case
    await audit(
        principal,
        "export.download",
        _target(current),
        justification=f"requisition {current.requisition.number}",
        recipient=f"{principal.partner}:{principal.username}" if principal.partner else current.requesting_service,
        details={"package_sha256": current.package.sha256, "cameras": _cameras(current)},
    )
    # The package was built and stored by BuildPackage: its first byte is a read of the stored zip,
    # no work in proportion to its size, so the bound on silence applies from the start.
    relay = Relay(
        b.requisition.ReadPackage(
            requisition_pb2.RequisitionRef(id=request_id, actor=actor_of(principal)), timeout=LONG_RPC_TIMEOUT_S
        ),
        "requisition",
        b.settings.stream_stall_s,
    )
    first = await relay.first(rpc_errors("requisition"), "the requisition service sent no package")
    info = first.info
    return StreamingResponse(
        relay.body(),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{ascii_filename(info.filename)}"',
            "Content-Length": str(info.size),
            "X-Package-SHA256": info.sha256,
            "Cache-Control": "private, no-store",
        },
    )


@router.post("/{request_id}/delivery")
async def deliver(
    request_id: RequestId,
    body: DeliveryIn,
    b: BackendsDep,
    case: RequisitionCase = Depends(on_case("export")),
) -> dict:
    """Record the handover: on USB by CSU staff (recipient's identity as checked), or the federated
    recipient's confirmation of their download. The package's SHA-256 must match."""
    principal, current = case.principal, case.case
    recipient = (
        f"{principal.partner}:{principal.username}"
        if body.medium == "download"
        else f"{body.recipient_name} ({body.recipient_service})"
    )
    await audit(
        principal,
        "requisition.deliver",
        _target(current),
        recipient=recipient,
        details={
            "medium": body.medium,
            "package_sha256": body.package_sha256.lower(),
            "recipient_id": body.recipient_id,
        },
    )
    async with rpc_errors("requisition"):
        done = await b.requisition.RecordDelivery(
            requisition_pb2.DeliveryRequest(
                id=request_id,
                actor=actor_of(principal),
                medium=body.medium,
                recipient_name=body.recipient_name,
                recipient_service=body.recipient_service,
                recipient_id=body.recipient_id,
                package_sha256=body.package_sha256.lower(),
            ),
            timeout=LONG_RPC_TIMEOUT_S,
        )
    return requisition_out(done)


@router.get("/{request_id}/receipt")
async def receipt(
    request_id: RequestId,
    b: BackendsDep,
    case: RequisitionCase = Depends(on_case("export", "register")),
) -> Response:
    """The delivery receipt (PDF)."""
    principal, current = case.principal, case.case
    await audit(principal, "requisition.receipt.read", _target(current))
    call = b.requisition.ReadReceipt(
        requisition_pb2.RequisitionRef(id=request_id, actor=actor_of(principal)), timeout=REQUISITION_TIMEOUT_S
    )
    info, data = await read_stream(b, call)
    return file_response(info, data, inline=True)


@router.post("/{request_id}/close")
async def close(
    request_id: RequestId,
    b: BackendsDep,
    body: CloseIn | None = None,
    case: RequisitionCase = Depends(on_case("export")),
) -> dict:
    principal, current = case.principal, case.case
    _city_staff(principal, "closing a request")
    reason = body.reason if body else ""
    await audit(principal, "requisition.close", _target(current), justification=reason or None)
    async with rpc_errors("requisition"):
        done = await b.requisition.Close(
            requisition_pb2.ReasonRequest(id=request_id, actor=actor_of(principal), reason=reason),
            timeout=REQUISITION_TIMEOUT_S,
        )
    return requisition_out(done)


@router.post("/{request_id}/feedback")
async def feedback(
    request_id: RequestId,
    body: FeedbackIn,
    b: BackendsDep,
    case: RequisitionCase = Depends(on_case("export", "playback")),
) -> dict:
    """After delivery: was the footage useful to the investigation?"""
    principal, current = case.principal, case.case
    await audit(principal, "requisition.feedback", _target(current), details={"useful": body.useful})
    async with rpc_errors("requisition"):
        done = await b.requisition.RecordFeedback(
            requisition_pb2.FeedbackRequest(
                id=request_id, actor=actor_of(principal), useful=body.useful, comment=body.comment
            ),
            timeout=REQUISITION_TIMEOUT_S,
        )
    return requisition_out(done)
